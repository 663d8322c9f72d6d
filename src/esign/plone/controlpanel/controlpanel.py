"""The esign.plone control panel: settings, and the site PKI at a glance."""

from __future__ import annotations

from plone.app.registry.browser.controlpanel import ControlPanelFormWrapper, RegistryEditForm
from plone.protect import CheckAuthenticator
from Products.Five.browser import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage

from esign.plone import _
from esign.plone.errors import ESignError
from esign.plone.interfaces import IESignSettings
from esign.plone.sitepki import site_pki


class ESignSettingsForm(RegistryEditForm):
    schema = IESignSettings
    schema_prefix = "esign"
    label = _("E-underskrift")
    description = _(
        "help_controlpanel",
        default="Inställningar för elektroniska underskrifter och webbplatsens egen PKI.",
    )


class ESignControlPanel(ControlPanelFormWrapper):
    form = ESignSettingsForm
    index = ViewPageTemplateFile("controlpanel.pt")

    def pki(self) -> dict | None:
        try:
            pki = site_pki()
        except ESignError as exc:
            return {"error": exc.message}
        return {
            "error": None,
            "certificates": [
                {
                    "role": "Rot-CA",
                    "subject": c.subject.rfc4514_string(),
                    "fingerprint": fp,
                    "not_after": c.not_valid_after_utc.strftime("%Y-%m-%d"),
                }
                for c, fp in (
                    (pki.root_certificate, pki.fingerprints()["root"]),
                    (pki.issuing_certificate, pki.fingerprints()["issuing"]),
                )
            ],
        }


class ImportCA(BrowserView):
    """POST a PKCS#12 with the issuing CA key, its certificate and chain."""

    def __call__(self):
        request = self.request
        target = f"{self.context.absolute_url()}/@@esign-controlpanel"
        if request.method != "POST":
            return request.response.redirect(target)
        CheckAuthenticator(request)
        messages = IStatusMessage(request)
        upload = request.form.get("pkcs12")
        data = upload.read() if upload else b""
        if not data:
            messages.add(_("Välj en PKCS#12-fil (.p12/.pfx)."), type="error")
            return request.response.redirect(target)
        password = request.form.get("password") or None
        from esign.plone.sitepki import import_site_ca

        try:
            import_site_ca(data, password=password.encode() if password else None)
        except ESignError as exc:
            messages.add(exc.message, type="error")
        else:
            messages.add(_("Certifikatutfärdaren importerades."), type="info")
        return request.response.redirect(target)

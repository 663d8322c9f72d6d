"""The esign.plone control panel: settings, and the site PKI at a glance."""

from __future__ import annotations

from plone.app.registry.browser.controlpanel import ControlPanelFormWrapper, RegistryEditForm
from plone.protect import CheckAuthenticator
from Products.Five.browser import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage
from z3c.form import validator
from zope.interface import Invalid
from zope.schema.interfaces import IText

from esign.plone import _
from esign.plone.errors import ESignError, InvalidInput
from esign.plone.interfaces import IESignSettings
from esign.plone.signing.ltv import load_trust_roots
from esign.plone.sitepki import site_pki


class ESignSettingsForm(RegistryEditForm):
    schema = IESignSettings
    schema_prefix = "esign"
    label = _("E-underskrift")
    description = _(
        "help_controlpanel",
        default="Inställningar för elektroniska underskrifter och webbplatsens egen PKI.",
    )


class TrustRootsValidator(validator.SimpleFieldValidator):
    """The external TSA's trust roots must be PEM certificates; anything else is refused on saving.

    Registered for the text fields of this form (a single field cannot be named: marking the
    schema's field would break its copy in the registry); the others get the default checks.
    """

    def validate(self, value, force=False):
        super().validate(value, force)
        if self.field.__name__ != "tsa_trust_roots" or not (value or "").strip():
            return
        try:
            load_trust_roots(value)
        except InvalidInput:
            raise Invalid(
                _(
                    "error_tsa_trust_roots",
                    default="Rotcertifikaten kan inte läsas. Klistra in ett eller flera certifikat i "
                    "PEM-format, vart och ett från -----BEGIN CERTIFICATE----- till "
                    "-----END CERTIFICATE-----, och inget annat.",
                )
            ) from None


validator.WidgetValidatorDiscriminators(TrustRootsValidator, view=ESignSettingsForm, field=IText)


class ESignControlPanel(ControlPanelFormWrapper):
    form = ESignSettingsForm
    index = ViewPageTemplateFile("controlpanel.pt")

    def pki(self) -> dict | None:
        try:
            pki = site_pki()
        except ESignError as exc:
            return {"error": exc.message}
        prints = pki.fingerprints()
        rows = [
            ("Rot-CA", pki.root_certificate, prints["root"], "fil (krypterad)"),
            ("Utfärdande CA", pki.issuing_certificate, prints["issuing"], pki.issuing_key_label),
        ]
        if pki.tsa_certificate is not None:
            rows.append(("Tidsstämpeltjänst (TSA)", pki.tsa_certificate, prints["tsa"], pki.tsa_key_label))
        return {
            "error": None,
            "certificates": [
                {
                    "role": role,
                    "subject": c.subject.rfc4514_string(),
                    "fingerprint": fp,
                    "not_after": c.not_valid_after_utc.strftime("%Y-%m-%d"),
                    "key": key,
                }
                for role, c, fp, key in rows
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

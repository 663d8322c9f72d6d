"""The officer's hand on a sent case ("Påminn", correct an email) and the scheduler's door (@@esign-tick)."""

from __future__ import annotations

import json

from plone.protect import CheckAuthenticator
from Products.Five.browser import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage

from esign.plone import audit
from esign.plone.content.identifiers import mask_personal_number
from esign.plone.errors import ESignError
from esign.plone.workflow import cases, lifecycle


class Remind(BrowserView):
    """ "Påminn": mail the signers whose turn it is a reminder (POST, CSRF-checked)."""

    def __call__(self):
        request = self.request
        if request.method != "POST":
            return request.response.redirect(self.context.absolute_url())
        CheckAuthenticator(request)
        messages = IStatusMessage(request)
        try:
            count = lifecycle.remind(self.context, actor=audit.current_actor())
        except ESignError as exc:
            messages.add(exc.message, type="error")
        else:
            messages.add(f"Påminnelse skickad till {count} undertecknare", type="info")
        return request.response.redirect(self.context.absolute_url())


class CorrectEmail(BrowserView):
    """Give a pending signer a new email address; the person who must sign stays the same."""

    template = ViewPageTemplateFile("templates/correct_email.pt")
    error: ESignError | None = None

    def __call__(self):
        request = self.request
        if cases.state_of(self.context) != cases.AWAITING:
            IStatusMessage(request).add(
                "Bara i ett ärende som väntar på underskrift kan en e-postadress rättas.", type="error"
            )
            return request.response.redirect(self.context.absolute_url())
        if request.method == "POST" and request.form.get("form.submitted"):
            CheckAuthenticator(request)
            signer_id = request.form.get("signer", "")
            try:
                name = cases.get_signer(self.context, signer_id).name
                lifecycle.correct_email(
                    self.context,
                    signer_id=signer_id,
                    email=request.form.get("email", ""),
                    actor=audit.current_actor(),
                )
            except ESignError as exc:
                self.error = exc
                request.response.setStatus(exc.http_status)
            else:
                IStatusMessage(request).add(f"E-postadressen för {name} är rättad.", type="info")
                return request.response.redirect(self.context.absolute_url())
        return self.template()

    def signers(self) -> list[dict]:
        chosen = self.request.form.get("signer")
        return [
            {
                "id": r.signer_id,
                "label": f"{r.name} ({mask_personal_number(r.personal_number) or r.hsa_id}), {r.email}",
                "selected": r.signer_id == chosen,
            }
            for r in cases.signer_records(self.context)
            if r.status == "pending"
        ]


class Tick(BrowserView):
    """For schedulers: expire what is due and send due reminders; answers the summary as JSON.

    POST only, with the CSRF token as ``_authenticator`` or the ``X-CSRF-TOKEN`` header.
    """

    def __call__(self):
        request, response = self.request, self.request.response
        response.setHeader("Content-Type", "application/json")
        response.setHeader("Cache-Control", "no-store")
        if request.method != "POST":
            response.setStatus(405)
            response.setHeader("Allow", "POST")
            return json.dumps({"error": {"type": "MethodNotAllowed", "message": "POST only"}})
        CheckAuthenticator(request)
        try:
            result = lifecycle.tick()
        except ESignError as exc:
            response.setStatus(exc.http_status)
            return json.dumps({"error": {"type": exc.kind, "message": exc.message}}, ensure_ascii=False)
        return json.dumps(result)

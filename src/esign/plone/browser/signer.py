"""The signer's pages, Swedish first, as in E-underskrift.

Signers have no Plone account: these views are public doors that check the
signer session themselves (``journey.signer_case`` answers NotFound for any case
that is not the logged-in person's). Every POST carries a CSRF token, no page is
cached, and no personnummer ever appears in a URL.
"""

from __future__ import annotations

import json
import secrets

from plone.namedfile.utils import set_headers, stream_data
from Products.Five.browser import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile

from esign.plone import audit
from esign.plone.content.identifiers import mask_personal_number
from esign.plone.errors import ESignError, NotAuthenticated, NotFound, WrongState
from esign.plone.identity import sessions
from esign.plone.workflow import cases, journey
from esign.plone.workflow.links import resolve_link

#: For the signer's pages: nothing from other sites, no inline script but the page's own
#: (by nonce), no plugins, no framing by others. Styles may be inline (Plone's templates use
#: style attributes); images may be data: URLs (the BankID QR code). No form-action: the
#: SITHS login form posts here and is redirected to the IdP, which browsers check against it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"
)


class SignerView(BrowserView):
    """Common ground: no caching, CSRF token, session, and errors as pages."""

    template = None
    error: ESignError | None = None
    #: The nonce of this page's own scripts (``<script tal:attributes="nonce view/csp_nonce">``).
    csp_nonce = ""

    def __call__(self):
        response = self.request.response
        response.setHeader("Cache-Control", "no-store, private")
        response.setHeader("X-Frame-Options", "SAMEORIGIN")
        response.setHeader("Referrer-Policy", "no-referrer")
        response.setHeader("X-Content-Type-Options", "nosniff")
        try:
            result = self.handle()
        except NotAuthenticated as exc:
            self.error = exc
            response.setStatus(401)
            return self.error_page()
        except ESignError as exc:
            self.error = exc
            response.setStatus(exc.http_status)
            return self.error_page()
        if result is not None:
            return result
        return self.page(self.template)

    def page(self, template) -> str:
        """A page, under a content security policy: scripts from the site, or ours by nonce."""
        self.csp_nonce = secrets.token_urlsafe(18)
        policy = CONTENT_SECURITY_POLICY.format(nonce=self.csp_nonce)
        self.request.response.setHeader("Content-Security-Policy", policy)
        return template()

    def handle(self):
        """Do the work; return a response body to short-cut the template, or None."""

    error_template = ViewPageTemplateFile("templates/signer_error.pt")

    def error_page(self):
        return self.page(self.error_template)

    @property
    def portal_url(self) -> str:
        return journey.portal_url()

    def csrf(self) -> str:
        return sessions.csrf_token(self.request)

    @property
    def csrf_field(self) -> str:
        return sessions.CSRF_FIELD

    def session(self):
        return sessions.current_session(self.request)

    def who(self) -> str:
        session = self.session()
        if session is None:
            return ""
        ident = mask_personal_number(session.personal_number) if session.personal_number else session.hsa_id
        return f"{session.identity.common_name} ({ident})"

    def redirect(self, url: str) -> str:
        self.request.response.redirect(url)
        return ""


class LinkLanding(SignerView):
    """ "Hantera ärendet": the mail's link; it names the case, then the signer logs in."""

    def handle(self):
        uid, signer_id = resolve_link(self.request.form.get("t"))
        journey.link_opened(uid, signer_id)
        sessions._set_cookie(self.request, journey.CASE_COOKIE, uid)
        session = self.session()
        if session is not None:
            try:
                journey.signer_case(session, uid)
                return self.redirect(f"{self.portal_url}/@@esign-review?case={uid}")
            except NotFound:
                sessions.end_session(self.request)
        # Redirect so that the token leaves the address bar and the browser history.
        return self.redirect(f"{self.portal_url}/@@esign-login")


class Login(SignerView):
    """The login chooser: "Inloggning Medborgare" (BankID) or "Inloggning Personal" (eTjänstekort)."""

    template = ViewPageTemplateFile("templates/signer_login.pt")

    def step(self) -> str:
        return self.request.form.get("val", "")


class BankIDStart(SignerView):
    def handle(self):
        sessions.check_csrf(self.request)
        purpose = "sign" if self.request.form.get("purpose") == "sign" else "login"
        mode = self.request.form.get("mode", "same-device")
        if purpose == "sign":
            session = sessions.require_session(self.request)
            case, record = journey.signer_case(session, self.request.form.get("case"))
            journey.start_bankid(self.request, purpose="sign", mode=mode, case=case, record=record)
        else:
            journey.start_bankid(self.request, purpose="login", mode=mode)
        return self.redirect(f"{self.portal_url}/@@esign-bankid")


class BankIDProgress(SignerView):
    """The page a person watches while BankID works: QR code or autostart, and BankID's messages."""

    template = ViewPageTemplateFile("templates/signer_bankid.pt")

    def handle(self):
        self.flow = sessions.current_flow(self.request)
        if self.flow is None or self.flow.get("kind") != "bankid":
            raise NotFound("Ingen BankID-inloggning pågår. Börja om.")
        if self.request.form.get("poll"):  # without JavaScript: one collect per page load
            self.status = journey.poll_bankid(self.request)
            if self.status["status"] == "complete":
                return self.redirect(self.status["next"])
            if self.status["status"] == "failed":
                self.flow = None
        else:
            self.status = {"status": "pending", "message": "Startar BankID …"}

    def qr_svg(self) -> str:
        return journey.bankid_qr_svg(self.flow) if self.flow and self.flow["mode"] == "qr" else ""

    def autostart(self) -> str:
        return journey.autostart_url(self.flow) if self.flow else ""

    def is_sign(self) -> bool:
        return bool(self.flow) and self.flow.get("purpose") == "sign"


class BankIDStatus(SignerView):
    """JSON for the progress page's poll (about every two seconds)."""

    def handle(self):
        response = self.request.response
        response.setHeader("Content-Type", "application/json")
        try:
            status = journey.poll_bankid(self.request)
            flow = sessions.current_flow(self.request)
            if status["status"] == "pending" and flow is not None and flow["mode"] == "qr":
                status["qr"] = journey.bankid_qr_svg(flow)
        except ESignError as exc:
            response.setStatus(exc.http_status)
            status = {
                "status": "failed",
                "error": {"type": exc.kind, "message": exc.message},
                "message": exc.message,
            }
        return json.dumps(status)


class BankIDCancel(SignerView):
    def handle(self):
        sessions.check_csrf(self.request)
        journey.cancel_bankid(self.request)
        target = "@@esign-pending" if self.session() else "@@esign-login"
        return self.redirect(f"{self.portal_url}/{target}")


class OIDCStart(SignerView):
    def handle(self):
        sessions.check_csrf(self.request)
        if self.request.form.get("purpose") == "sign":
            session = sessions.require_session(self.request)
            case, record = journey.signer_case(session, self.request.form.get("case"))
            url = journey.start_oidc(self.request, purpose="sign", case=case, record=record)
        else:
            url = journey.start_oidc(self.request, purpose="login")
        return self.redirect(url)


class OIDCCallback(SignerView):
    def handle(self):
        result = journey.finish_oidc(self.request, dict(self.request.form))
        if result["status"] == "complete":
            return self.redirect(result["next"])
        raise NotFound(result["message"])


class Pending(SignerView):
    """ "Hantera väntande underskrifter": every case waiting for this person."""

    template = ViewPageTemplateFile("templates/signer_pending.pt")

    def handle(self):
        self.signer = sessions.require_session(self.request)
        self.rows = [
            {
                "uid": case.UID(),
                "title": case.title,
                "case_number": case.case_number,
                "deadline": case.deadline,
                "message": case.message,
            }
            for case, _record in journey.pending_cases(self.signer)
        ]


class Review(SignerView):
    """ "Visa och skriv under": the whole document, the legal notice and "Skriv under"."""

    template = ViewPageTemplateFile("templates/signer_review.pt")

    def handle(self):
        self.signer = sessions.require_session(self.request)
        self.case, self.record = journey.signer_case(self.signer, self.request.form.get("case"))
        if cases.state_of(self.case) != cases.AWAITING:
            raise WrongState("Ärendet väntar inte längre på underskrift.")
        self.can_sign = (
            self.record.status == "pending" and journey.cases.state_of(self.case) == "awaiting_signature"
        )
        self.staff = bool(self.record.hsa_id)

    def document_url(self) -> str:
        return f"{self.portal_url}/@@esign-signer-document?case={self.case.UID()}"


class SignerDocument(SignerView):
    """The PDF, inline, for the logged-in signer's own case only."""

    def handle(self):
        session = sessions.require_session(self.request)
        case, record = journey.signer_case(session, self.request.form.get("case"))
        if cases.state_of(case) not in (cases.AWAITING, cases.SIGNED_STATE):
            raise WrongState("Ärendet väntar inte längre på underskrift.")
        document = cases.working_document(case)
        audit.record(case, "document_viewed", actor=audit.actor_for_signer(record))
        set_headers(document, self.request.response)
        self.request.response.setHeader("Content-Disposition", "inline")
        return stream_data(document)


class Decline(SignerView):
    """ "Ta bort ärendet": not signing, with an optional reason and a confirmation."""

    template = ViewPageTemplateFile("templates/signer_decline.pt")

    def handle(self):
        self.signer = sessions.require_session(self.request)
        self.case, self.record = journey.signer_case(self.signer, self.request.form.get("case"))
        cases.check_may_sign(self.case, self.record)
        self.problem = ""
        if self.request.method == "POST":
            sessions.check_csrf(self.request)
            if not self.request.form.get("confirm"):
                self.problem = "Bekräfta att du inte vill skriva under."
                return None
            journey.decline(
                self.request, self.signer, self.case.UID(), reason=self.request.form.get("reason", "")
            )
            return self.redirect(f"{self.portal_url}/@@esign-done?case={self.case.UID()}&declined=1")
        return None


class Done(SignerView):
    template = ViewPageTemplateFile("templates/signer_done.pt")

    def handle(self):
        self.signer = sessions.require_session(self.request)
        self.case, self.record = journey.signer_case(self.signer, self.request.form.get("case"))
        # Thanks only for what this signer did: the record says so, not the address.
        if self.record.status not in ("signed", "declined"):
            raise NotFound("Sidan finns inte.")
        self.declined = self.record.status == "declined"


class Download(SignerView):
    """The completion mail's link: the signed document, to a logged-in party or the officer."""

    def handle(self):
        uid = self.request.form.get("case")
        try:
            case, actor = journey.downloadable_case(self.session(), uid)
        except NotAuthenticated:
            # After the login the signer comes back to this case.
            sessions._set_cookie(self.request, journey.CASE_COOKIE, uid or "")
            raise
        signed = case.signed_document
        journey.note_download(self.request, case, actor=actor)
        set_headers(signed, self.request.response, filename=signed.filename)
        return stream_data(signed)


class Logout(SignerView):
    template = ViewPageTemplateFile("templates/signer_logout.pt")

    def handle(self):
        if self.request.method == "POST":
            sessions.check_csrf(self.request)
            sessions.end_session(self.request)
            sessions.end_flow(self.request)
        return None

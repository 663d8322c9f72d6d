"""Officer-facing views of a signing case: overview, signatures, signed download."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from plone import api
from plone.namedfile.utils import set_headers, stream_data
from Products.Five.browser import BrowserView
from zExceptions import NotFound

from esign.plone import audit
from esign.plone.content.identifiers import mask_personal_number
from esign.plone.content.signing_case import DECLINED, PENDING, SIGNED
from esign.plone.errors import ESignError
from esign.plone.workflow import cases, journey

SWEDEN = ZoneInfo("Europe/Stockholm")

STATUS_LABELS = {PENDING: "Väntar", SIGNED: "Undertecknat", DECLINED: "Avböjt"}


class CaseView(BrowserView):
    def state(self) -> str:
        return cases.state_of(self.context)

    def state_title(self) -> str:
        return api.portal.get_tool("portal_workflow").getTitleForStateOnType(self.state(), "SigningCase")

    def is_signed(self) -> bool:
        return self.state() == cases.SIGNED_STATE

    def locked(self) -> bool:
        return cases.is_locked_signed(self.context)

    def signers(self) -> list[dict]:
        """Rows for the signer table; personnummer masked, as in every listing."""
        records = self.context.signer_records
        if records is None:
            return [
                {
                    "name": row.get("name"),
                    "identifier": mask_personal_number(row.get("personal_number")) or row.get("hsa_id"),
                    "email": row.get("email"),
                    "status": "Utkast",
                    "when": "",
                    "reason": "",
                }
                for row in self.context.signers or ()
            ]
        return [
            {
                "name": r.name,
                "identifier": mask_personal_number(r.personal_number) or r.hsa_id,
                "email": r.email,
                "status": STATUS_LABELS.get(r.status, r.status),
                "when": _local(r.signed_at or r.declined_at),
                "reason": r.decline_reason,
            }
            for r in records
        ]

    def document_url(self) -> str | None:
        if not self.context.document:
            return None
        return f"{self.context.absolute_url()}/@@download/document"

    def signed_document_url(self) -> str | None:
        if self.context.signed_document is None:
            return None
        return f"{self.context.absolute_url()}/@@signed-document"


class SignaturesView(BrowserView):
    """Every embedded signature, validated against the site's root CA."""

    error: str | None = None

    def report(self):
        try:
            return cases.validate_case(self.context)
        except ESignError as exc:
            self.error = exc.message
            return None

    def rows(self) -> list[dict]:
        report = self.report()
        if report is None:
            return []
        return [
            {
                "field": s.field_name,
                "signer": s.signer_name,
                "serial_number": s.signer_serial_number,
                "subject": s.certificate_subject,
                "certificate_serial": s.certificate_serial,
                "issuer": s.issuer_subject,
                "time": _local(s.signing_time),
                "intact": s.intact,
                "valid": s.valid,
                "trusted": s.trusted,
                "coverage": s.coverage,
                "modification_level": s.modification_level,
                "unmodified": s.unmodified_since,
                "ok": s.bottom_line,
                "problems": s.problems,
            }
            for s in report.signatures
        ]


class SignedDocumentDownload(BrowserView):
    """The signed PDF, to the officer, the signers and managers (View permission)."""

    def __call__(self):
        signed = self.context.signed_document
        if signed is None:
            raise NotFound("Inget undertecknat dokument ännu.")
        journey.note_download(self.request, self.context, actor=audit.current_actor())
        set_headers(signed, self.request.response, filename=signed.filename)
        self.request.response.setHeader("Cache-Control", "private, no-store")
        return stream_data(signed)


def _local(value) -> str:
    """Swedish time, whatever the server's zone (CET/CEST shown)."""
    if not value:
        return ""
    return value.astimezone(SWEDEN).strftime("%Y-%m-%d %H:%M:%S %Z")


class SendCopy(BrowserView):
    """The officer sends every party a digital copy of the signed document (POST, CSRF-checked)."""

    def __call__(self):
        from plone.protect import CheckAuthenticator
        from Products.statusmessages.interfaces import IStatusMessage

        from esign.plone.workflow.notifications import send_copy

        request = self.request
        if request.method != "POST":
            return request.response.redirect(self.context.absolute_url())
        CheckAuthenticator(request)
        if cases.state_of(self.context) != cases.SIGNED_STATE:
            IStatusMessage(request).add("Dokumentet är inte färdigt undertecknat ännu.", type="error")
        else:
            count = send_copy(self.context)
            IStatusMessage(request).add(f"En digital kopia skickades till {count} parter.", type="info")
        return request.response.redirect(self.context.absolute_url())

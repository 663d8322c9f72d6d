"""Validation reports in the browser: "Validera" on a case and the public validation page.

Both show, per signature, the EN 319 102-1 outcome (TOTAL-PASSED, INDETERMINATE,
TOTAL-FAILED with its sub-indication), who signed, when, the PAdES level and what the
outcome means, in Swedish; both offer the ETSI TS 119 102-2 XML report. Validation
runs offline against the site's root, with the site CA's current CRLs as the
revocation data for its own certificates.

The public page takes an uploaded PDF, reads it from the request and forgets it:
nothing is written to the database, to the catalog or to disk by this code.
"""

from __future__ import annotations

from typing import Any

from plone import api
from Products.Five.browser import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from zope.i18nmessageid import Message

from esign.plone import _, logger
from esign.plone.browser.case import SWEDEN
from esign.plone.errors import (
    CorruptPdf,
    DocumentTooLarge,
    EncryptedPdf,
    ESignError,
    Forbidden,
    InvalidDocument,
    InvalidInput,
    NotAPdf,
    PKIError,
)
from esign.plone.identity import sessions
from esign.plone.signing.documents import stream_size
from esign.plone.signing.reports import AssessmentReport, SignatureAssessment, assess_pdf

#: Badge colour per main indication (Bootstrap 5, as in Plone 6 Classic UI).
INDICATION_CLASSES = {
    "TOTAL-PASSED": "bg-success",
    "INDETERMINATE": "bg-warning text-dark",
    "TOTAL-FAILED": "bg-danger",
}

INDICATION_LABELS = {
    "TOTAL-PASSED": _("validate_indication_passed", default="Giltig"),
    "INDETERMINATE": _("validate_indication_indeterminate", default="Kan inte avgöras"),
    "TOTAL-FAILED": _("validate_indication_failed", default="Ogiltig"),
}

TIME_SOURCES = {
    "timestamp": _("validate_time_timestamp", default="enligt tidsstämpel"),
    "claimed": _("validate_time_claimed", default="uppgiven av undertecknaren"),
    "none": _("validate_time_none", default="okänd"),
}

SUMMARIES = {
    "none": _("validate_summary_none", default="Dokumentet innehåller inga underskrifter."),
    "passed": _("validate_summary_passed", default="Alla underskrifter är giltiga."),
    "failed": _("validate_summary_failed", default="Minst en underskrift är ogiltig."),
    "indeterminate": _(
        "validate_summary_indeterminate", default="Minst en underskrift kunde inte bekräftas som giltig."
    ),
}

SUMMARY_CLASSES = {
    "none": "alert-info",
    "passed": "alert-success",
    "failed": "alert-danger",
    "indeterminate": "alert-warning",
}


def error_message(exc: ESignError) -> Message:
    """The Swedish message for a refused file (the engine's own messages are English)."""
    if isinstance(exc, DocumentTooLarge):
        return _(
            "validate_error_too_large",
            default="Filen är för stor. Den största fil som kan valideras är ${size} MB.",
            mapping={"size": max_upload_size() // (1024 * 1024)},
        )
    if isinstance(exc, EncryptedPdf):
        return _(
            "validate_error_encrypted",
            default="PDF-filen är lösenordsskyddad eller krypterad och kan inte valideras.",
        )
    if isinstance(exc, CorruptPdf):
        return _(
            "validate_error_corrupt", default="PDF-filen är skadad eller ofullständig och kan inte läsas."
        )
    if isinstance(exc, NotAPdf):
        return _("validate_error_not_a_pdf", default="Filen är inte ett PDF-dokument.")
    if isinstance(exc, InvalidDocument):
        return _(
            "validate_error_too_many",
            default="Dokumentet har för många underskrifter för att kunna valideras här.",
        )
    if isinstance(exc, PKIError):
        return _(
            "validate_error_pki",
            default="Webbplatsens certifikatutfärdare är inte tillgänglig just nu. Försök igen senare.",
        )
    if isinstance(exc, Forbidden):
        return _(
            "validate_error_csrf",
            default="Formuläret kunde inte verifieras. Ladda om sidan och försök igen.",
        )
    return _("validate_error_other", default="Dokumentet kunde inte valideras.")


def max_upload_size() -> int:
    """The largest file the public page accepts, in bytes: the add-on's document size limit."""
    from esign.plone.content.schema import max_document_size

    return max_document_size()


def assess_with_site_pki(source: Any, *, max_size: int) -> AssessmentReport:
    """Validate a PDF against the site's root, offline, with the site's current revocation data.

    Timestamps may also chain to the external TSA's roots (control panel).

    :raises ESignError: for a file that is not a readable PDF, is too large, or when the
        site has no PKI.
    """
    from esign.plone.signing.ltv import current_status
    from esign.plone.sitepki import site_pki, tsa_trust_roots

    pki = site_pki()
    try:
        status = current_status(pki, source)
    except ESignError:
        # A key that cannot sign right now (token away) leaves the DSS's data:
        # long-term signatures still validate; bare ones come out INDETERMINATE.
        logger.warning("No current revocation data for validation", exc_info=True)
        status = {}
    return assess_pdf(
        source,
        trust_roots=[pki.root_certificate],
        timestamp_trust_roots=tsa_trust_roots(),
        max_size=max_size,
        **status,
    )


def _local(value) -> str:
    if not value:
        return ""
    return value.astimezone(SWEDEN).strftime("%Y-%m-%d %H:%M:%S %Z")


def _row(item: SignatureAssessment) -> dict:
    return {
        "field": item.field_name,
        "kind": item.kind,
        "signer": item.signer_name or item.certificate_subject or item.field_name,
        "serial_number": item.signer_serial_number,
        "issuer": item.issuer_subject,
        "time": _local(item.signing_time),
        "time_source": TIME_SOURCES[item.time_source],
        "level": f"PAdES {item.level}" if item.level else "",
        "indication": item.indication,
        "indication_label": INDICATION_LABELS[item.indication],
        "indication_class": INDICATION_CLASSES[item.indication],
        "sub_indication": item.sub_indication or "",
        "explanation": _("validation_explanation_" + item.explanation_id, default=item.explanation),
        "later_changes": item.later_changes,
    }


class _ValidationPage(BrowserView):
    """What both pages share: the result table and the XML download."""

    results_template = ViewPageTemplateFile("templates/validate_results.pt")
    report: AssessmentReport | None = None
    error: Message | None = None

    def _no_store(self) -> None:
        response = self.request.response
        response.setHeader("Cache-Control", "no-store, private")
        response.setHeader("X-Frame-Options", "SAMEORIGIN")
        response.setHeader("Referrer-Policy", "no-referrer")

    def rows(self) -> list[dict]:
        return [_row(s) for s in self.report.signatures] if self.report else []

    def timestamp_rows(self) -> list[dict]:
        return [_row(s) for s in self.report.document_timestamps] if self.report else []

    def outcome(self) -> str:
        """``"none"`` (no signature), ``"passed"``, ``"failed"`` or ``"indeterminate"``."""
        report = self.report
        if report is None or not report.has_signatures:
            return "none"
        if report.all_passed:
            return "passed"
        if any(s.indication == "TOTAL-FAILED" or s.later_changes for s in report.signatures):
            return "failed"
        return "indeterminate"

    def summary(self) -> Message | None:
        if self.report is None:
            return None
        return SUMMARIES[self.outcome()]

    def summary_class(self) -> str:
        return SUMMARY_CLASSES[self.outcome()]

    def results(self) -> str:
        return self.results_template() if self.report is not None else ""

    def validated_at(self) -> str:
        return _local(self.report.validation_time) if self.report else ""

    def xml_response(self, filename: str) -> bytes:
        response = self.request.response
        response.setHeader("Content-Type", "application/xml")
        response.setHeader("Content-Disposition", f'attachment; filename="{filename}"')
        response.setHeader("Content-Length", str(len(self.report.etsi_xml)))
        return self.report.etsi_xml


class CaseValidation(_ValidationPage):
    """``@@esign-validate`` on a case: "Validera" the signed document (``?format=xml`` for the report)."""

    template = ViewPageTemplateFile("templates/validate_case.pt")

    def __call__(self):
        self._no_store()
        signed = self.context.signed_document
        if signed is not None:
            try:
                with signed.open() as blob:
                    # The case's own document: no upload limit, it grew by its signatures.
                    self.report = assess_with_site_pki(blob, max_size=max(stream_size(blob), 1))
            except ESignError as exc:
                logger.warning("Validation of %s failed: %s", self.context.absolute_url(), exc.message)
                self.error = error_message(exc)
        if self.request.form.get("format") == "xml":
            if self.report is None or not self.report.etsi_xml:
                self.request.response.setStatus(404)
                self.error = self.error or _(
                    "validate_no_report",
                    default="Det finns ingen valideringsrapport: dokumentet har inga underskrifter ännu.",
                )
                return self.template()
            return self.xml_response(f"valideringsrapport-{self.context.getId()}.xml")
        return self.template()

    def has_signed_document(self) -> bool:
        return self.context.signed_document is not None

    def xml_url(self) -> str:
        return f"{self.context.absolute_url()}/@@esign-validate?format=xml"


class PublicValidation(_ValidationPage):
    """``@@esign-validera`` on the site: anyone uploads a signed PDF and sees its validation.

    The upload is read from the request and never stored. Anonymous POSTs carry the
    signer pages' double-submit CSRF token (plone.protect does not cover anonymous users).
    """

    template = ViewPageTemplateFile("templates/validate_public.pt")

    def __call__(self):
        self._no_store()
        request = self.request
        if request.method != "POST":
            return self.template()
        try:
            sessions.check_csrf(request)
            upload = request.form.get("file")
            stream = getattr(upload, "file", None)
            if stream is None or not getattr(upload, "filename", "") or stream_size(stream) == 0:
                raise InvalidInput("No file was uploaded.")
            stream.seek(0)
            self.report = assess_with_site_pki(stream, max_size=max_upload_size())
        except ESignError as exc:
            self.report = None
            self.error = (
                _("validate_error_no_file", default="Välj en PDF-fil att validera.")
                if type(exc) is InvalidInput
                else error_message(exc)
            )
            request.response.setStatus(exc.http_status)
            return self.template()
        if request.form.get("xml"):
            if not self.report.etsi_xml:
                self.error = _(
                    "validate_no_report_upload",
                    default="Dokumentet innehåller inga underskrifter, så det finns ingen "
                    "valideringsrapport att ladda ner.",
                )
                return self.template()
            return self.xml_response("valideringsrapport.xml")
        return self.template()

    def csrf(self) -> str:
        return sessions.csrf_token(self.request)

    @property
    def csrf_field(self) -> str:
        return sessions.CSRF_FIELD

    def max_size_mb(self) -> int:
        return max_upload_size() // (1024 * 1024)

    def action_url(self) -> str:
        return f"{api.portal.get().absolute_url()}/@@esign-validera"

    def root_certificate_url(self) -> str:
        return f"{api.portal.get().absolute_url()}/@@esign-root-certificate"

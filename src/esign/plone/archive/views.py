"""Pages of the archive room: bulk send (@@esign-bulk-send) and archive export (@@esign-export[-all])."""

from __future__ import annotations

import datetime as dt

from plone import api
from plone.protect import CheckAuthenticator
from Products.Five.browser import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage

from esign.plone import audit
from esign.plone.archive.bulk import BulkReport, bulk_send, parse_csv
from esign.plone.archive.export import FINAL_STATES, export_case, export_cases
from esign.plone.errors import ESignError, InvalidInput
from esign.plone.workflow import journey

#: How many cases one "export all" may hold; beyond that, filter by state or folder.
MAX_EXPORT = 500

STATE_LABELS = {"signed": "Undertecknade", "declined": "Avböjda", "expired": "Utgångna"}


def _upload(request, name: str) -> tuple[bytes, str]:
    upload = request.form.get(name)
    if not upload or not hasattr(upload, "read"):
        return b"", ""
    return upload.read(), getattr(upload, "filename", "") or ""


def _zip_response(request, data: bytes, filename: str) -> bytes:
    response = request.response
    response.setHeader("Content-Type", "application/zip")
    response.setHeader("Content-Disposition", f'attachment; filename="{filename}"')
    response.setHeader("Content-Length", str(len(data)))
    response.setHeader("Cache-Control", "private, no-store")
    return data


class BulkSend(BrowserView):
    """One PDF to many signers from a CSV list: a case per signer, sent at once."""

    template = ViewPageTemplateFile("templates/bulk_send.pt")
    error: ESignError | None = None
    report: BulkReport | None = None

    def __call__(self):
        request = self.request
        if request.method == "POST" and request.form.get("form.submitted"):
            CheckAuthenticator(request)
            try:
                self.report = self.submit()
            except ESignError as exc:
                self.error = exc
                request.response.setStatus(exc.http_status)
        return self.template()

    def submit(self) -> BulkReport:
        form = self.request.form
        pdf, pdf_name = _upload(self.request, "document")
        if not pdf:
            raise InvalidInput("Välj ett PDF-dokument.", field="document")
        csv_data, _ = _upload(self.request, "signers_csv")
        if not csv_data:
            raise InvalidInput("Välj en CSV-fil med undertecknare.", field="signers_csv")
        deadline = None
        if (form.get("deadline") or "").strip():
            try:
                deadline = dt.date.fromisoformat(form["deadline"].strip())
            except ValueError:
                raise InvalidInput("Sista dag ska anges som ÅÅÅÅ-MM-DD.", field="deadline") from None
        rows = parse_csv(csv_data)
        return bulk_send(
            self.context,
            title=form.get("title", ""),
            document=(pdf, pdf_name),
            rows=rows,
            information_class=form.get("information_class", ""),
            message=form.get("message", ""),
            deadline=deadline,
        )

    def rejected(self) -> list[dict]:
        if self.report is None:
            return []
        return [
            {
                "line": r.line,
                "name": r.row["name"],
                "personal_number": r.row["personal_number"] or r.row["hsa_id"],
                "email": r.row["email"],
                "reason": r.reason,
            }
            for r in self.report.rejected
        ]

    def created(self) -> list[dict]:
        if self.report is None:
            return []
        return [{"title": c.Title(), "url": c.absolute_url()} for c in self.report.created]

    def information_classes(self) -> list[dict]:
        chosen = self.request.form.get("information_class", "K2")
        return [{"value": k, "selected": k == chosen} for k in ("K1", "K2", "K3")]


class ExportCase(BrowserView):
    """The archive ZIP of one finished case, for its officer and managers."""

    def __call__(self):
        case = self.context
        state = api.content.get_state(obj=case)
        if state not in FINAL_STATES:
            IStatusMessage(self.request).add(
                "Bara ett avslutat ärende (undertecknat, avböjt eller utgånget) kan arkivexporteras.",
                type="error",
            )
            return self.request.response.redirect(case.absolute_url())
        data = export_case(case)
        journey.note_download(self.request, case, actor=audit.current_actor(), what="archive")
        return _zip_response(self.request, data, f"{case.getId()}-arkiv.zip")


class ExportAll(BrowserView):
    """Every finished case below this folder that the user may manage, as one ZIP (POST)."""

    template = ViewPageTemplateFile("templates/export_all.pt")
    error: ESignError | None = None

    def __call__(self):
        request = self.request
        if request.method != "POST":
            return self.template()
        CheckAuthenticator(request)
        try:
            cases = self.cases()
        except ESignError as exc:
            self.error = exc
            request.response.setStatus(exc.http_status)
            return self.template()
        if not cases:
            IStatusMessage(request).add("Det finns inga ärenden att exportera.", type="info")
            return request.response.redirect(f"{self.context.absolute_url()}/@@esign-export-all")
        data = export_cases(cases)
        actor = audit.current_actor()
        for case in cases:
            audit.record(case, "downloaded", actor=actor, what="archive")
        return _zip_response(request, data, f"arkivexport-{dt.date.today().isoformat()}.zip")

    def states(self) -> list[str]:
        chosen = self.request.form.get("state") or ["signed"]
        if isinstance(chosen, str):
            chosen = [chosen]
        unknown = [s for s in chosen if s not in FINAL_STATES]
        if unknown:
            raise InvalidInput("Välj bland undertecknade, avböjda och utgångna ärenden.", field="state")
        return list(chosen)

    def cases(self) -> list:
        brains = api.content.find(
            context=self.context,
            portal_type="SigningCase",
            review_state=self.states(),
            sort_on="created",
        )
        found = []
        for brain in brains:
            case = brain.getObject()
            if api.user.has_permission("esign.plone: Manage signing case", obj=case):
                found.append(case)
        if len(found) > MAX_EXPORT:
            raise InvalidInput(
                f"{len(found)} ärenden är för många för en export (högst {MAX_EXPORT}). "
                "Välj en mapp eller färre lägen.",
                field="state",
            )
        return found

    def state_options(self) -> list[dict]:
        chosen = self.request.form.get("state") or ["signed"]
        return [{"value": s, "label": STATE_LABELS[s], "checked": s in chosen} for s in FINAL_STATES]

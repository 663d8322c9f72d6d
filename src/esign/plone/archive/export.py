"""Archive export: everything that proves a case, as a ZIP for the records office (e-arkiv).

Per case, in a folder named after the case id:

* ``signed.pdf``: the PAdES-signed document (when anyone signed);
* ``original.pdf``: the document as uploaded;
* ``evidence.pdf``: the evidence document, when the case has one;
* ``validation.json``: the signatures validated against the site's root now;
* ``audit.json``: the hash-chained audit trail and whether it verifies;
* ``case.json``: metadata, signers (personnummer masked), workflow history.

The JSON files mask every personnummer (``19121212-****``): the ZIP is passed on
to archivists and e-archive systems, and the full numbers are already where they
belong as evidence, in the signer certificates inside ``signed.pdf``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable
from typing import Any

from plone import api

from esign.plone import audit
from esign.plone.archive.retention import completed_at, retained_until
from esign.plone.content.identifiers import luhn_ok, mask_personal_number
from esign.plone.errors import ESignError
from esign.plone.workflow.cases import signer_records, state_of, validate_case

#: The states whose cases are finished and may be exported.
FINAL_STATES = ("signed", "declined", "expired")

# 12 digits (optionally 8 + separator + 4), not inside a longer number or token: a
# certificate's "PNOSE-191212121212" matches, a 40-digit certificate serial does not.
_PERSONAL_NUMBER = re.compile(r"(?<![0-9A-Za-z])((?:19|20)\d{6})[-+]?(\d{4})(?![0-9A-Za-z])")


def mask_text(text: str) -> str:
    """Mask every valid personnummer in ``text`` (``PNOSE-191212121212`` → ``PNOSE-19121212-****``)."""

    def replace(match: re.Match) -> str:
        digits = match.group(1) + match.group(2)
        return mask_personal_number(digits) if luhn_ok(digits[2:]) else match.group(0)

    return _PERSONAL_NUMBER.sub(replace, text)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if hasattr(value, "ISO8601"):  # Zope DateTime
        return value.ISO8601()
    return mask_text(str(value))


def _dump(value: Any) -> bytes:
    return json.dumps(_jsonable(value), ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")


def _data(file) -> bytes | None:
    if file is None:
        return None
    if isinstance(file, bytes):
        return file
    data = getattr(file, "data", None)
    return bytes(data) if data else None


def _sha256(data: bytes | None) -> str:
    return hashlib.sha256(data).hexdigest() if data else ""


def _history(case) -> list[dict]:
    workflow = api.portal.get_tool("portal_workflow")
    entries = []
    for chain_id in workflow.getChainFor(case):
        for entry in workflow.getHistoryOf(chain_id, case) or ():
            entries.append(
                {
                    "action": entry.get("action"),
                    "review_state": entry.get("review_state"),
                    "actor": entry.get("actor"),
                    "time": entry.get("time"),
                    "comments": entry.get("comments") or "",
                }
            )
    return entries


def case_metadata(case, *, original: bytes | None, signed: bytes | None) -> dict:
    """What ``case.json`` holds: the case as an archivist reads it."""
    until = retained_until(case)
    return {
        "id": case.getId(),
        "uid": case.UID(),
        "title": case.Title(),
        "case_number": getattr(case, "case_number", None) or "",
        "information_class": getattr(case, "information_class", None) or "",
        "state": state_of(case),
        "created": case.created(),
        "modified": case.modified(),
        "completed": completed_at(case),
        "retained_until": until,
        "deadline": getattr(case, "deadline", None),
        "signing_order": getattr(case, "signing_order", None) or "",
        "message": getattr(case, "message", None) or "",
        "creators": list(getattr(case, "creators", None) or ()),
        "original_document": {
            "filename": getattr(case.document, "filename", None) if case.document else None,
            "sha256": _sha256(original),
        },
        "signed_document": {
            "filename": getattr(case.signed_document, "filename", None) if case.signed_document else None,
            "sha256": _sha256(signed),
        },
        "signers": [
            {
                "position": r.position,
                "name": r.name,
                "kind": r.kind,
                "personal_number": mask_personal_number(r.personal_number),
                "hsa_id": r.hsa_id or "",
                "email": r.email,
                "status": r.status,
                "signed_at": r.signed_at,
                "declined_at": r.declined_at,
                "decline_reason": r.decline_reason,
                "field_name": r.field_name,
                "certificate_serial": r.certificate_serial,
                "certificate_subject": r.certificate_subject,
                "document_sha256": r.document_sha256,
                "authentication": dict(r.authentication or {}),
            }
            for r in signer_records(case)
        ],
        "workflow_history": _history(case),
        "exported": dt.datetime.now(dt.UTC),
    }


def _write_case(archive: zipfile.ZipFile, case) -> None:
    folder = case.getId()
    original = _data(case.document)
    signed = _data(case.signed_document)
    evidence = _data(getattr(case, "evidence_document", None))
    if signed:
        archive.writestr(f"{folder}/signed.pdf", signed)
    if original:
        archive.writestr(f"{folder}/original.pdf", original)
    if evidence:
        archive.writestr(f"{folder}/evidence.pdf", evidence)
    try:
        report = validate_case(case)
    except ESignError as exc:
        validation: dict = {"error": exc.message}
    else:
        validation = {
            "validated_at": dt.datetime.now(dt.UTC),
            "all_valid": bool(report and report.all_valid),
            "signatures": list(report.signatures) if report else [],
        }
    archive.writestr(f"{folder}/validation.json", _dump(validation))
    verification = audit.verify(case)
    archive.writestr(
        f"{folder}/audit.json",
        _dump({"entries": audit.entries(case), "verification": verification}),
    )
    archive.writestr(f"{folder}/case.json", _dump(case_metadata(case, original=original, signed=signed)))


def export_cases(cases: Iterable) -> bytes:
    """One ZIP with a folder per case (see the module docstring for what each holds)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for case in cases:
            _write_case(archive, case)
    return buffer.getvalue()


def export_case(case) -> bytes:
    """The archive ZIP of one case."""
    return export_cases([case])

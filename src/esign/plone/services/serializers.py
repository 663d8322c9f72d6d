"""Cases, signers and reports as JSON: what the services answer, shared between them."""

from __future__ import annotations

from plone.restapi.serializer.converters import json_compatible

from esign.plone import api as esign
from esign.plone.content.identifiers import mask_personal_number
from esign.plone.signing.values import ValidationReport


def masked_identifier(*, personal_number: str | None, hsa_id: str | None) -> str:
    """``19121212-****`` or the HSA-id: a full personnummer never leaves the server in a listing."""
    return mask_personal_number(personal_number) if personal_number else (hsa_id or "")


def signer_status(record) -> dict:
    return {
        "id": record.signer_id,
        "position": record.position,
        "name": record.name,
        "kind": record.kind,
        "identifier": masked_identifier(personal_number=record.personal_number, hsa_id=record.hsa_id),
        "email": record.email,
        "status": record.status,
        "signed_at": json_compatible(record.signed_at),
        "declined_at": json_compatible(record.declined_at),
        "reason": record.decline_reason or None,
        "certificate_serial": record.certificate_serial or None,
    }


def draft_signer(position: int, row: dict) -> dict:
    """A signer of a draft: no id and no status yet, they are fixed when the case is sent."""
    return {
        "id": None,
        "position": position,
        "name": row.get("name"),
        "kind": "staff" if row.get("hsa_id") else "citizen",
        "identifier": masked_identifier(personal_number=row.get("personal_number"), hsa_id=row.get("hsa_id")),
        "email": row.get("email"),
        "status": "draft",
        "signed_at": None,
        "declined_at": None,
        "reason": None,
        "certificate_serial": None,
    }


def case_status(case) -> dict:
    records = case.signer_records
    if records is None:
        signers = [draft_signer(n, dict(row)) for n, row in enumerate(case.signers or (), start=1)]
    else:
        signers = [signer_status(r) for r in records]
    return {
        "uid": case.UID(),
        "title": case.title,
        "case_number": case.case_number or None,
        "state": esign.state_of(case),
        "signing_order": case.signing_order,
        "deadline": json_compatible(case.deadline),
        "signers": signers,
    }


def validation_report(report: ValidationReport) -> dict:
    return {
        "all_valid": report.all_valid,
        "signatures": [
            {
                "field": s.field_name,
                "signer": s.signer_name,
                "serial_number": s.signer_serial_number,
                "certificate_subject": s.certificate_subject,
                "certificate_serial": s.certificate_serial,
                "issuer": s.issuer_subject,
                "signing_time": json_compatible(s.signing_time),
                "intact": s.intact,
                "valid": s.valid,
                "trusted": s.trusted,
                "coverage": s.coverage,
                "modification_level": s.modification_level,
                "unmodified_since": s.unmodified_since,
                "bottom_line": s.bottom_line,
                "problems": list(s.problems),
            }
            for s in report.signatures
        ],
    }

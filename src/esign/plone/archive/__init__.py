"""The archive room: bulk send, retention of signed cases, archive export."""

from esign.plone.archive.bulk import BulkReport, RejectedRow, bulk_send, parse_csv
from esign.plone.archive.export import export_case, export_cases
from esign.plone.archive.retention import (
    check_may_delete,
    completed_at,
    delete_case,
    move_case,
    retained_until,
)

__all__ = [
    "BulkReport",
    "RejectedRow",
    "bulk_send",
    "check_may_delete",
    "completed_at",
    "delete_case",
    "export_case",
    "export_cases",
    "move_case",
    "parse_csv",
    "retained_until",
]

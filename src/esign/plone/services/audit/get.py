import dataclasses

from esign.plone import audit
from esign.plone.services.base import ESignService


class AuditGet(ESignService):
    """``GET <case>/@esign-audit``: the audit trail and the check of its hash chain (officer, manager)."""

    permission = "esign.plone: Manage signing case"

    def reply(self):
        verification = audit.verify(self.context)
        return {
            "@id": self.api_url("@esign-audit", self.context),
            "items": [dataclasses.asdict(entry) for entry in audit.entries(self.context)],
            "items_total": verification.count,
            "verification": {
                "ok": verification.ok,
                "problems": list(verification.problems),
                "head": verification.head,
                "count": verification.count,
            },
        }

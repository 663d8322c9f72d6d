from esign.plone.identity import sessions
from esign.plone.services.base import ESignService
from esign.plone.services.serializers import masked_identifier
from esign.plone.workflow import journey


class PendingGet(ESignService):
    """``GET <site>/@esign-pending``: the cases awaiting the logged-in signer ("Hantera väntande")."""

    permission = None
    signer_door = True

    def reply(self):
        session = sessions.require_session(self.request)
        portal = journey.portal_url()
        items = [
            {
                "uid": case.UID(),
                "title": case.title,
                "case_number": case.case_number or None,
                "deadline": case.deadline.isoformat() if case.deadline else None,
                "message": case.message or None,
                "position": record.position,
                "review": {"@id": f"{portal}/@@esign-review?case={case.UID()}"},
                "document": {"@id": f"{portal}/@@esign-signer-document?case={case.UID()}"},
                "sign": {"@id": self.api_url("@esign-sign"), "case": case.UID()},
                "decline": {"@id": self.api_url("@esign-decline"), "case": case.UID()},
            }
            for case, record in journey.pending_cases(session)
        ]
        return {
            "@id": self.api_url("@esign-pending"),
            "signer": {
                "name": session.identity.common_name,
                "identifier": masked_identifier(
                    personal_number=session.personal_number, hsa_id=session.hsa_id
                ),
                "session_seconds_left": journey.seconds_left(session),
            },
            "items": items,
            "items_total": len(items),
        }

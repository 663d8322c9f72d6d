from esign.plone.identity import sessions
from esign.plone.services.base import ESignService, text
from esign.plone.workflow import journey


class DeclinePost(ESignService):
    """``POST <site>/@esign-decline`` ``{"case": uid, "reason": "..."}`` ("Ta bort ärendet")."""

    permission = None
    signer_door = True

    def reply(self):
        data = self.body()
        session = sessions.require_session(self.request)
        uid = text(data, "case")
        journey.decline(self.request, session, uid, reason=text(data, "reason", required=False))
        return {"case": uid, "status": "declined"}

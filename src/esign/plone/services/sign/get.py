from esign.plone.identity import sessions
from esign.plone.services import flows
from esign.plone.services.base import ESignService


class SignGet(ESignService):
    """``GET <site>/@esign-sign``: one collect; on ``complete`` the signature is in the document."""

    permission = None
    signer_door = True

    def reply(self):
        sessions.require_session(self.request)
        return flows.collect(self.request, purpose="sign")

from esign.plone.services import flows
from esign.plone.services.base import ESignService


class LoginGet(ESignService):
    """``GET <site>/@esign-login``: one collect; on ``complete`` the signer session cookie is set."""

    permission = None
    signer_door = True

    def reply(self):
        return flows.collect(self.request, purpose="login")

from esign.plone.services import flows
from esign.plone.services.base import ESignService
from esign.plone.workflow import journey


class LoginPost(ESignService):
    """``POST <site>/@esign-login`` ``{"mode": "qr"|"same_device"}``: start a BankID login."""

    permission = None
    signer_door = True

    def reply(self):
        mode = flows.mode_of(self.body())
        journey.start_bankid(self.request, purpose="login", mode=mode)
        return flows.started(self.request, collect_url=self.api_url("@esign-login"))

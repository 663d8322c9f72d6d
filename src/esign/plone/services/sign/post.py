from esign.plone.identity import sessions
from esign.plone.services import flows
from esign.plone.services.base import ESignService, text
from esign.plone.workflow import journey


class SignPost(ESignService):
    """``POST <site>/@esign-sign`` ``{"case": uid, "mode": ...}``: a BankID sign order for the signer."""

    permission = None
    signer_door = True

    def reply(self):
        data = self.body()
        session = sessions.require_session(self.request)
        case, record = journey.signer_case(session, text(data, "case"))
        journey.start_bankid(self.request, purpose="sign", mode=flows.mode_of(data), case=case, record=record)
        return {"case": case.UID(), **flows.started(self.request, collect_url=self.api_url("@esign-sign"))}

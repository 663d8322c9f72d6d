from esign.plone.services import flows
from esign.plone.services.base import ESignService, text
from esign.plone.workflow import journey
from esign.plone.workflow.links import resolve_link


class LoginPost(ESignService):
    """``POST <site>/@esign-login`` ``{"mode": "qr"|"same_device", "link": token?}``: start a BankID login.

    ``link`` is the ``t`` of the mail's "Hantera ärendet" link, for a client that lets the signer
    arrive from the mail: as with the Classic UI's link page, the case notes ``link_opened`` now
    and, once the login is complete, ``login`` (if the person is a signer of it). An unknown,
    expired or withdrawn link is answered ``404``.
    """

    permission = None
    signer_door = True

    def reply(self):
        data = self.body()
        mode = flows.mode_of(data)
        case = None
        if data.get("link") is not None:
            uid, signer_id = resolve_link(text(data, "link"))
            journey.link_opened(uid, signer_id)
            case = journey._case_by_uid(uid)
        journey.start_bankid(self.request, purpose="login", mode=mode, case=case)
        return flows.started(self.request, collect_url=self.api_url("@esign-login"))

from plone.namedfile.utils import set_headers, stream_data
from plone.protect.interfaces import IDisableCSRFProtection
from zope.interface import alsoProvides

from esign.plone import api as esign
from esign.plone import audit
from esign.plone.errors import NotAuthenticated, NotFound
from esign.plone.identity import sessions
from esign.plone.services.base import ESignService
from esign.plone.workflow import journey


def _send(service, case, *, actor: str):
    if case.signed_document is None or esign.state_of(case) != "signed":
        raise NotFound("Dokumentet är inte färdigt undertecknat ännu.")
    signed = case.signed_document
    # A GET that writes: plone.protect would abort the audit note of a logged-in user's download.
    alsoProvides(service.request, IDisableCSRFProtection)
    audit.record(case, "downloaded", actor=actor)
    set_headers(signed, service.request.response, filename=signed.filename)
    return stream_data(signed)


class CaseDownloadGet(ESignService):
    """``GET <case>/@esign-download``: the signed PDF, to whoever may view the case."""

    def reply(self):
        return _send(self, self.context, actor=audit.current_actor())


class SignerDownloadGet(ESignService):
    """``GET <site>/@esign-download?case=<uid>``: the signed PDF, to a signer of the case (or its officer)."""

    permission = None
    signer_door = True

    def reply(self):
        uid = self.request.form.get("case")
        session = sessions.current_session(self.request)
        case, actor = None, audit.current_actor()
        if session is not None:
            try:
                case, record = journey.signer_case(session, uid)
                actor = audit.actor_for_signer(record)
            except NotFound:
                case = None
        if case is None:
            case = journey.officer_case(uid)
        if case is None:
            if session is None:
                raise NotAuthenticated("Logga in för att ladda ned det undertecknade dokumentet.")
            raise NotFound("Ärendet finns inte, eller så är du inte part i det.")
        return _send(self, case, actor=actor)

from plone.namedfile.utils import set_headers, stream_data

from esign.plone import api as esign
from esign.plone import audit
from esign.plone.errors import NotFound
from esign.plone.identity import sessions
from esign.plone.services.base import ESignService
from esign.plone.workflow import journey


def _send(service, case, *, actor: str):
    if case.signed_document is None or esign.state_of(case) != "signed":
        raise NotFound("Dokumentet är inte färdigt undertecknat ännu.")
    signed = case.signed_document
    journey.note_download(service.request, case, actor=actor)
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
        session = sessions.current_session(self.request)
        case, actor = journey.downloadable_case(session, self.request.form.get("case"))
        return _send(self, case, actor=actor)

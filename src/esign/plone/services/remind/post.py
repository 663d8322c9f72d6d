from esign.plone import audit
from esign.plone.errors import InvalidInput
from esign.plone.services.base import ESignService
from esign.plone.workflow import lifecycle


class RemindPost(ESignService):
    """``POST <case>/@esign-remind`` ``{"signers": [ids]}``: mail pending signers a fresh link."""

    permission = "esign.plone: Manage signing case"

    def reply(self):
        signers = self.body().get("signers")
        if signers is not None and (
            not isinstance(signers, list) or not all(isinstance(s, str) for s in signers)
        ):
            raise InvalidInput("Fältet 'signers' ska vara en lista med undertecknar-id:n.", field="signers")
        return {"reminded": lifecycle.remind(self.context, signer_ids=signers, actor=audit.current_actor())}

from esign.plone.services.base import ESignService
from esign.plone.services.serializers import case_status


class StatusGet(ESignService):
    """``GET <case>/@esign-status``: state, signing order, deadline and every signer (View)."""

    def reply(self):
        return {"@id": self.api_url("@esign-status", self.context), **case_status(self.context)}

from esign.plone import api as esign
from esign.plone.errors import NotFound
from esign.plone.services.base import ESignService
from esign.plone.services.serializers import validation_report


class ValidationGet(ESignService):
    """``GET <case>/@esign-validation``: every embedded signature, validated against the site root."""

    def reply(self):
        report = esign.validate_case(self.context)
        if report is None:
            raise NotFound("Dokumentet har inga underskrifter ännu.")
        return {"@id": self.api_url("@esign-validation", self.context), **validation_report(report)}

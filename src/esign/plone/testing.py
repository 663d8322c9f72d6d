"""Test layers: a Plone site with esign.plone installed, in process and over HTTP."""

from __future__ import annotations

from plone.app.contenttypes.testing import PLONE_APP_CONTENTTYPES_FIXTURE
from plone.app.testing import FunctionalTesting, IntegrationTesting, PloneSandboxLayer, applyProfile
from plone.testing.zope import WSGI_SERVER_FIXTURE


class ESignLayer(PloneSandboxLayer):
    defaultBases = (PLONE_APP_CONTENTTYPES_FIXTURE,)

    def setUpZope(self, app, configurationContext) -> None:
        import plone.restapi

        import esign.plone

        self.loadZCML(package=plone.restapi)
        self.loadZCML(package=esign.plone)

    def setUpPloneSite(self, portal) -> None:
        from plone import api

        # A Swedish site, like the ones the add-on is made for; tests of the English
        # texts switch the language themselves.
        api.portal.set_registry_record("plone.default_language", "sv")
        applyProfile(portal, "esign.plone:default")


ESIGN_FIXTURE = ESignLayer()

ESIGN_INTEGRATION_TESTING = IntegrationTesting(bases=(ESIGN_FIXTURE,), name="ESignLayer:IntegrationTesting")

ESIGN_FUNCTIONAL_TESTING = FunctionalTesting(
    bases=(ESIGN_FIXTURE, WSGI_SERVER_FIXTURE), name="ESignLayer:FunctionalTesting"
)

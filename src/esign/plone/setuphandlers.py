"""Install and uninstall steps that GenericSetup XML cannot express."""

from __future__ import annotations

import secrets
import uuid

from plone import api
from plone.base.interfaces import INonInstallable
from zope.interface import implementer

from esign.plone import logger


@implementer(INonInstallable)
class HiddenProfiles:
    def getNonInstallableProfiles(self) -> list[str]:
        return ["esign.plone:uninstall"]

    def getNonInstallableProducts(self) -> list[str]:
        return []


def post_install(context) -> None:
    """Give the site its own PKI (root and issuing CA) and a salt for identity lookups."""
    from esign.plone.sitepki import ensure_site_pki

    if not api.portal.get_registry_record("esign.internal.pki_id", default=None):
        api.portal.set_registry_record("esign.internal.pki_id", uuid.uuid4().hex)
    if not api.portal.get_registry_record("esign.internal.hash_salt", default=None):
        api.portal.set_registry_record("esign.internal.hash_salt", secrets.token_hex(32))
    organisation = api.portal.get_registry_record("esign.organisation_name", default="") or "Plone"
    if organisation == "Plone":
        organisation = api.portal.get().Title() or organisation
        api.portal.set_registry_record("esign.organisation_name", organisation)
    ensure_site_pki(organisation=organisation)
    if not api.portal.get_registry_record("plone.email_from_address", default=None):
        api.portal.set_registry_record("plone.email_from_address", "noreply@localhost")
        api.portal.set_registry_record("plone.email_from_name", f"E-underskrift – {organisation}")
    configure_mail(context)


def configure_mail(context=None) -> None:
    """Point MailHost at the SMTP server (environment or Plone's settings) and switch on the queue."""
    from esign.plone.notify import configure_mailhost

    configure_mailhost()


def uninstall(context) -> None:
    """The profile removed type, workflow, registry, layer and control panel.

    The CA files stay on disk on purpose: a CA key is not something to destroy
    by a click, and the root that earlier documents chain to stays at hand.
    Installing again creates a new PKI folder and root.
    """
    logger.info("esign.plone uninstalled; the site PKI files were kept.")


def ensure_trust_services(context=None) -> None:
    """Upgrade 1003: give an existing site CA its timestamping authority."""
    from esign.plone.sitepki import ensure_tsa

    ensure_tsa()


def fill_listing_metadata(context=None) -> None:
    """Upgrade 1004: the catalog columns "Mina ärenden" lists cases by, for existing cases."""
    from esign.plone.officer.catalog import fill_listing_metadata

    fill_listing_metadata()

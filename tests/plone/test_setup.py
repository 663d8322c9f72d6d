"""Install and uninstall from the Add-ons control panel."""

from plone import api
from plone.browserlayer.utils import registered_layers

from esign.plone.interfaces import IESignLayer


def test_addon_is_installed_with_its_type_workflow_and_layer(portal, installer):
    assert installer.is_product_installed("esign.plone")
    assert "SigningCase" in api.portal.get_tool("portal_types")
    assert api.portal.get_tool("portal_workflow").getChainForPortalType("SigningCase") == (
        "esign_signing_case_workflow",
    )
    assert IESignLayer in registered_layers()
    assert api.portal.get_registry_record("esign.max_document_size_mb") == 50


def test_install_creates_a_site_pki_with_keys_outside_the_database(portal):
    from esign.plone.sitepki import pki_directory, site_pki

    pki = site_pki()
    assert pki.root_certificate.subject != pki.issuing_certificate.subject
    directory = pki_directory()
    key_files = list(directory.glob("*key*"))
    assert key_files
    for path in key_files:
        assert path.stat().st_mode & 0o077 == 0
        assert b"ENCRYPTED" in path.read_bytes()


def test_uninstall_removes_type_workflow_registry_layer_and_control_panel(portal, installer, as_manager):
    installer.uninstall_product("esign.plone")
    assert not installer.is_product_installed("esign.plone")
    assert "SigningCase" not in api.portal.get_tool("portal_types")
    assert "esign_signing_case_workflow" not in api.portal.get_tool("portal_workflow")
    assert IESignLayer not in registered_layers()
    assert api.portal.get_registry_record("esign.max_document_size_mb", default=None) is None
    configlets = [a.getId() for a in api.portal.get_tool("portal_controlpanel").listActions()]
    assert "esign-controlpanel" not in configlets
    # The site still works: content is created and found as before.
    api.content.create(container=portal, type="Document", id="after-uninstall", title="Efter")
    assert api.content.find(id="after-uninstall")


def test_an_old_site_gets_the_new_settings_by_the_upgrade_step(portal, setup_tool):
    registry = api.portal.get_tool("portal_registry")
    del registry.records["esign.session_idle_minutes"]
    del registry.records["esign.tsa_trust_roots"]
    setup_tool.setLastVersionForProfile("esign.plone:default", "1000")
    setup_tool.upgradeProfile("esign.plone:default")
    assert api.portal.get_registry_record("esign.session_idle_minutes") == 15
    assert "esign.tsa_trust_roots" in registry.records
    assert setup_tool.getLastVersionForProfile("esign.plone:default") == ("1005",)

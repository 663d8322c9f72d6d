"""The administrator's control panel and the public root certificate."""

import re

import requests
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD

MANAGER = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)


def test_the_control_panel_shows_settings_and_the_ca_fingerprints(functional_portal):
    from esign.plone.sitepki import site_pki

    page = requests.get(functional_portal.absolute_url() + "/@@esign-controlpanel", auth=MANAGER, timeout=30)
    assert page.status_code == 200
    assert "Webbplatsens PKI" in page.text
    assert site_pki().fingerprints()["root"] in page.text
    assert "form.widgets.max_document_size_mb" in page.text


def test_the_control_panel_is_listed_for_administrators(functional_portal):
    page = requests.get(
        functional_portal.absolute_url() + "/@@overview-controlpanel", auth=MANAGER, timeout=30
    )
    assert "@@esign-controlpanel" in page.text


def test_an_officer_cannot_open_the_control_panel(functional_portal):
    user = api.user.create(email="officer@example.se", username="officer", password="officer-secret-1")
    api.user.grant_roles(user=user, roles=["SigningOfficer"])
    transaction.commit()
    page = requests.get(
        functional_portal.absolute_url() + "/@@esign-controlpanel",
        auth=("officer", "officer-secret-1"),
        allow_redirects=False,
        timeout=30,
    )
    assert page.status_code in (302, 401, 403)
    assert "Webbplatsens PKI" not in page.text


def test_saving_the_settings_changes_the_registry(functional_portal):
    session = requests.Session()
    session.auth = MANAGER
    form = session.get(functional_portal.absolute_url() + "/@@esign-controlpanel", timeout=30).text
    tag = re.search(r'<input[^>]*name="_authenticator"[^>]*>', form).group(0)
    token = re.search(r'value="([^"]+)"', tag).group(1)
    response = session.post(
        functional_portal.absolute_url() + "/@@esign-controlpanel",
        data={
            "_authenticator": token,
            "form.widgets.organisation_name": "Region Test",
            "form.widgets.max_document_size_mb": "20",
            "form.widgets.key_algorithm:list": "rsa-3072",
            "form.widgets.key_algorithm-empty-marker": "1",
            "form.widgets.certificate_validity_minutes": "15",
            "form.widgets.session_idle_minutes": "15",
            "form.widgets.link_validity_days": "30",
            "form.widgets.pades_level:list": "B-LTA",
            "form.widgets.pades_level-empty-marker": "1",
            "form.widgets.tsa_certificate_years": "6",
            "form.widgets.archive_renewal_days": "365",
            "form.buttons.save": "Save",
        },
        timeout=30,
    )
    assert response.status_code == 200
    functional_portal._p_jar.sync()
    assert api.portal.get_registry_record("esign.max_document_size_mb") == 20
    assert api.portal.get_registry_record("esign.key_algorithm") == "rsa-3072"


def test_anyone_can_download_the_root_certificate_to_trust_it(functional_portal):
    from esign.plone.sitepki import site_pki

    response = requests.get(functional_portal.absolute_url() + "/@@esign-root-certificate", timeout=30)
    assert response.status_code == 200
    assert response.content == site_pki().root_pem()
    assert b"PRIVATE" not in response.content


def test_the_addon_is_listed_in_the_addons_control_panel(functional_portal):
    page = requests.get(
        functional_portal.absolute_url() + "/@@prefs_install_products_form", auth=MANAGER, timeout=30
    )
    assert page.status_code == 200
    assert "esign.plone: E-underskrift" in page.text
    # The uninstall profile is not offered as an add-on of its own.
    assert "esign.plone (uninstall)" not in page.text

"""A signed case cannot be changed through any door, by anyone (over real HTTP)."""

import hashlib

import pytest
import requests
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD
from plone.namedfile.file import NamedBlobFile

from esign.plone import api as esign
from helpers.site import ANNA, BERTIL, identity_of

OFFICER = ("officer", "officer-secret-1")
MANAGER = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)


def _case_in_state(portal, pdf_bytes, state: str):
    if not api.user.get(username="officer"):
        user = api.user.create(email="officer@example.se", username="officer", password=OFFICER[1])
        api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    with api.env.adopt_user(username="officer"):
        case = api.content.create(
            container=portal,
            type="SigningCase",
            title="Avtal",
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(ANNA), dict(BERTIL)],
        )
        if state != "draft":
            esign.send_case(case)
    if state == "signed":
        for row in (ANNA, BERTIL):
            record = next(r for r in case.signer_records if r.personal_number == row["personal_number"])
            esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))
    transaction.commit()
    return case


def _fingerprint(case) -> tuple:
    case._p_jar.sync()
    signed = case.signed_document.data if case.signed_document else b""
    return (
        case.title,
        hashlib.sha256(case.document.data).hexdigest(),
        hashlib.sha256(signed).hexdigest(),
        len(case.signers),
    )


def _edit_form(url, auth):
    return requests.post(
        f"{url}/@@edit",
        auth=auth,
        data={"form.widgets.title": "Ändrad", "form.buttons.save": "Spara"},
        timeout=30,
    )


def _rest_patch(url, auth):
    return requests.patch(
        url.replace("/plone/", "/plone/++api++/"),
        auth=auth,
        json={"title": "Ändrad", "signers": []},
        headers={"Accept": "application/json"},
        timeout=30,
    )


def _webdav_put(url, auth):
    return requests.put(
        url,
        auth=auth,
        data=b"%PDF-1.7\nnot the signed document",
        headers={"Content-Type": "application/pdf"},
        timeout=30,
    )


def _tus_replace(url, auth):
    return requests.post(
        url.replace("/plone/", "/plone/++api++/") + "/@tus-replace",
        auth=auth,
        headers={
            "Accept": "application/json",
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "20",
            "Upload-Metadata": "filename YS5wZGY=,content-type YXBwbGljYXRpb24vcGRm",
        },
        timeout=30,
    )


DOORS = {
    "edit form": _edit_form,
    "REST PATCH": _rest_patch,
    "WebDAV PUT": _webdav_put,
    "file upload (TUS)": _tus_replace,
}


@pytest.mark.parametrize("state", ["awaiting_signature", "signed"])
@pytest.mark.parametrize("who", ["officer", "manager"])
@pytest.mark.parametrize("door", list(DOORS))
def test_a_sent_or_signed_case_refuses_changes_through_every_door(
    functional_portal, pdf_bytes, state, who, door
):
    case = _case_in_state(functional_portal, pdf_bytes, state)
    before = _fingerprint(case)
    response = DOORS[door](case.absolute_url(), OFFICER if who == "officer" else MANAGER)
    if door == "edit form":
        # The Classic UI answers a forbidden form the Plone way: a redirect to
        # the "Insufficient privileges" page, which is what a person sees.
        assert response.url.endswith("/insufficient-privileges"), response.url
        assert "Insufficient Privileges" in response.text or "insufficient" in response.text.lower()
    else:
        assert response.status_code in (401, 403), (door, response.status_code, response.text[:300])
    assert _fingerprint(case) == before
    assert esign.state_of(case) == state


def test_the_officer_can_still_edit_a_draft_through_the_rest_api(functional_portal, pdf_bytes):
    case = _case_in_state(functional_portal, pdf_bytes, "draft")
    response = _rest_patch(case.absolute_url(), OFFICER)
    assert response.status_code == 204, response.text
    case._p_jar.sync()
    assert case.title == "Ändrad"


def test_a_signed_case_shows_that_it_is_signed_and_locked(functional_portal, pdf_bytes):
    case = _case_in_state(functional_portal, pdf_bytes, "signed")
    page = requests.get(case.absolute_url(), auth=OFFICER, timeout=30)
    assert page.status_code == 200
    assert "Dokumentet är undertecknat och låst." in page.text
    assert "19121212-****" in page.text
    assert "191212121212" not in page.text
    download = requests.get(f"{case.absolute_url()}/@@signed-document", auth=OFFICER, timeout=30)
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("application/pdf")
    assert download.content.startswith(b"%PDF")


def test_nobody_else_can_open_a_case_or_its_signed_document(functional_portal, pdf_bytes):
    case = _case_in_state(functional_portal, pdf_bytes, "signed")
    api.user.create(email="other@example.se", username="other", password="other-secret-1")
    api.user.grant_roles(username="other", roles=["SigningOfficer"])
    transaction.commit()
    for auth in (None, ("other", "other-secret-1")):
        for path in ("", "/@@signed-document", "/@@signatures", "/@@download/document"):
            response = requests.get(case.absolute_url() + path, auth=auth, allow_redirects=False, timeout=30)
            assert response.status_code in (302, 401, 403, 404), (path, auth, response.status_code)
            assert not response.content.startswith(b"%PDF")

"""Bad input gets a clear message, in the form and as JSON, and stores nothing."""

import base64
import re

import pytest
import requests
import transaction
from plone import api

from helpers import pdfs
from helpers.site import ANNA, BERTIL

OFFICER = ("officer", "officer-secret-1")


@pytest.fixture()
def officer_http(functional_portal):
    user = api.user.create(email="officer@example.se", username="officer", password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    return functional_portal


@pytest.fixture(scope="session")
def documents(tmp_path_factory):
    return pdfs.TestDocuments(tmp_path_factory.mktemp("docs"))


def _cases(portal) -> list:
    portal._p_jar.sync()
    return [o for o in portal.objectValues() if o.portal_type == "SigningCase"]


def _rest_create(portal, *, data: bytes, signers=(ANNA, BERTIL), information_class="K2"):
    return requests.post(
        portal.absolute_url() + "/++api++/",
        auth=OFFICER,
        headers={"Accept": "application/json"},
        json={
            "@type": "SigningCase",
            "title": "Avtal",
            "information_class": information_class,
            "document": {
                "data": base64.b64encode(data).decode(),
                "encoding": "base64",
                "filename": "avtal.pdf",
                "content-type": "application/pdf",
            },
            "signers": [dict(s) for s in signers],
        },
        timeout=60,
    )


def _form_create(portal, *, data: bytes, signers=(ANNA, BERTIL), information_class="K2"):
    session = requests.Session()
    session.auth = OFFICER
    form = session.get(portal.absolute_url() + "/++add++SigningCase", timeout=30)
    tag = re.search(r'<input[^>]*name="_authenticator"[^>]*>', form.text).group(0)
    token = re.search(r'value="([^"]+)"', tag).group(1)
    fields = {
        "_authenticator": token,
        "form.widgets.title": "Avtal",
        "form.widgets.information_class:list": information_class,
        "form.widgets.information_class-empty-marker": "1",
        "form.widgets.signing_order:list": "parallel",
        "form.widgets.signing_order-empty-marker": "1",
        "form.widgets.signers.count": str(len(signers)),
        "form.buttons.save": "Spara",
    }
    for i, row in enumerate(signers):
        fields[f"form.widgets.signers.{i}-empty-marker"] = "1"
        for name in ("name", "personal_number", "hsa_id", "email"):
            fields[f"form.widgets.signers.{i}.widgets.{name}"] = row.get(name) or ""
    return session.post(
        portal.absolute_url() + "/++add++SigningCase",
        data=fields,
        files={"form.widgets.document": ("avtal.pdf", data, "application/pdf")},
        timeout=60,
    )


BAD_DOCUMENTS = {
    "not-a-pdf": "PDF",
    "encrypted": "krypterad",
    "truncated": "skadad",
    "zero-pages": "sidor",
}


@pytest.mark.parametrize("kind", list(BAD_DOCUMENTS))
def test_a_bad_document_is_refused_over_rest_with_a_json_message(officer_http, documents, kind):
    response = _rest_create(officer_http, data=documents.data(kind))
    assert response.status_code == 400, response.text
    body = response.json()
    assert "Traceback" not in response.text
    assert body["error"]["type"] == "BadRequest" if "error" in body else body["type"] == "BadRequest"
    assert "document" in response.text
    assert _cases(officer_http) == []


@pytest.mark.parametrize("kind", list(BAD_DOCUMENTS))
def test_a_bad_document_is_refused_in_the_form_with_a_message(officer_http, documents, kind):
    response = _form_create(officer_http, data=documents.data(kind))
    assert response.status_code == 200
    assert 'class="invalid-feedback' in response.text or "fieldErrorBox" in response.text
    assert BAD_DOCUMENTS[kind].lower() in response.text.lower()
    assert _cases(officer_http) == []


def test_a_document_over_the_size_limit_is_refused(officer_http, documents):
    api.portal.set_registry_record("esign.max_document_size_mb", 1)
    transaction.commit()
    big = documents.big(2 * 1024 * 1024).read_bytes()
    response = _rest_create(officer_http, data=big)
    assert response.status_code == 400
    assert "MB" in response.text
    assert _cases(officer_http) == []


@pytest.mark.parametrize(
    ("signer", "expected"),
    [
        ({**ANNA, "personal_number": "191212121213"}, "kontrollsiffra"),
        ({**ANNA, "personal_number": "19121312-1212"}, "datum"),
        ({**ANNA, "email": "anna-at-example"}, "E-postadressen"),
        ({**ANNA, "personal_number": "", "hsa_id": ""}, "personnummer"),
        ({**ANNA, "personal_number": "", "hsa_id": "XX123"}, "HSA-id"),
    ],
)
def test_a_wrong_signer_entry_is_refused_in_form_and_rest(officer_http, pdf_bytes, signer, expected):
    rest = _rest_create(officer_http, data=pdf_bytes, signers=(signer,))
    assert rest.status_code == 400
    assert expected in rest.json()["message"]
    form = _form_create(officer_http, data=pdf_bytes, signers=(signer,))
    assert expected in form.text
    assert _cases(officer_http) == []


def test_k4_information_is_refused_with_the_seeds_rule(officer_http, pdf_bytes):
    rest = _rest_create(officer_http, data=pdf_bytes, information_class="K4")
    assert rest.status_code == 400
    assert "K4-klassad information får inte behandlas i tjänsten" in rest.json()["message"]
    form = _form_create(officer_http, data=pdf_bytes, information_class="K4")
    assert "K4-klassad information får inte behandlas i tjänsten" in form.text
    assert _cases(officer_http) == []


def test_a_good_case_is_created_through_the_form(officer_http, pdf_bytes):
    response = _form_create(
        officer_http, data=pdf_bytes, signers=({**ANNA, "personal_number": "19121212-1212"}, BERTIL)
    )
    assert response.status_code == 200
    cases = _cases(officer_http)
    assert len(cases) == 1
    assert [s["personal_number"] for s in cases[0].signers] == ["191212121212", "194911172296"]
    assert cases[0].getOwner().getId() == "officer"

"""Bulk send: one PDF and a CSV list become one sent case per signer; bad rows are explained."""

from __future__ import annotations

import re

import pytest
import requests
import transaction
from plone import api

from esign.plone.archive import bulk_send, parse_csv
from esign.plone.errors import ClassificationRefused, InvalidDocument
from helpers import pdfs
from helpers.site import MAIL
from helpers.smtp import text_of

OFFICER = ("officer", "officer-secret-1")

GOOD = [
    ("Anna Andersson", "19121212-1212", "anna.bulk@example.se"),
    ("Bertil Berg", "194911172296", "bertil.bulk@example.se"),
    ("Cecilia Carlsson", "19811218-9876", "cecilia.bulk@example.se"),
]
WRONG_CHECK_DIGIT = ("David Dahl", "19640823-3235", "david.bulk@example.se")
NO_EMAIL = ("Eva Ek", "19000101-9801", "")

CSV = "\n".join(
    ["Namn;Personnummer;E-post"]
    + [";".join(row) for row in (GOOD[0], WRONG_CHECK_DIGIT, GOOD[1], NO_EMAIL, GOOD[2])]
).encode("utf-8-sig")

FULL_NUMBERS = ("196408233235", "6408233235", "190001019801", "0001019801")


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    return pdfs.TestDocuments(tmp_path_factory.mktemp("docs"))


@pytest.fixture()
def site(functional_portal):
    user = api.user.create(email="officer@regionen.se", username=OFFICER[0], password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    return functional_portal


def _cases(portal) -> list:
    portal._p_jar.sync()
    return [o for o in portal.objectValues() if o.portal_type == "SigningCase"]


def _send(site, pdf: bytes, *, csv: bytes = CSV, information_class: str = "K3"):
    with api.env.adopt_user(username=OFFICER[0]):
        report = bulk_send(
            site,
            title="Samtycke till vård",
            document=(pdf, "samtycke.pdf"),
            rows=parse_csv(csv),
            information_class=information_class,
            message="Skriv gärna under i veckan.",
        )
    transaction.commit()
    return report


def test_three_good_rows_become_three_sent_cases_and_each_signer_gets_a_mail(site, pdf_bytes):
    report = _send(site, pdf_bytes)

    assert sorted(c.Title() for c in report.created) == sorted(f"Samtycke till vård – {r[0]}" for r in GOOD)
    for case in report.created:
        assert api.content.get_state(obj=case) == "awaiting_signature"
        assert len(case.signer_records) == 1
        assert case.information_class == "K3"
    for _name, _pnr, email in GOOD:
        mail = MAIL.wait_for(
            lambda m, e=email: e in m["To"] and "Samtycke till vård" in text_of(m), timeout=15
        )
        assert "Hantera ärendet" in text_of(mail)
        assert not any(n in text_of(mail) for n in ("191212121212", "194911172296", "198112189876"))


def test_the_report_names_the_two_bad_rows_and_why_without_their_personnummer(site, pdf_bytes):
    report = _send(site, pdf_bytes)

    assert [(r.line, r.row["name"]) for r in report.rejected] == [(3, "David Dahl"), (5, "Eva Ek")]
    assert "kontrollsiffra" in report.rejected[0].reason
    assert "E-postadressen" in report.rejected[1].reason
    assert report.rejected[0].row["personal_number"] == "19640823-****"
    shown = repr(report.rejected)
    assert not any(number in shown for number in FULL_NUMBERS)


def test_a_bad_pdf_creates_no_case_at_all(site, documents):
    with pytest.raises(InvalidDocument, match="krypterad"):
        _send(site, documents.data("encrypted"))
    assert _cases(site) == []


def test_k4_is_refused_with_the_seeds_rule_and_nothing_is_created(site, pdf_bytes):
    with pytest.raises(ClassificationRefused, match="K4-klassad information får inte behandlas"):
        _send(site, pdf_bytes, information_class="K4")
    assert _cases(site) == []


def test_an_excel_csv_in_cp1252_with_semicolons_is_read():
    data = "sep=;\r\nNAMN;E-post;Personnummer\r\nÅsa Öberg;asa@example.se;19121212-1212\r\n\r\n".encode(
        "cp1252"
    )
    rows = parse_csv(data)
    assert rows == [
        {
            "line": 3,
            "name": "Åsa Öberg",
            "personal_number": "19121212-1212",
            "email": "asa@example.se",
            "hsa_id": "",
        }
    ]


def test_a_comma_separated_csv_with_hsa_ids_is_read():
    data = b"name,email,hsa-id\nSara Sjukskoterska,sara@regionen.se,SE2321000016-1003\n"
    assert parse_csv(data)[0]["hsa_id"] == "SE2321000016-1003"


def test_a_csv_without_an_email_column_is_refused_with_a_message():
    with pytest.raises(Exception, match="saknar kolumnen e-post"):
        parse_csv(b"namn;personnummer\nAnna;191212121212\n")


def _token(session, url: str) -> str:
    page = session.get(url, timeout=30)
    assert page.status_code == 200, page.text[:500]
    tag = re.search(r'<input[^>]*name="_authenticator"[^>]*>', page.text).group(0)
    return re.search(r'value="([^"]+)"', tag).group(1)


def _post_form(site, pdf: bytes, *, information_class="K2"):
    session = requests.Session()
    session.auth = OFFICER
    url = site.absolute_url() + "/@@esign-bulk-send"
    return session.post(
        url,
        data={
            "_authenticator": _token(session, url),
            "title": "Samtycke",
            "information_class": information_class,
            "message": "",
            "deadline": "",
            "form.submitted": "1",
        },
        files={
            "document": ("samtycke.pdf", pdf, "application/pdf"),
            "signers_csv": ("lista.csv", CSV, "text/csv"),
        },
        timeout=120,
    )


def test_the_form_shows_how_many_cases_were_sent_and_a_table_of_refused_rows(site, pdf_bytes):
    response = _post_form(site, pdf_bytes)

    assert response.status_code == 200, response.text[:1000]
    assert "3 ärenden skapades och skickades" in response.text
    table = response.text.split("esign-bulk-rejected", 1)[1]
    assert "David Dahl" in table and "19640823-****" in table and "kontrollsiffra" in table
    assert "Eva Ek" in table and "E-postadressen" in table
    assert not any(number in response.text for number in FULL_NUMBERS)
    assert len(_cases(site)) == 3


def test_the_form_refuses_k4_and_creates_nothing(site, pdf_bytes):
    response = _post_form(site, pdf_bytes, information_class="K4")
    assert response.status_code == 400
    assert "K4-klassad information får inte behandlas i tjänsten" in response.text
    assert _cases(site) == []


def test_the_form_needs_the_authenticator(site, pdf_bytes):
    response = requests.post(
        site.absolute_url() + "/@@esign-bulk-send",
        auth=OFFICER,
        data={"title": "Samtycke", "information_class": "K2", "form.submitted": "1"},
        files={
            "document": ("samtycke.pdf", pdf_bytes, "application/pdf"),
            "signers_csv": ("lista.csv", CSV, "text/csv"),
        },
        timeout=60,
    )
    assert response.status_code == 403
    assert _cases(site) == []

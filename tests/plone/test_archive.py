"""Retention and archive export: a signed case stays for its years, and leaves as a ZIP that proves it."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile

import pytest
import requests
import transaction
from DateTime import DateTime
from plone import api
from plone.app.testing import TEST_USER_ID, TEST_USER_NAME, login, setRoles
from plone.locking.interfaces import ILockable
from zExceptions import ResourceLockedError

from esign.plone import api as esign
from esign.plone import audit
from esign.plone.archive import delete_case, export_case, export_cases, move_case
from esign.plone.archive.export import mask_text
from esign.plone.errors import CaseLocked
from esign.plone.workflow.cases import is_locked_signed
from helpers.site import ANNA, BERTIL, identity_of
from helpers.validators import pdfsig

FULL_NUMBERS = (ANNA["personal_number"], BERTIL["personal_number"])


def _sign_all(case, rows=(ANNA, BERTIL)):
    esign.send_case(case)
    for row in rows:
        record = next(r for r in case.signer_records if r.personal_number == row["personal_number"])
        esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))
    return case


@pytest.fixture()
def signed_case(portal, officer, make_case):
    login(portal, "officer")
    return _sign_all(make_case())


@pytest.fixture()
def manager(portal):
    """The test user as Manager, logged in (after the officer made and signed the case)."""
    setRoles(portal, TEST_USER_ID, ["Manager"])
    login(portal, TEST_USER_NAME)


def _age_completion(case, years: int) -> None:
    """Move the "complete" transition back in time, as if the case had been signed ``years`` ago."""
    for workflow_id, history in list(case.workflow_history.items()):
        aged = []
        for entry in history:
            entry = dict(entry)
            if entry.get("action") == "complete":
                entry["time"] = DateTime(entry["time"].asdatetime() - dt.timedelta(days=365 * years + 3))
            aged.append(entry)
        case.workflow_history[workflow_id] = tuple(aged)


# -- retention -----------------------------------------------------------------------------


def test_a_signed_case_cannot_be_deleted_and_the_message_names_the_date(portal, signed_case, manager):
    assert api.content.get_state(obj=signed_case) == "signed"
    today = dt.date.today()
    with pytest.raises(CaseLocked) as refused:
        delete_case(signed_case)
    assert "bevaras i 10 år" in refused.value.message
    assert f"tidigast {today.replace(year=today.year + 10).isoformat()}" in refused.value.message
    assert signed_case.getId() in portal


def test_plain_api_delete_of_a_signed_case_is_refused_even_without_its_lock(portal, signed_case, manager):
    with pytest.raises(ResourceLockedError):  # the "signed" lock is the first guard
        api.content.delete(obj=signed_case, check_linkintegrity=False)
    ILockable(signed_case).clear_locks()  # a Manager lifting it does not open the second
    with pytest.raises(CaseLocked, match="kan tas bort tidigast"):
        api.content.delete(obj=signed_case, check_linkintegrity=False)
    assert signed_case.getId() in portal


def test_the_retention_period_comes_from_the_control_panel(portal, signed_case, manager):
    api.portal.set_registry_record("esign.retention_years", 2)
    with pytest.raises(CaseLocked, match="bevaras i 2 år"):
        delete_case(signed_case)


def test_a_signed_case_can_be_deleted_once_its_retention_period_has_passed(portal, signed_case, manager):
    _age_completion(signed_case, 11)
    case_id = signed_case.getId()
    delete_case(signed_case)
    assert case_id not in portal


def test_a_draft_can_always_be_deleted(portal, officer, make_case):
    login(portal, "officer")
    first, second = make_case(title="Utkast ett"), make_case(title="Utkast två")
    api.content.delete(obj=first, check_linkintegrity=False)
    delete_case(second)
    assert "utkast-ett" not in portal and "utkast-tva" not in portal


def test_a_signed_case_can_be_moved_to_another_folder(portal, signed_case, manager):
    archive = api.content.create(container=portal, type="Folder", title="Arkiv 2026")
    moved = move_case(signed_case, archive)
    assert moved.getId() in archive
    assert api.content.get_state(obj=moved) == "signed"
    assert is_locked_signed(moved)


def test_a_folder_holding_a_signed_case_cannot_be_deleted_either(portal, officer, make_case):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    folder = api.content.create(container=portal, type="Folder", title="Avtal")
    api.user.grant_roles(username="officer", roles=["Contributor"], obj=folder)
    login(portal, "officer")
    _sign_all(make_case(container=folder))
    login(portal, TEST_USER_NAME)
    with pytest.raises(CaseLocked):
        api.content.delete(obj=folder, check_linkintegrity=False)
    assert "avtal" in portal


# -- export --------------------------------------------------------------------------------


def _files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_archive_of_a_signed_case_holds_the_documents_the_validation_and_the_audit_trail(
    signed_case, tmp_path
):
    files = _files(export_case(signed_case))
    folder = signed_case.getId()
    expected = {"signed.pdf", "original.pdf", "validation.json", "audit.json", "case.json"}
    if getattr(signed_case, "evidence_document", None) is not None:
        expected.add("evidence.pdf")
    assert set(files) == {f"{folder}/{name}" for name in expected}
    assert files[f"{folder}/original.pdf"] == signed_case.document.data

    (tmp_path / "signed.pdf").write_bytes(files[f"{folder}/signed.pdf"])
    report = pdfsig(tmp_path / "signed.pdf", esign.site_pki().root_pem())
    assert [s["signer"] for s in report] == [ANNA["name"], BERTIL["name"]]
    assert all(s["signature"] == "Signature is Valid." for s in report)

    validation = json.loads(files[f"{folder}/validation.json"])
    assert validation["all_valid"] is True
    assert [s["signer_serial_number"] for s in validation["signatures"]] == [
        "PNOSE-19121212-****",
        "PNOSE-19491117-****",
    ]

    trail = json.loads(files[f"{folder}/audit.json"])
    assert trail["verification"]["ok"] is True
    assert trail["verification"]["count"] == len(trail["entries"]) == len(audit.entries(signed_case))
    assert [e["event"] for e in trail["entries"]][-1] in ("completed", "signed", "mail_queued")


def test_the_case_file_has_the_signers_with_masked_personnummer_and_their_certificates(signed_case):
    files = _files(export_case(signed_case))
    folder = signed_case.getId()
    case = json.loads(files[f"{folder}/case.json"])
    assert case["state"] == "signed" and case["completed"] and case["retained_until"]
    assert [(s["name"], s["personal_number"], s["status"]) for s in case["signers"]] == [
        (ANNA["name"], "19121212-****", "signed"),
        (BERTIL["name"], "19491117-****", "signed"),
    ]
    assert all(s["certificate_serial"] for s in case["signers"])
    for name in ("case.json", "validation.json", "audit.json"):
        text = files[f"{folder}/{name}"].decode()
        assert not any(n in text or f"{n[:8]}-{n[8:]}" in text for n in FULL_NUMBERS), name


def test_an_evidence_document_goes_into_the_archive_when_the_case_has_one(signed_case):
    signed_case.evidence_document = b"%PDF-1.7 evidence"
    files = _files(export_case(signed_case))
    assert files[f"{signed_case.getId()}/evidence.pdf"] == b"%PDF-1.7 evidence"


def test_many_cases_go_into_one_zip_a_folder_each(portal, officer, make_case):
    login(portal, "officer")
    first = _sign_all(make_case(title="Avtal ett"))
    second = _sign_all(make_case(title="Avtal två"))
    folders = {name.split("/")[0] for name in _files(export_cases([first, second]))}
    assert folders == {first.getId(), second.getId()}


def test_a_personnummer_in_free_text_is_masked_but_a_certificate_serial_is_not():
    assert mask_text("PNOSE-191212121212, ring 19121212-1212") == "PNOSE-19121212-****, ring 19121212-****"
    serial = "264957281763548172635481726354817263548172"
    assert mask_text(serial) == serial


# -- export over HTTP -----------------------------------------------------------------------

OFFICER = ("officer", "officer-secret-1")


@pytest.fixture()
def http_site(functional_portal, pdf_bytes):
    from plone.namedfile.file import NamedBlobFile

    user = api.user.create(email="officer@regionen.se", username=OFFICER[0], password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    with api.env.adopt_user(username=OFFICER[0]):
        made = []
        for title in ("Avtal A", "Avtal B", "Utkast C"):
            case = api.content.create(
                container=functional_portal,
                type="SigningCase",
                title=title,
                information_class="K2",
                document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
                signers=[dict(ANNA)],
            )
            if title != "Utkast C":
                _sign_all(case, rows=(ANNA,))
            made.append(case)
    transaction.commit()
    return functional_portal, made


def _token(session, url: str) -> str:
    page = session.get(url, timeout=30)
    assert page.status_code == 200, page.text[:500]
    tag = re.search(r'<input[^>]*name="_authenticator"[^>]*>', page.text).group(0)
    return re.search(r'value="([^"]+)"', tag).group(1)


def test_the_officer_downloads_the_archive_of_a_signed_case(http_site):
    _site, (signed, _other, draft) = http_site
    response = requests.get(signed.absolute_url() + "/@@esign-export", auth=OFFICER, timeout=60)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"] == "application/zip"
    assert f"{signed.getId()}/signed.pdf" in _files(response.content)

    refused = requests.get(
        draft.absolute_url() + "/@@esign-export", auth=OFFICER, timeout=60, allow_redirects=False
    )
    assert refused.status_code == 302
    assert refused.headers["Location"] == draft.absolute_url()


def test_export_all_gives_every_signed_case_of_the_officer_in_one_zip(http_site):
    site, (first, second, _draft) = http_site
    session = requests.Session()
    session.auth = OFFICER
    url = site.absolute_url() + "/@@esign-export-all"
    response = session.post(
        url, data={"_authenticator": _token(session, url), "state:list": "signed"}, timeout=120
    )
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"] == "application/zip"
    folders = {name.split("/")[0] for name in _files(response.content)}
    assert folders == {first.getId(), second.getId()}


def test_export_all_needs_the_authenticator(http_site):
    site, _cases = http_site
    response = requests.post(site.absolute_url() + "/@@esign-export-all", auth=OFFICER, timeout=60)
    assert response.status_code == 403

"""The REST API alone carries a case from creation to a validated signature, over real HTTP.

Every exchange worth showing is recorded into ``test-output/rest/`` (``$ESIGN_RECORD_REST``; the
REST examples in ``docs/rest/`` are refreshed with ``ESIGN_RECORD_REST=docs/rest``; volatile ids
replaced by placeholders); the README's "REST API" section is made from those files.
"""

from __future__ import annotations

import requests

from esign.plone import api as esign
from helpers.rest import Officer, Recorder, RestSigner, assert_error, create_case, refresh, sent_case_uid
from helpers.site import ANNA, BERTIL
from helpers.validators import pdfsig

# The fixtures bankid_server, tester and site.
pytest_plugins = ["helpers.rest"]

# -- tests ---------------------------------------------------------------------------------------


def test_a_case_goes_from_creation_to_a_validated_signature_through_the_rest_api_alone(
    site, tester, pdf_bytes, tmp_path
):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())

    created = create_case(officer, pdf_bytes, (ANNA,))
    assert created.status_code == 201, created.text
    uid = created.json()["UID"]
    record.name(uid, "<case-uid>")
    record.name(created.json()["@id"].rsplit("/", 1)[1], "avtal-om-vardtjanster")
    record("officer-create-case", created, keep=("@id", "@type", "UID", "title", "review_state"))
    case_path = created.json()["@id"].rsplit("/", 1)[1]

    sent = officer.post(f"{case_path}/@workflow/send")
    assert sent.status_code == 200 and sent.json()["review_state"] == "awaiting_signature"
    record("officer-send-case", sent)

    status = officer.get(f"{case_path}/@esign-status")
    assert status.status_code == 200
    signer = status.json()["signers"][0]
    record.name(signer["id"], "<signer-id>")
    assert status.json()["state"] == "awaiting_signature"
    assert signer["identifier"] == "19121212-****" and signer["status"] == "pending"
    assert ANNA["personal_number"] not in status.text
    record("officer-status-awaiting", status)

    anna = RestSigner(site.absolute_url())
    assert_error(anna.get("@esign-pending"), 401, "NotAuthenticated")
    record("signer-pending-without-session", anna.get("@esign-pending"))
    assert anna.csrf
    anna.login(tester, ANNA, record=record)

    pending = anna.get("@esign-pending")
    assert pending.status_code == 200
    assert [item["uid"] for item in pending.json()["items"]] == [uid]
    assert pending.json()["signer"]["identifier"] == "19121212-****"
    record("signer-pending", pending)

    started = anna.post("@esign-sign", {"case": uid, "mode": "qr"})
    assert started.status_code == 200, started.text
    assert started.json()["qr"].startswith("bankid.") and "secret" not in started.text.lower()
    record("signer-sign-start", started)
    order = tester.wait_for_order(kind="sign")
    assert "Avtal om vårdtjänster" in order["visibleText"]  # BankID shows what is signed
    tester.approve(order, personal_number=ANNA["personal_number"])
    collected = anna.collect("@esign-sign")[-1]
    assert collected.json()["status"] == "complete", collected.text
    record("signer-sign-collect-complete", collected)

    case = refresh(site, uid)
    assert esign.state_of(case) == "signed"
    assert case.signer_records[0].evidence["order_ref"] == order["orderRef"]
    record.name(case.signer_records[0].certificate_serial, "<certificate-serial>")

    status = officer.get(f"{case_path}/@esign-status")
    assert status.json()["state"] == "signed"
    assert status.json()["signers"][0]["status"] == "signed"
    assert status.json()["signers"][0]["certificate_serial"] == case.signer_records[0].certificate_serial
    record("officer-status-signed", status)

    download = officer.get(f"{case_path}/@esign-download")
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/pdf"
    record("officer-download", download)
    path = tmp_path / "signed.pdf"
    path.write_bytes(download.content)
    report = pdfsig(path, esign.site_pki().root_pem())
    assert [r["signature"] for r in report] == ["Signature is Valid."]
    assert "PNOSE-191212121212" in report[0]["dn"]

    own_copy = anna.get("@esign-download", case=uid)
    assert own_copy.status_code == 200 and own_copy.content == download.content
    record("signer-download", own_copy)

    validation = officer.get(f"{case_path}/@esign-validation")
    assert validation.status_code == 200
    assert validation.json()["all_valid"] is True
    (signature,) = validation.json()["signatures"]
    assert signature["intact"] and signature["valid"] and signature["trusted"] and signature["bottom_line"]
    assert signature["serial_number"] == "PNOSE-191212121212"
    record("officer-validation", validation)

    events = [entry["event"] for entry in officer.get(f"{case_path}/@esign-audit").json()["items"]]
    assert {"sent", "sign_started", "signed", "downloaded"} <= set(events), events


def test_a_signer_declines_over_rest_and_wrong_calls_get_json_errors(site, tester, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA, BERTIL), "Avtal om städning")
    other_uid = sent_case_uid(officer, pdf_bytes, (ANNA,), "Avtal om hyra")
    record.name(uid, "<case-uid>")

    bertil = RestSigner(site.absolute_url())
    bertil.login(tester, BERTIL)

    forged = bertil.post("@esign-decline", {"case": uid, "reason": "Fel"}, csrf="not-the-token")
    assert_error(forged, 403, "Forbidden")
    record("error-403-csrf", forged)
    assert_error(bertil.post("@esign-decline", {"case": uid}, csrf=""), 403)

    bad_json = bertil.post("@esign-sign", data="{not json")
    assert_error(bad_json, 400, "InvalidInput")
    record("error-400-bad-json", bad_json)
    assert_error(bertil.post("@esign-sign", {"case": uid, "mode": "carrier-pigeon"}), 400)

    unknown = bertil.post("@esign-sign", {"case": "0" * 32, "mode": "qr"})
    record("error-404-unknown-case", unknown)
    # "No such case" and "not your case" read the same, so a guessed UID tells nothing.
    assert assert_error(unknown, 404, "NotFound") == assert_error(
        bertil.post("@esign-decline", {"case": other_uid}), 404, "NotFound"
    )
    assert_error(bertil.get("@esign-download", case=other_uid), 404)
    assert_error(bertil.get("@esign-sign"), 404)  # nothing to collect
    assert_error(bertil.get("@esign-download", case=uid), 404)  # not signed yet

    declined = bertil.post("@esign-decline", {"case": uid, "reason": "Fel belopp i punkt 3"})
    assert declined.status_code == 200, declined.text
    record("signer-decline", declined)
    case = refresh(site, uid)
    assert esign.state_of(case) == "declined"
    assert case.signer_records[1].decline_reason == "Fel belopp i punkt 3"

    too_late = bertil.post("@esign-sign", {"case": uid, "mode": "qr"})
    assert_error(too_late, 409, "WrongState")
    record("error-409-declined-case", too_late)
    assert not [o for o in tester.pending() if o["type"] == "sign"]

    status = officer.get(f"{case.getId()}/@esign-status").json()
    assert [s["status"] for s in status["signers"]] == ["pending", "declined"]
    assert status["signers"][1]["reason"] == "Fel belopp i punkt 3"


def test_officer_endpoints_refuse_strangers_with_json_errors(site, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA,), "Avtal om parkering")
    record.name(uid, "<case-uid>")
    path = refresh(site, uid).getId()

    anonymous = requests.get(
        f"{site.absolute_url()}/++api++/{path}/@esign-status",
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert_error(anonymous, 401, "NotAuthenticated")
    record("error-401-anonymous-officer-endpoint", anonymous)
    stranger = Officer(site.absolute_url(), auth=("other", "other-secret-1"))
    for endpoint in ("@esign-status", "@esign-validation", "@esign-download", "@esign-audit"):
        assert_error(stranger.get(f"{path}/{endpoint}"), 403, "Forbidden")
    assert_error(stranger.post(f"{path}/@esign-remind", {}), 403, "Forbidden")
    assert_error(officer.get(f"{path}/@esign-validation"), 404, "NotFound")
    assert_error(officer.get(f"{path}/@esign-download"), 404, "NotFound")


def test_the_officer_reminds_pending_signers_over_rest(site, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA, BERTIL), "Avtal om snöröjning")
    record.name(uid, "<case-uid>")
    case = refresh(site, uid)
    path = case.getId()
    for signer in case.signer_records:
        record.name(signer.signer_id, f"<signer-id-{signer.position}>")

    everyone = officer.post(f"{path}/@esign-remind", {})
    assert everyone.status_code == 200, everyone.text
    assert everyone.json() == {"reminded": 2}
    one = officer.post(f"{path}/@esign-remind", {"signers": [case.signer_records[1].signer_id]})
    assert one.json() == {"reminded": 1}
    record("officer-remind", one)
    assert_error(officer.post(f"{path}/@esign-remind", {"signers": "all"}), 400, "InvalidInput")


def test_the_officer_reads_an_intact_audit_trail_over_rest(site, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA,), "Avtal om fönsterputs")
    record.name(uid, "<case-uid>")
    path = refresh(site, uid).getId()
    trail = officer.get(f"{path}/@esign-audit")
    assert trail.status_code == 200, trail.text
    body = trail.json()
    assert body["verification"]["ok"] is True
    assert body["verification"]["count"] == len(body["items"]) >= 1
    assert "sent" in [entry["event"] for entry in body["items"]]
    assert ANNA["personal_number"] not in trail.text
    record("officer-audit", trail)

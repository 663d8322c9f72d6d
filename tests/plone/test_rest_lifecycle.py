"""Three cases live their whole lives through the REST API alone, and each audit trail tells it.

One case is signed by both its signers (withdrawal is refused once someone has signed), one is
declined, one is withdrawn, sent again, reminded and left to expire. Every step is in the case's
audit trail, whose hash chain verifies; an edited entry is caught. The exchanges are recorded as
in ``test_rest.py`` (``$ESIGN_RECORD_REST``, ``docs/rest/`` for the README).
"""

from __future__ import annotations

import datetime as dt
import uuid

import requests
import transaction
from plone import api
from zope.annotation.interfaces import IAnnotations

from esign.plone import api as esign
from esign.plone import audit
from esign.plone.workflow.links import SWEDEN
from helpers.journey import BankIDTester, link_in
from helpers.rest import Officer, Recorder, RestSigner, assert_error, create_case, refresh, sent_case_uid
from helpers.site import ANNA, BERTIL, MAIL
from helpers.smtp import text_of
from helpers.validators import pdfsig

# The fixtures bankid_server, tester and site.
pytest_plugins = ["helpers.rest"]

SCHEDULER = ("scheduler", "scheduler-secret-1")


def invitation_token(person: dict, title: str) -> str:
    """The ``t`` of the "Hantera ärendet" link in the newest mail to ``person`` about ``title``."""
    mail = MAIL.wait_for(lambda m: person["email"] in m["To"] and title in text_of(m), timeout=15)
    newest = [m for m in MAIL.messages() if person["email"] in m["To"] and title in text_of(m)][-1]
    assert mail is not None
    return link_in(text_of(newest)).split("?t=", 1)[1]


def log_in_from_link(signer: RestSigner, tester: BankIDTester, person: dict, token: str) -> requests.Response:
    """What a client does for a signer who arrives from the mail: a BankID login that names the link."""
    signer.get("@esign-pending")  # any signer endpoint hands out the CSRF token
    started = signer.post("@esign-login", {"mode": "qr", "link": token})
    assert started.status_code == 200, started.text
    tester.approve(tester.wait_for_order(kind="auth"), personal_number=person["personal_number"])
    assert signer.collect("@esign-login")[-1].json()["status"] == "complete"
    return started


def sign(signer: RestSigner, tester: BankIDTester, person: dict, uid: str) -> requests.Response:
    started = signer.post("@esign-sign", {"case": uid, "mode": "qr"})
    assert started.status_code == 200, started.text
    tester.approve(tester.wait_for_order(kind="sign"), personal_number=person["personal_number"])
    done = signer.collect("@esign-sign")[-1]
    assert done.json()["status"] == "complete", done.text
    return done


def trail(officer: Officer, path: str) -> tuple[list[tuple], bool]:
    """The ``(event, actor, mail kind)`` of every entry, and whether the hash chain verifies."""
    answer = officer.get(f"{path}/@esign-audit")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    verification = body["verification"]
    assert verification["count"] == body["items_total"] == len(body["items"])
    assert verification["ok"] is (verification["problems"] == [])
    # What the mail server made of each mail reaches the trail when the tick runs: timing decides.
    steps = [
        (e["event"], e["actor"], e["data"].get("kind"))
        for e in body["items"]
        if e["event"] not in ("mail_delivered", "mail_failed")
    ]
    return steps, verification["ok"]


def test_three_cases_are_signed_declined_and_expired_through_the_rest_api_alone(
    site, tester, pdf_bytes, tmp_path
):
    url = site.absolute_url()
    user = api.user.create(email="scheduler@regionen.se", username=SCHEDULER[0], password=SCHEDULER[1])
    api.user.grant_roles(user=user, roles=["Manager"])
    transaction.commit()
    record = Recorder(url)
    officer = Officer(url)
    scheduler = Officer(url, auth=SCHEDULER)

    # The officer creates three cases and sends them; the third is withdrawn and sent again.
    # Unique titles: the session's mail catcher also holds other tests' mails.
    run = uuid.uuid4().hex[:6]
    titles = (f"Avtal om hemtjänst {run}", f"Avtal om städning {run}", f"Avtal om snöröjning {run}")
    record.name(f" {run}", "")  # the recorded examples show the plain titles and ids
    record.name(f"-{run}", "")
    signers = ((ANNA, BERTIL), (BERTIL,), (ANNA,))
    uids, paths = [], []
    for number, (title, people) in enumerate(zip(titles, signers, strict=True), start=1):
        created = create_case(officer, pdf_bytes, people, title=title)
        assert created.status_code == 201, created.text
        assert created.json()["review_state"] == "draft"
        uids.append(created.json()["UID"])
        paths.append(created.json()["@id"].rsplit("/", 1)[1])
        record.name(uids[-1], f"<case-uid-{number}>")
        sent = officer.post(f"{paths[-1]}/@workflow/send")
        assert sent.status_code == 200 and sent.json()["review_state"] == "awaiting_signature", sent.text
    signed_path, declined_path, expiring_path = paths
    signed_uid, declined_uid, expiring_uid = uids

    withdrawn = officer.post(f"{expiring_path}/@workflow/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["review_state"] == "draft", withdrawn.text
    record("officer-withdraw-case", withdrawn)
    assert officer.post(f"{expiring_path}/@workflow/send").json()["review_state"] == "awaiting_signature"

    # Case 1: Anna arrives from her mail, logs in with BankID and signs.
    anna = RestSigner(url)
    anna.get("@esign-pending")
    assert_error(anna.post("@esign-login", {"mode": "qr", "link": "not-a-link"}), 404, "NotFound")
    started = log_in_from_link(anna, tester, ANNA, invitation_token(ANNA, titles[0]))
    record.name(invitation_token(ANNA, titles[0]), "<t-from-the-mail-link>")
    record("signer-login-start-with-link", started)
    pending = anna.get("@esign-pending").json()
    assert sorted(item["uid"] for item in pending["items"]) == sorted([signed_uid, expiring_uid])
    sign(anna, tester, ANNA, signed_uid)

    # Someone has signed: the workflow's guard refuses to take the case back.
    refused = officer.post(f"{signed_path}/@workflow/withdraw")
    assert_error(refused, 400, "WorkflowException")
    record("error-400-withdraw-after-signature", refused)
    status = officer.get(f"{signed_path}/@esign-status").json()
    assert status["state"] == "awaiting_signature"
    assert [s["status"] for s in status["signers"]] == ["signed", "pending"]

    # Bertil signs case 1 (which completes it) and declines case 2.
    bertil = RestSigner(url)
    log_in_from_link(bertil, tester, BERTIL, invitation_token(BERTIL, titles[0]))
    sign(bertil, tester, BERTIL, signed_uid)
    declined = bertil.post("@esign-decline", {"case": declined_uid, "reason": "Fel belopp i punkt 3"})
    assert declined.status_code == 200, declined.text
    assert officer.get(f"{declined_path}/@esign-status").json()["state"] == "declined"

    # The officer downloads case 1: both signatures validate, with pdfsig and with the service.
    assert officer.get(f"{signed_path}/@esign-status").json()["state"] == "signed"
    download = officer.get(f"{signed_path}/@esign-download")
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/pdf"
    path = tmp_path / "signed.pdf"
    path.write_bytes(download.content)
    report = pdfsig(path, esign.site_pki().root_pem())
    assert [r["signature"] for r in report] == ["Signature is Valid."] * 2
    validation = officer.get(f"{signed_path}/@esign-validation").json()
    assert validation["all_valid"] is True and len(validation["signatures"]) == 2
    assert all(s["valid"] and s["trusted"] and s["intact"] for s in validation["signatures"])

    # Case 3: a reminder, then the last day passes and the scheduler's tick expires it.
    reminded = officer.post(f"{expiring_path}/@esign-remind", {})
    assert reminded.status_code == 200 and reminded.json() == {"reminded": 1}, reminded.text
    assert_error(officer.post("@esign-tick"), 403, "Forbidden")  # the officer is no site manager
    case = refresh(site, expiring_uid)
    case.deadline = dt.datetime.now(SWEDEN).date() - dt.timedelta(days=1)  # the precondition: it passed
    transaction.commit()
    ticked = scheduler.post("@esign-tick")
    assert ticked.status_code == 200, ticked.text
    summary = ticked.json()
    assert isinstance(summary.pop("deliveries"), int)
    assert summary == {"expired": [expiring_uid], "reminded": 0, "renewed": []}
    record("manager-tick", ticked)
    again = scheduler.post("@esign-tick").json()
    assert {"expired": again["expired"], "reminded": again["reminded"]} == {"expired": [], "reminded": 0}
    expired = officer.get(f"{expiring_path}/@esign-status")
    assert expired.json()["state"] == "expired"
    assert [s["status"] for s in expired.json()["signers"]] == ["pending"]
    assert_error(anna.post("@esign-sign", {"case": expiring_uid, "mode": "qr"}), 409, "WrongState")

    # Every step is in each case's audit trail, and every trail's hash chain holds.
    invitation = ("mail_queued", "system", "invitation")
    assert trail(officer, signed_path) == (
        [
            ("created", "user:officer", None),
            ("sent", "user:officer", None),
            invitation,
            invitation,
            ("link_opened", "signer:1", None),
            ("login", "signer:1", None),
            ("sign_started", "signer:1", None),
            ("signed", "signer:1", None),
            ("link_opened", "signer:2", None),
            ("login", "signer:2", None),
            ("sign_started", "signer:2", None),
            ("signed", "signer:2", None),
            ("archive_timestamped", "system", None),  # B-LTA: the document timestamp
            ("completed", "system", None),
            *[("mail_queued", "system", "completed")] * 3,  # the officer and both signers
            ("downloaded", "user:officer", None),
        ],
        True,
    )
    assert trail(officer, declined_path) == (
        [
            ("created", "user:officer", None),
            ("sent", "user:officer", None),
            invitation,
            ("declined", "signer:1", None),
            ("mail_queued", "system", "declined"),
        ],
        True,
    )
    assert trail(officer, expiring_path) == (
        [
            ("created", "user:officer", None),
            ("sent", "user:officer", None),
            invitation,
            ("mail_queued", "system", "withdrawn"),
            ("withdrawn", "user:officer", None),
            ("sent", "user:officer", None),
            invitation,
            ("mail_queued", "system", "reminder"),
            ("reminded", "user:officer", None),
            ("expired", "system", None),
            ("mail_queued", "system", "expired"),
        ],
        True,
    )


def test_an_edited_audit_entry_is_reported_over_rest(site, pdf_bytes):
    record = Recorder(site.absolute_url())
    officer = Officer(site.absolute_url())
    uid = sent_case_uid(officer, pdf_bytes, (ANNA,), "Avtal om fönsterputs")
    record.name(uid, "<case-uid>")
    path = refresh(site, uid).getId()
    assert officer.get(f"{path}/@esign-audit").json()["verification"]["ok"] is True

    # Someone with access to the database makes the case look sent to more signers.
    case = refresh(site, uid)
    log = IAnnotations(case)[audit.ANNOTATION_KEY]
    assert log[1]["event"] == "sent"
    log[1] = dict(log[1], data=dict(log[1]["data"], signers=2))
    transaction.commit()

    tampered = officer.get(f"{path}/@esign-audit")
    assert tampered.status_code == 200, tampered.text
    verification = tampered.json()["verification"]
    assert verification["ok"] is False
    assert verification["problems"] == ["post 2 har ändrats efter att den skrevs"]
    record("officer-audit-tampered", tampered, keep=("@id", "items_total", "verification"))

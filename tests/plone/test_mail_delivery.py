"""What became of a mail: the queue logs each outcome, the tick puts it into the case's audit trail."""

from __future__ import annotations

import json
import smtplib
import time

import pytest
import transaction
from plone import api

from esign.plone import audit
from esign.plone.notify import mail
from esign.plone.workflow import lifecycle
from helpers.site import ANNA, BERTIL, send_new_case
from helpers.smtp import mail_catcher

QUEUE_INTERVAL = 0.2
REFUSED = dict(BERTIL, email="reject-bertil@example.se")


@pytest.fixture()
def catcher(tmp_path):
    with mail_catcher(tmp_path / "caught") as running:
        running.reject_prefix = "reject"
        yield running


@pytest.fixture()
def queue(tmp_path):
    return tmp_path / "queue"


@pytest.fixture()
def site(functional_portal, catcher, queue, monkeypatch):
    """The functional site, its MailHost queueing (in its own folder) to a catcher that refuses reject*@."""
    monkeypatch.setattr(mail, "QUEUE_INTERVAL", QUEUE_INTERVAL)
    monkeypatch.setenv("ESIGN_SMTP_PORT", str(catcher.smtp_port))
    api.portal.set_registry_record("plone.email_from_address", "e-underskrift@regionen.se")
    api.portal.set_registry_record("plone.default_language", "sv")
    mail.configure_mailhost(host="127.0.0.1", port=catcher.smtp_port, queue_directory=queue)
    user = api.user.create(email="officer@regionen.se", username="officer", password="officer-secret-1")
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    yield functional_portal
    mail.stop_queue_processor(api.portal.get_tool("MailHost"))


def send_case(site, pdf_bytes, signers):
    return send_new_case(site, pdf_bytes, officer="officer", signers=signers, title="Avtal om vårdtjänster")


def wait_for_outcomes(queue, message_ids, timeout: float = 10) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        outcomes, _ = mail.delivery_outcomes(queue)
        final = {o["message_id"]: o for o in outcomes if o["status"] in ("delivered", "failed")}
        if set(message_ids) <= set(final):
            return final
        if time.monotonic() >= deadline:
            raise TimeoutError(f"No outcome for {set(message_ids) - set(final)} within {timeout} s")
        time.sleep(0.05)


def events(case, name: str) -> list:
    return [e for e in audit.entries(case) if e.event == name]


def test_the_tick_records_a_delivered_and_a_refused_mail_once(site, pdf_bytes, catcher, queue):
    case = send_case(site, pdf_bytes, (ANNA, REFUSED))
    queued = {e.data["recipient"]: e.data["message_id"] for e in events(case, "mail_queued")}
    assert set(queued) == {"signer:1", "signer:2"}

    arrived = catcher.wait_for(lambda m: ANNA["email"] in str(m["To"]), timeout=10)
    assert arrived["X-ESign-Case"] == case.UID()
    outcomes = wait_for_outcomes(queue, queued.values())
    assert outcomes[queued["signer:1"]]["status"] == "delivered"
    refused = outcomes[queued["signer:2"]]
    assert refused["status"] == "failed"
    assert refused["reply"] == "550 5.1.1 Mailbox unavailable"
    assert refused["case"] == case.UID()
    log = (queue / mail.DELIVERY_LOG).read_text()
    assert ANNA["email"] not in log and "reject-bertil" not in log  # no address in the log
    assert [str(m["To"]) for m in catcher.messages()] == [f"{ANNA['name']} <{ANNA['email']}>"]
    assert api.portal.get_tool("MailHost").queueLength() == 0  # the refused one is set aside

    result = lifecycle.tick()
    transaction.commit()
    assert result["deliveries"] == 2

    delivered, failed = events(case, "mail_delivered"), events(case, "mail_failed")
    assert [(e.actor, e.data["recipient"], e.data["message_id"]) for e in delivered] == [
        ("system", "signer:1", queued["signer:1"])
    ]
    assert [(e.actor, e.data["recipient"], e.data["message_id"]) for e in failed] == [
        ("system", "signer:2", queued["signer:2"])
    ]
    assert failed[0].data["reply"] == "550 5.1.1 Mailbox unavailable"
    assert failed[0].data["kind"] == "invitation"
    assert failed[0].label == "E-post kunde inte levereras"
    assert delivered[0].label == "E-post levererad"
    assert audit.verify(case).ok

    # Again, and as another instance would that has not read the log yet: nothing new.
    assert lifecycle.tick()["deliveries"] == 0
    from zope.annotation.interfaces import IAnnotations

    del IAnnotations(site)[mail.OFFSET_KEY]
    assert lifecycle.tick()["deliveries"] == 0
    transaction.commit()
    assert len(events(case, "mail_delivered")) == len(events(case, "mail_failed")) == 1
    assert audit.verify(case).ok


def test_the_log_is_read_in_whole_lines_from_the_offset(tmp_path):
    assert mail.delivery_outcomes(tmp_path) == ([], 0)
    log = tmp_path / mail.DELIVERY_LOG
    first = json.dumps({"message_id": "<a@x>", "status": "delivered", "reply": "250 accepted"}) + "\n"
    log.write_text(first + "not json\n" + '{"message_id": "<b@x>", "sta')  # a line being written
    outcomes, offset = mail.delivery_outcomes(tmp_path)
    assert [o["message_id"] for o in outcomes] == ["<a@x>"]
    assert offset == len(first) + len("not json\n")

    with log.open("a") as fh:
        fh.write('tus": "failed", "reply": "550"}\n')
    outcomes, offset = mail.delivery_outcomes(tmp_path, since_offset=offset)
    assert [(o["message_id"], o["status"]) for o in outcomes] == [("<b@x>", "failed")]
    assert offset == log.stat().st_size
    assert mail.delivery_outcomes(tmp_path, since_offset=offset) == ([], offset)

    log.write_text(first)  # rotated: shorter than the offset, read from the start
    assert [o["message_id"] for o in mail.delivery_outcomes(tmp_path, since_offset=offset)[0]] == ["<a@x>"]


def test_the_mail_catcher_refuses_reject_addresses_permanently(tmp_path):
    with mail_catcher(tmp_path) as catcher:
        catcher.reject_prefix = "reject"
        with smtplib.SMTP("127.0.0.1", catcher.smtp_port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("a@example.se", ["Reject.me@example.se"], "Subject: x\r\n\r\nx\r\n")
            assert refused.value.recipients == {"Reject.me@example.se": (550, b"5.1.1 Mailbox unavailable")}
            client.sendmail("a@example.se", ["b@example.se"], "Subject: y\r\n\r\ny\r\n")
        assert [str(m["Subject"]) for m in catcher.messages()] == ["y"]

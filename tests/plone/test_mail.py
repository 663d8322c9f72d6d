"""Mail to signers and officers travels through MailHost's queue to a real SMTP server after commit."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import transaction
from plone import api
from plone.app.testing import TEST_USER_ID, setRoles
from plone.namedfile.file import NamedBlobFile

from esign.plone.notify import mail
from esign.plone.workflow import cases
from helpers.site import ANNA, BERTIL
from helpers.smtp import free_port, html_of, mail_catcher, text_of


def carries_a_personnummer(text: str) -> bool:
    """ANNA's or BERTIL's personnummer in any of its written forms."""
    for row in (ANNA, BERTIL):
        digits = row["personal_number"]
        forms = (digits, f"{digits[:8]}-{digits[8:]}", digits[2:], f"{digits[2:8]}-{digits[8:]}")
        if any(form in text for form in forms):
            return True
    return False


RETRY_INTERVAL = 0.2


@pytest.fixture()
def catcher(tmp_path):
    with mail_catcher(tmp_path / "caught") as running:
        yield running


@pytest.fixture()
def site(functional_portal, catcher, tmp_path, monkeypatch):
    """The functional site, its MailHost queueing to the catcher with a short retry interval."""
    monkeypatch.setattr(mail, "QUEUE_INTERVAL", RETRY_INTERVAL)
    # This module's own catcher, not the session's (whose address is in the environment).
    monkeypatch.setenv("ESIGN_SMTP_PORT", str(catcher.smtp_port))
    api.portal.set_registry_record("plone.email_from_address", "e-underskrift@regionen.se")
    api.portal.set_registry_record("plone.email_from_name", "E-underskrift Hälso- och sjukvårdsförvaltningen")
    api.portal.set_registry_record("plone.default_language", "sv")
    mail.configure_mailhost(host="127.0.0.1", port=catcher.smtp_port, queue_directory=tmp_path / "queue")
    transaction.commit()
    yield functional_portal
    mail.stop_queue_processor(api.portal.get_tool("MailHost"))


@pytest.fixture()
def sent_case(site, pdf_bytes):
    """A case with signer records for ANNA and BERTIL, committed.

    The records are made directly, not by the "send" transition, so that the only
    mails are the ones each test sends.
    """
    setRoles(site, TEST_USER_ID, ["Manager"])
    case = api.content.create(
        container=site,
        type="SigningCase",
        title="Avtal om vårdtjänster",
        document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
        signers=[dict(ANNA), dict(BERTIL)],
        information_class="K2",
        message="Hej!\nSkriv gärna under före månadsskiftet.",
        deadline=dt.date.today() + dt.timedelta(days=14),
    )
    cases.freeze(case)
    transaction.commit()
    return case


def link_for(case, record) -> str:
    return f"{case.absolute_url()}/@@esign-sign?signer={record.signer_id}"


def to(address: str):
    return lambda message: address in str(message["To"])


def test_an_invitation_arrives_after_commit_with_the_link_and_no_personnummer(sent_case, catcher):
    anna = sent_case.signer_records[0]
    mail.send_invitation(sent_case, anna, link=link_for(sent_case, anna))
    time.sleep(3 * RETRY_INTERVAL)
    assert catcher.messages() == []

    transaction.commit()
    message = catcher.wait_for(to("anna@example.se"), timeout=5)

    assert message["Subject"] == "Du har en ny elektronisk underskrift att hantera"
    assert message["From"].addresses[0].addr_spec == "e-underskrift@regionen.se"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    page, text = html_of(message), text_of(message)
    assert f'<a href="{link_for(sent_case, anna)}"' in page
    assert ">Hantera ärendet</a>" in page
    assert f"Hantera ärendet:\n{link_for(sent_case, anna)}" in text
    for part in (page, text):
        assert "Avtal om vårdtjänster" in part
        assert "Skriv gärna under före månadsskiftet." in part
        assert "Sista dag för underskrift" in part
        assert "Inloggning Medborgare" in part
        assert "Inloggning Personal" in part
        assert "samma rättsliga status som en handskriven underskrift" in part
        assert not carries_a_personnummer(part)
    assert not carries_a_personnummer(message.as_string())


def test_an_aborted_transaction_sends_nothing(sent_case, catcher):
    anna, bertil = sent_case.signer_records
    mail.send_invitation(sent_case, anna, link=link_for(sent_case, anna))
    transaction.abort()
    mail.send_invitation(sent_case, bertil, link=link_for(sent_case, bertil))
    transaction.commit()

    catcher.wait_for(to("bertil@example.se"), timeout=5)
    time.sleep(3 * RETRY_INTERVAL)
    assert [str(m["To"]) for m in catcher.messages()] == ["Bertil Berg <bertil@example.se>"]


def test_a_mail_queued_during_an_smtp_outage_goes_out_when_the_server_is_back(sent_case, catcher):
    catcher.stop()
    anna = sent_case.signer_records[0]
    mail.send_invitation(sent_case, anna, link=link_for(sent_case, anna))
    transaction.commit()  # the outage does not stop the transition's transaction
    time.sleep(5 * RETRY_INTERVAL)  # several failed passes
    mailhost = api.portal.get_tool("MailHost")
    assert mailhost.queueLength() == 1

    catcher.start()
    message = catcher.wait_for(to("anna@example.se"), timeout=5 * RETRY_INTERVAL + 2)
    assert message["Subject"] == "Du har en ny elektronisk underskrift att hantera"
    assert mailhost.queueLength() == 0


def test_the_texts_are_english_when_the_site_language_is_english(sent_case, catcher):
    api.portal.set_registry_record("plone.default_language", "en-gb")
    anna = sent_case.signer_records[0]
    mail.send_invitation(sent_case, anna, link=link_for(sent_case, anna))
    transaction.commit()

    message = catcher.wait_for(to("anna@example.se"), timeout=5)
    assert message["Subject"] == "You have a new electronic signature to handle"
    assert message["Content-Language"] == "en"
    assert ">Handle the case</a>" in html_of(message)
    assert "same legal standing as a handwritten signature" in text_of(message)


def test_the_officer_learns_who_declined_and_why(sent_case, catcher):
    bertil = sent_case.signer_records[1]
    bertil.status, bertil.decline_reason = "declined", "Fel belopp i § 4 <b>"
    mail.send_declined(
        sent_case, bertil, officer_email="officer@example.se", case_url=sent_case.absolute_url()
    )
    transaction.commit()

    message = catcher.wait_for(to("officer@example.se"), timeout=5)
    assert message["Subject"] == "Bertil Berg har valt att inte skriva under: Avtal om vårdtjänster"
    text, page = text_of(message), html_of(message)
    assert "”Ta bort ärendet”" in text
    assert "> Fel belopp i § 4 <b>" in text
    assert "Fel belopp i § 4 &lt;b&gt;" in page
    assert f'<a href="{sent_case.absolute_url()}"' in page
    assert not carries_a_personnummer(message.as_string())


def test_every_party_gets_the_download_link_when_all_have_signed(sent_case, catcher):
    download = f"{sent_case.absolute_url()}/@@download/signed_document"
    mail.send_completed(
        sent_case,
        recipients=[(ANNA["name"], ANNA["email"]), (BERTIL["name"], BERTIL["email"])],
        download_url=download,
    )
    transaction.commit()

    for address in ("anna@example.se", "bertil@example.se"):
        message = catcher.wait_for(to(address), timeout=5)
        assert message["Subject"] == "Alla parter har undertecknat dokumentet"
        assert f'<a href="{download}"' in html_of(message)
        assert ">Ladda ned det undertecknade dokumentet</a>" in html_of(message)
        assert "ska bevaras i digital form" in text_of(message)
        assert "handlingen blir ogiltig" in text_of(message)
        assert "," not in str(message["To"])  # one mail each: no party sees the others' addresses


def test_the_officer_can_send_a_copy_and_is_told_when_the_case_is_complete(sent_case, catcher):
    download = f"{sent_case.absolute_url()}/@@download/signed_document"
    mail.send_copy(sent_case, recipient=("Åsa Öberg", "asa@example.se"), download_url=download)
    mail.send_officer_completed(
        sent_case, officer_email="officer@example.se", case_url=sent_case.absolute_url()
    )
    transaction.commit()

    copy = catcher.wait_for(to("asa@example.se"), timeout=5)
    assert copy["Subject"] == "Digital kopia av det undertecknade dokumentet"
    assert str(copy["To"]) == "Åsa Öberg <asa@example.se>"
    assert "digital kopia av originalet" in text_of(copy)
    done = catcher.wait_for(to("officer@example.se"), timeout=5)
    assert done["Subject"] == "Ärendet är färdigt: Avtal om vårdtjänster"


def test_without_the_queue_mail_goes_straight_to_the_server_at_commit(sent_case, catcher):
    settings = mail.configure_mailhost(queue=False)
    assert settings.queue_directory is None
    assert settings.port == catcher.smtp_port  # the registry now holds what the MailHost uses
    anna = sent_case.signer_records[0]
    mail.send_invitation(sent_case, anna, link=link_for(sent_case, anna))
    transaction.commit()

    assert catcher.wait_for(to("anna@example.se"), timeout=1)


def test_the_mail_catcher_command_shows_a_mail_on_its_page(tmp_path):
    smtp_port, http_port = free_port(), free_port()
    script = Path(sys.executable).with_name("esign-mail-catcher")
    process = subprocess.Popen(
        [str(script), "--dir", str(tmp_path), "--smtp-port", str(smtp_port), "--http-port", str(http_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == f"SMTP: 127.0.0.1:{smtp_port}"
        assert process.stdout.readline().strip() == f"E-post (lokal): http://127.0.0.1:{http_port}/"
        import smtplib

        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as client:
            client.sendmail(
                "a@example.se",
                ["b@example.se"],
                "Subject: =?utf-8?q?Pr=C3=B6vning?=\r\nTo: b@example.se\r\n\r\nHej https://example.se/x\r\n",
            )
        page = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=5).read().decode()
        assert "E-post (lokal)" in page
        assert "Prövning" in page
        assert "b@example.se" in page
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0

"""The signer's journey over real HTTP: mail → "Hantera ärendet" → BankID / SITHS → sign or decline.

Real sockets throughout: the site runs on a WSGI server, BankID is the project's
RP API v6 test server (mutual TLS), SITHS is the project's OIDC provider, mail is
caught by a real SMTP server. Nothing in the add-on is bypassed.
"""

import os

import pytest
import transaction
from plone import api

from esign.plone import api as esign
from esign.plone import storage
from esign.plone.testservers.bankid import BankIDTestServer
from esign.plone.testservers.oidc import OIDCTestProvider
from helpers.journey import BankIDTester, SignerBrowser, hidden, link_in
from helpers.site import ANNA, BERTIL, MAIL, STAFF, send_new_case
from helpers.smtp import text_of
from helpers.validators import pdfsig

OFFICER = ("officer", "officer-secret-1")


@pytest.fixture(scope="session")
def bankid_server(tmp_path_factory):
    server = BankIDTestServer(tmp_path_factory.mktemp("bankid")).start()
    os.environ.update(server.environment())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def idp(tmp_path_factory):
    provider = OIDCTestProvider(
        clients={"esign-plone": {"secret": "esign-plone-secret", "redirect_uris": ["http://localhost:*"]}},
        key_dir=tmp_path_factory.mktemp("oidc"),
    ).start()
    os.environ.update(
        ESIGN_OIDC_ISSUER=provider.issuer,
        ESIGN_OIDC_CLIENT_ID="esign-plone",
        ESIGN_OIDC_CLIENT_SECRET="esign-plone-secret",
    )
    yield provider
    provider.stop()


@pytest.fixture()
def tester(bankid_server):
    return BankIDTester(bankid_server.page_url)


@pytest.fixture()
def site(functional_portal, bankid_server, idp):
    api.portal.set_registry_record("plone.default_language", "sv")
    user = api.user.create(email="officer@regionen.se", username="officer", password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    return functional_portal


@pytest.fixture()
def sent_case(site, pdf_bytes):
    def factory(signers=(ANNA, STAFF), **fields):
        fields.setdefault("message", "Välkommen att skriva under.")
        return send_new_case(
            site, pdf_bytes, officer="officer", signers=signers, information_class="K3", **fields
        )

    return factory


def mail_to(address: str, case, *, words: str = ""):
    return MAIL.wait_for(
        lambda m: address in m["To"] and case.title in text_of(m) and words in (m["Subject"] + text_of(m)),
        timeout=15,
    )


def browser_for(site) -> SignerBrowser:
    return SignerBrowser(site.absolute_url())


def refresh(case):
    case._p_jar.sync()
    return case


def test_a_citizen_and_a_staff_member_sign_and_everyone_gets_the_signed_document(
    site, sent_case, tester, tmp_path
):
    case = sent_case()
    uid = case.UID()

    anna = browser_for(site)
    invitation = mail_to(ANNA["email"], case)
    assert "Hantera ärendet" in text_of(invitation)
    landing = anna.get(link_in(text_of(invitation)))
    assert landing.url.endswith("/@@esign-login")  # the link shows nothing before the login
    assert "Inloggning Medborgare" in landing.text and "Inloggning Personal" in landing.text
    logged_in = anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])
    assert logged_in["status"] == "complete"
    assert logged_in["next"].endswith(f"@@esign-review?case={uid}")

    pending = anna.get("@@esign-pending")
    assert "Hantera väntande underskrifter" in pending.text
    assert (
        case.title in pending.text
        and "Visa och skriv under" in pending.text
        and "Ta bort ärendet" in pending.text
    )
    review = anna.get(f"@@esign-review?case={uid}")
    assert "samma rättsliga status som en handskriven underskrift" in review.text
    document = anna.get(f"@@esign-signer-document?case={uid}")
    assert document.content.startswith(b"%PDF")

    signed = anna.sign_with_bankid(tester, uid, personal_number=ANNA["personal_number"])
    assert signed["status"] == "complete", signed
    assert case.title in signed["order"]["visibleText"]  # BankID showed what is signed
    assert "SHA-256" in signed["order"]["visibleText"]
    assert refresh(case).signer_records[0].status == "signed"
    assert case.signer_records[0].evidence["order_ref"] == signed["order"]["orderRef"]
    assert case.signer_records[0].evidence["ocsp_response"]

    sara = browser_for(site)
    landing = sara.get(link_in(text_of(mail_to(STAFF["email"], case))))
    after_login = sara.login_with_siths(person="sara")
    assert after_login.url.endswith(f"@@esign-review?case={uid}"), after_login.url
    done = sara.sign_with_siths(uid, person="sara")
    assert done.url.endswith(f"@@esign-done?case={uid}"), done.url
    assert "Tack! Dokumentet är undertecknat" in done.text

    assert esign.state_of(refresh(case)) == "signed"
    assert case.signer_records[1].evidence["method"] == "siths"
    completed = mail_to(ANNA["email"], case, words="Ladda ned")
    download = anna.get(link_in_download(text_of(completed)))
    assert download.status_code == 200 and download.content.startswith(b"%PDF")
    path = tmp_path / "signed.pdf"
    path.write_bytes(download.content)
    report = pdfsig(path, esign.site_pki().root_pem())
    assert [r["signature"] for r in report] == ["Signature is Valid.", "Signature is Valid."]
    assert "PNOSE-191212121212" in report[0]["dn"] and "SE2321000016-1003" in report[1]["dn"]
    assert mail_to("officer@regionen.se", case)


def link_in_download(text: str) -> str:
    import re

    match = re.search(r"(https?://\S+/@@esign-download\?case=[\w-]+)", text)
    assert match, "no download link in the completion mail"
    return match.group(1)


def test_a_signer_declines_with_a_reason_and_the_officer_is_told(site, sent_case, tester):
    case = sent_case(signers=(ANNA, BERTIL))
    bertil = browser_for(site)
    bertil.get(link_in(text_of(mail_to(BERTIL["email"], case))))
    bertil.login_with_bankid(tester, personal_number=BERTIL["personal_number"])
    form = bertil.get(f"@@esign-decline?case={case.UID()}")
    unconfirmed = bertil.post(
        f"@@esign-decline?case={case.UID()}",
        {"_esign_csrf": hidden(form.text, "_esign_csrf"), "reason": "Fel belopp"},
    )
    assert "Bekräfta" in unconfirmed.text
    assert esign.state_of(refresh(case)) == "awaiting_signature"
    done = bertil.post(
        f"@@esign-decline?case={case.UID()}",
        {"_esign_csrf": hidden(form.text, "_esign_csrf"), "reason": "Fel belopp i punkt 3", "confirm": "1"},
    )
    assert "Ärendet är borttaget" in done.text
    assert esign.state_of(refresh(case)) == "declined"
    told = mail_to("officer@regionen.se", case, words="Fel belopp i punkt 3")
    assert BERTIL["personal_number"] not in text_of(told)


def test_signing_needs_a_fresh_matching_identity_on_every_door(site, sent_case, tester, idp):
    case = sent_case(signers=(ANNA, STAFF))
    uid = case.UID()
    sara = browser_for(site)
    sara.get(link_in(text_of(mail_to(STAFF["email"], case))))
    sara.login_with_siths(person="sara")
    # Someone else's card at the signing step: refused, nothing signed.
    refused = sara.sign_with_siths(uid, person="lars")
    assert refused.status_code == 403 and "annan person" in refused.text
    assert refresh(case).signer_records[1].status == "pending"
    assert case.signed_document is None

    anna = browser_for(site)
    anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])
    review = anna.get(f"@@esign-review?case={uid}")
    # A POST without the form's CSRF token starts nothing.
    forged = anna.post("@@esign-bankid-start", {"purpose": "sign", "mode": "qr", "case": uid})
    assert forged.status_code == 403
    assert not [o for o in tester.pending() if o["type"] == "sign"]
    anna.sign_with_bankid(tester, uid, personal_number=ANNA["personal_number"])
    # Replaying the finished order's status call signs nothing more.
    replay = anna.get("@@esign-bankid-status").json()
    assert replay["status"] == "failed"
    assert [r.status for r in refresh(case).signer_records] == ["signed", "pending"]
    assert hidden(review.text, "_esign_csrf")


def test_pages_are_closed_to_strangers_and_to_expired_sessions(site, sent_case, tester):
    case = sent_case(signers=(ANNA,))
    uid = case.UID()
    stranger = browser_for(site)
    assert stranger.get(f"@@esign-review?case={uid}").status_code == 401
    assert stranger.get(f"@@esign-signer-document?case={uid}").status_code == 401
    stranger.login_with_bankid(tester, personal_number="198112289874", name="Cecilia Carlsson")
    for path in (
        f"@@esign-review?case={uid}",
        f"@@esign-signer-document?case={uid}",
        f"@@esign-download?case={uid}",
        f"@@esign-decline?case={uid}",
    ):
        response = stranger.get(path)
        assert response.status_code == 404, path
        assert not response.content.startswith(b"%PDF")
    assert case.title not in stranger.get("@@esign-pending").text

    anna = browser_for(site)
    anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])
    assert anna.get(f"@@esign-review?case={uid}").status_code == 200
    # Idle too long: the stored session has passed its expiry.
    site._p_jar.sync()
    for entry in storage.store("sessions").values():
        entry["expires"] = 0
    transaction.commit()
    assert anna.get(f"@@esign-review?case={uid}").status_code == 401


def test_logging_out_ends_the_session(site, sent_case, tester):
    case = sent_case(signers=(ANNA,))
    anna = browser_for(site)
    anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])
    page = anna.get("@@esign-pending")
    assert case.title in page.text
    out = anna.post("@@esign-logout", {"_esign_csrf": hidden(page.text, "_esign_csrf")})
    assert "Du är utloggad" in out.text
    assert anna.get("@@esign-pending").status_code == 401


def test_a_link_dies_when_the_case_is_withdrawn(site, sent_case):
    case = sent_case(signers=(ANNA,))
    link = link_in(text_of(mail_to(ANNA["email"], case)))
    with api.env.adopt_user(username="officer"):
        esign.withdraw_case(refresh(case))
    transaction.commit()
    response = browser_for(site).get(link)
    assert response.status_code == 404
    assert "ogiltig eller har gått ut" in response.text


def test_withdrawing_one_case_kills_its_links_only(site, sent_case):
    """Links are withdrawn by the hashes kept on their case, not by a search of every link."""
    from zope.annotation.interfaces import IAnnotations

    from esign.plone.workflow import links

    first, second = sent_case(signers=(ANNA,)), sent_case(signers=(ANNA,))
    first_link = link_in(text_of(mail_to(ANNA["email"], first)))
    second_link = link_in(text_of(mail_to(ANNA["email"], second)))
    # A case sent before the hashes were kept: found through the store.
    del IAnnotations(refresh(second))[links.CASE_KEY]
    transaction.commit()
    with api.env.adopt_user(username="officer"):
        esign.withdraw_case(refresh(first))
    transaction.commit()
    assert browser_for(site).get(first_link).status_code == 404
    assert browser_for(site).get(second_link).status_code != 404
    with api.env.adopt_user(username="officer"):
        esign.withdraw_case(refresh(second))
    transaction.commit()
    assert browser_for(site).get(second_link).status_code == 404


def test_no_personnummer_in_any_address_of_the_journey(site, sent_case, tester):
    case = sent_case(signers=(ANNA,))
    anna = browser_for(site)
    seen = []
    anna.http.hooks["response"].append(lambda r, *a, **k: seen.extend([r.url] + [h.url for h in r.history]))
    anna.get(link_in(text_of(mail_to(ANNA["email"], case))))
    anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])
    anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])
    assert seen
    for url in seen:
        assert ANNA["personal_number"] not in url and "19121212" not in url


def test_in_sequential_order_the_next_signer_is_mailed_only_after_the_previous_signed(
    site, sent_case, tester
):
    case = sent_case(signers=(ANNA, BERTIL), signing_order="sequential")
    anna = browser_for(site)
    anna.get(link_in(text_of(mail_to(ANNA["email"], case))))
    with pytest.raises(TimeoutError):
        MAIL.wait_for(lambda m: BERTIL["email"] in m["To"] and case.title in text_of(m), timeout=2)
    anna.login_with_bankid(tester, personal_number=ANNA["personal_number"])
    anna.sign_with_bankid(tester, case.UID(), personal_number=ANNA["personal_number"])
    assert "Hantera ärendet" in text_of(mail_to(BERTIL["email"], case))


def test_no_rest_call_signs_or_completes_a_case(site, sent_case):
    import requests
    from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD

    case = sent_case(signers=(ANNA,))
    api_url = case.absolute_url().replace("/plone/", "/plone/++api++/")
    for auth in (OFFICER, (SITE_OWNER_NAME, SITE_OWNER_PASSWORD), None):
        for transition in ("complete", "decline"):
            response = requests.post(
                f"{api_url}/@workflow/{transition}",
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=30,
            )
            assert response.status_code in (400, 401, 403), (transition, auth, response.status_code)
        patched = requests.patch(
            api_url,
            auth=auth,
            headers={"Accept": "application/json"},
            json={"signed_document": {"data": "JVBERi0=", "encoding": "base64", "filename": "x.pdf"}},
            timeout=30,
        )
        assert patched.status_code in (400, 401, 403)
    refresh(case)
    assert esign.state_of(case) == "awaiting_signature"
    assert case.signed_document is None
    assert case.signer_records[0].status == "pending"


def test_the_signer_pages_speak_english_on_an_english_site(site):
    api.portal.set_registry_record("plone.default_language", "en")
    transaction.commit()
    page = browser_for(site).get("@@esign-login?val=medborgare")
    assert "Citizen login" in page.text and "BankID on another device" in page.text
    api.portal.set_registry_record("plone.default_language", "sv")
    transaction.commit()
    page = browser_for(site).get("@@esign-login")
    assert "Inloggning Medborgare" in page.text and "Inloggning Personal" in page.text


def test_a_worker_thread_keeps_its_bankid_connection_between_calls_but_not_for_long(monkeypatch):
    """Each collect would otherwise pay a new mutual-TLS handshake; an idle one is let go."""
    import dataclasses
    import threading

    from esign.plone.identity import bankid
    from esign.plone.workflow import journey

    config = bankid.BankIDConfig(url="https://127.0.0.1:1/rp/v6.0", cert_path="c", key_path="k", ca_path="a")
    monkeypatch.setattr(journey, "bankid_config", lambda: config)
    monkeypatch.setattr(journey, "_bankid_kept", threading.local())
    clock = [1000.0]
    monkeypatch.setattr(journey.time, "monotonic", lambda: clock[0])
    closed = []
    monkeypatch.setattr(bankid.BankIDClient, "close", lambda self: closed.append(self))

    first = journey.bankid_client()
    clock[0] += journey.BANKID_IDLE_SECONDS - 1
    assert journey.bankid_client() is first  # in use: kept
    other_thread = []
    worker = threading.Thread(target=lambda: other_thread.append(journey.bankid_client()))
    worker.start()
    worker.join()
    assert other_thread[0] is not first  # one per worker thread
    clock[0] += journey.BANKID_IDLE_SECONDS + 1
    idle_too_long = journey.bankid_client()
    assert idle_too_long is not first and closed == [first]
    config = dataclasses.replace(config, timeout=1.5)
    assert journey.bankid_client() is not idle_too_long  # a changed configuration: a new client

"""The whole journey in a real browser: the officer's forms, the signers' pages, BankID and SITHS.

Chromium (Debian's, driven by Playwright) clicks through what a handläggare and the
signers see: Plone's login form, the add form, the workflow menu, the mail's
"Hantera ärendet" link, the login chooser, the QR code and its JavaScript polling,
the BankID test server's page (the "app"), the SITHS test provider's login page,
and the decline form. Each step is screenshotted to ``test-output/screenshots/`` (or
``$ESIGN_SCREENSHOTS``; the README shows ``docs/screenshots/``).

The module lives beside test_journey.py because it needs this folder's conftest
(the functional layer, the session's mail catcher): pytest-plone's layer fixtures
can be created only once per session, so another folder cannot load that
conftest a second time.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import transaction
from plone import api
from plone.namedfile.file import NamedBlobFile

from esign.plone import api as esign
from esign.plone.testservers.bankid import BankIDTestServer
from esign.plone.testservers.oidc import OIDCTestProvider
from helpers.browser import Screenshots, launch_chromium, new_context
from helpers.journey import link_in
from helpers.site import ANNA, BERTIL, MAIL, STAFF
from helpers.smtp import text_of
from helpers.validators import pdfsig

pytestmark = pytest.mark.e2e

OFFICER = ("officer", "officer-secret-1")
OFFICER_EMAIL = "officer@regionen.se"
# test-output/ by default; `ESIGN_SCREENSHOTS=docs/screenshots make test` refreshes the README's pictures.
SCREENSHOTS = Path(
    os.environ.get("ESIGN_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
).resolve()


# -- servers and browser (module-scoped; the environment is put back afterwards) --------


@pytest.fixture(scope="module")
def environment() -> Iterator[dict]:
    """Set ``ESIGN_*`` variables for this module only; test_journey.py sets its own."""
    saved = dict(os.environ)
    yield os.environ
    for name in [n for n in os.environ if n.startswith("ESIGN_") and n not in saved]:
        del os.environ[name]
    os.environ.update({n: v for n, v in saved.items() if n.startswith("ESIGN_")})


@pytest.fixture(scope="module")
def bankid_server(environment, tmp_path_factory) -> Iterator[BankIDTestServer]:
    server = BankIDTestServer(tmp_path_factory.mktemp("bankid-e2e")).start()
    environment.update(server.environment())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def idp(environment, tmp_path_factory) -> Iterator[OIDCTestProvider]:
    provider = OIDCTestProvider(
        clients={"esign-plone": {"secret": "esign-plone-secret", "redirect_uris": ["http://localhost:*"]}},
        key_dir=tmp_path_factory.mktemp("oidc-e2e"),
    ).start()
    environment.update(
        ESIGN_OIDC_ISSUER=provider.issuer,
        ESIGN_OIDC_CLIENT_ID="esign-plone",
        ESIGN_OIDC_CLIENT_SECRET="esign-plone-secret",
    )
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def browser():
    # No skip when Chromium is missing: launch_chromium raises and the test fails.
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def shot() -> Screenshots:
    return Screenshots(SCREENSHOTS)


@pytest.fixture()
def site(functional_portal, bankid_server, idp):
    api.portal.set_registry_record("plone.default_language", "sv")
    user = api.user.create(email=OFFICER_EMAIL, username=OFFICER[0], password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    return functional_portal


@pytest.fixture()
def contexts(browser) -> Iterator:
    """Fresh browser contexts (separate cookie jars: separate people); closed afterwards.

    Whatever a page's content security policy blocks shows in the browser's console: the
    signer's pages must work under their policy, so nothing may be blocked.
    """
    opened = []
    blocked: list[str] = []

    def on_console(message) -> None:
        if "Content Security Policy" in message.text:
            blocked.append(message.text)

    def factory():
        context = new_context(browser)
        context.on("console", on_console)
        opened.append(context)
        return context

    yield factory
    for context in opened:
        context.close()
    assert not blocked, blocked


# -- steps ------------------------------------------------------------------------------


def mail_to(address: str, title: str, *, words: str = ""):
    return MAIL.wait_for(
        lambda m: address in m["To"] and title in text_of(m) and words in (m["Subject"] + text_of(m)),
        timeout=15,
    )


def download_link(text: str) -> str:
    match = re.search(r"(https?://\S+/@@esign-download\?case=[\w-]+)", text)
    assert match, "no download link in the completion mail"
    return match.group(1)


def officer_logs_in(page, portal_url: str) -> None:
    page.goto(f"{portal_url}/login")
    page.fill("#__ac_name", OFFICER[0])
    page.fill("#__ac_password", OFFICER[1])
    page.click("#buttons-login")
    page.wait_for_selector("#edit-zone, .pat-toolbar", state="attached")


def officer_creates_case(page, portal_url: str, pdf: Path, title: str) -> None:
    page.goto(f"{portal_url}/++add++SigningCase")
    page.fill("#form-widgets-title", title)
    page.select_option("#form-widgets-information_class", "K3")
    page.fill("#form-widgets-message", "Välkommen att skriva under avtalet.")
    page.set_input_files("#form-widgets-document-input", str(pdf))

    # The datagrid's last row is an "auto-append" row: typing into it adds the next one.
    def visible(field: str):
        return page.locator(f"input[id^='form-widgets-signers-'][id$='-widgets-{field}']:visible")

    for index, row in enumerate((ANNA, STAFF)):
        visible("name").nth(index).wait_for()
        for field in ("name", "personal_number", "hsa_id", "email"):
            if row.get(field):
                visible(field).nth(index).fill(row[field])
    visible("name").nth(2).wait_for()  # the empty auto-append row; the form ignores it


def on_review_page(locator) -> None:
    """Click a button or link on the review page.

    The review page shows the PDF in an iframe; headless Chromium's PDF viewer
    sometimes swallows a mouse click aimed at the page around it while it loads
    (about one click in three here), so the click is dispatched to the element.
    """
    locator.wait_for()
    locator.dispatch_event("click")


def approve_in_bankid_app(app, page_url: str, *, kind: str, person: str, shot=None, name: str = "") -> None:
    """The tester page plays the BankID app: open the pending order, choose the person, "Godkänn"."""
    heading = "Underskrift" if kind == "sign" else "Identifiering"
    app.goto(page_url)
    section = app.locator("section", has=app.locator("h2", has_text=heading)).last
    section.get_by_role("link", name="Öppna i appen").click()
    app.wait_for_url(re.compile(r"/orders/[0-9a-f-]+$"))
    app.select_option("select[name='person']", person)
    if shot:
        shot(app, name)
    app.get_by_role("button", name="Godkänn").click()
    app.wait_for_url(page_url.rstrip("/") + "/")


def staff_at_idp(page, *, person: str = "sara", code: str = "123456", shot=None, name: str = "") -> None:
    page.wait_for_selector("input[name='tx']", state="attached")
    assert "eTjänstekort" in page.content()
    page.check(f"input[name='person'][value='{person}']")
    page.fill("#code", code)
    if shot:
        shot(page, name)
    page.get_by_role("button", name="Logga in").click()


# -- the journeys -----------------------------------------------------------------------


def test_officer_citizen_and_staff_sign_in_a_real_browser(
    site, contexts, shot, bankid_server, pdf_bytes, tmp_path
):
    portal_url = site.absolute_url()
    pdf = tmp_path / "avtal.pdf"
    pdf.write_bytes(pdf_bytes)
    title = f"Avtal om vårdtjänster {uuid.uuid4().hex[:6]}"

    # 1. The handläggare: Plone's login form, the add form, the workflow menu.
    officer = contexts().new_page()
    officer_logs_in(officer, portal_url)
    officer_creates_case(officer, portal_url, pdf, title)
    shot(officer, "01-officer-add-form", full_page=True)
    officer.click("#form-buttons-save")
    officer.wait_for_selector(".esign-case .esign-state[data-state='draft']")
    case_url = officer.url.split("?")[0].removesuffix("/view")
    officer.get_by_role("heading", name=title).wait_for()
    shot(officer, "02-officer-case-draft", full_page=True)
    officer.click("#plone-contentmenu-workflow > a")
    officer.click("#workflow-transition-send")
    officer.wait_for_selector(".esign-case .esign-state[data-state='awaiting_signature']")
    shot(officer, "03-officer-case-sent", full_page=True)

    # 2. Anna: the mail's link, "Inloggning Medborgare", BankID on another device (QR).
    invitation = text_of(mail_to(ANNA["email"], title))
    assert "Hantera ärendet" in invitation
    anna_context = contexts()
    anna = anna_context.new_page()
    anna.goto(link_in(invitation))
    anna.wait_for_url(re.compile(r"/@@esign-login$"))
    shot(anna, "04-citizen-login-chooser")
    anna.click(".esign-citizen")
    anna.get_by_role("button", name="BankID på annan enhet").click()
    anna.wait_for_selector(".esign-qr svg")
    shot(anna, "05-citizen-bankid-qr")
    app = anna_context.new_page()  # the phone's BankID app, played by the test server's page
    approve_in_bankid_app(
        app,
        bankid_server.page_url,
        kind="auth",
        person=ANNA["personal_number"],
        shot=shot,
        name="06-bankid-test-app-login",
    )
    # The QR page polls and moves on by itself to the case.
    anna.wait_for_url(re.compile(r"/@@esign-review\?case="))
    uid = anna.url.rsplit("=", 1)[1]
    anna.wait_for_selector(".esign-sign")
    assert "samma rättsliga status som en handskriven underskrift" in anna.content()
    shot(anna, "07-citizen-review")
    on_review_page(anna.get_by_role("link", name="Till väntande underskrifter"))
    anna.wait_for_url(re.compile(r"/@@esign-pending$"))
    anna.wait_for_selector(".esign-pending .esign-review")
    shot(anna, "08-citizen-pending")
    anna.locator(".esign-pending li", has_text=title).locator(".esign-review").click()
    anna.wait_for_url(re.compile(rf"/@@esign-review\?case={uid}$"))

    # "Skriv under" on this device: the page offers the BankID app and polls.
    on_review_page(anna.locator(".esign-sign"))
    anna.wait_for_selector(".esign-autostart")
    shot(anna, "09-citizen-bankid-sign")
    approve_in_bankid_app(
        app,
        bankid_server.page_url,
        kind="sign",
        person=ANNA["personal_number"],
        shot=shot,
        name="10-bankid-test-app-sign",
    )
    anna.wait_for_url(re.compile(rf"/@@esign-done\?case={uid}$"))
    assert "Tack! Dokumentet är undertecknat" in anna.locator("h1").inner_text()
    shot(anna, "11-citizen-done")

    # 3. Sara: "Inloggning Personal" → "eTjänstekort" → the SITHS provider, twice.
    sara = contexts().new_page()
    sara.goto(link_in(text_of(mail_to(STAFF["email"], title))))
    sara.click(".esign-staff")
    sara.get_by_role("button", name="eTjänstekort").click()
    staff_at_idp(sara, shot=shot, name="12-staff-siths-login")
    sara.wait_for_url(re.compile(rf"/@@esign-review\?case={uid}$"))
    shot(sara, "13-staff-review")
    on_review_page(sara.locator(".esign-sign"))
    staff_at_idp(sara)  # signing asks for the card again (forced login)
    sara.wait_for_url(re.compile(rf"/@@esign-done\?case={uid}$"))
    assert "Tack! Dokumentet är undertecknat" in sara.locator("h1").inner_text()
    shot(sara, "14-staff-done")

    # 4. The completion mail's link, in Anna's (still logged-in) browser: the signed PDF.
    completed = text_of(mail_to(ANNA["email"], title, words="Ladda ned"))
    response = anna_context.request.get(download_link(completed))
    assert response.status == 200, response.status
    assert response.body().startswith(b"%PDF")
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(response.body())
    report = pdfsig(signed, esign.site_pki().root_pem())
    assert [r.get("signature") for r in report] == ["Signature is Valid.", "Signature is Valid."], report
    assert "PNOSE-191212121212" in report[0]["dn"] and STAFF["hsa_id"] in report[1]["dn"]

    # 6. The handläggare's view of the signed case and its signatures.
    officer.goto(case_url)
    officer.wait_for_selector(".esign-case .esign-state[data-state='signed']")
    assert "Dokumentet är undertecknat och låst." in officer.locator(".esign-locked").inner_text()
    shot(officer, "15-officer-case-signed", full_page=True)
    officer.goto(f"{case_url}/@@signatures")
    officer.wait_for_selector(".esign-signature")
    assert officer.locator(".esign-signature[data-ok='yes']").count() == 2
    shot(officer, "16-officer-signatures", full_page=True)
    assert mail_to(OFFICER_EMAIL, title)


def test_a_citizen_declines_with_a_reason_in_a_real_browser(site, contexts, shot, bankid_server, pdf_bytes):
    title = f"Avtal om hemtjänst {uuid.uuid4().hex[:6]}"
    with api.env.adopt_user(username=OFFICER[0]):
        case = api.content.create(
            container=site,
            type="SigningCase",
            title=title,
            information_class="K3",
            document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(ANNA), dict(BERTIL)],
        )
        esign.send_case(case)
    transaction.commit()
    uid = case.UID()

    bertil_context = contexts()
    bertil = bertil_context.new_page()
    bertil.goto(link_in(text_of(mail_to(BERTIL["email"], title))))
    bertil.click(".esign-citizen")
    bertil.get_by_role("button", name="BankID på annan enhet").click()
    bertil.wait_for_selector(".esign-qr svg")
    app = bertil_context.new_page()
    approve_in_bankid_app(app, bankid_server.page_url, kind="auth", person=BERTIL["personal_number"])
    bertil.wait_for_url(re.compile(rf"/@@esign-review\?case={uid}$"))
    on_review_page(bertil.locator(".esign-decline"))
    bertil.wait_for_url(re.compile(rf"/@@esign-decline\?case={uid}$"))
    bertil.fill("#esign-reason", "Fel belopp i punkt 3")
    bertil.check("#esign-confirm")
    shot(bertil, "17-citizen-decline-form")
    bertil.click(".esign-decline-confirm")
    bertil.wait_for_selector(".esign-done")
    assert "Ärendet är borttaget" in bertil.locator("h1").inner_text()
    shot(bertil, "18-citizen-declined")

    told = text_of(mail_to(OFFICER_EMAIL, title, words="Fel belopp i punkt 3"))
    assert BERTIL["personal_number"] not in told
    case._p_jar.sync()
    assert esign.state_of(case) == "declined"

"""Staff log in with the SITHS eTjänstekort over OpenID Connect: the client against the project's
own test provider, over real sockets, driven the way a browser would drive it."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import queue
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from esign.plone.errors import OIDCError
from esign.plone.identity.oidc import (
    HSA_ID_CLAIM,
    MSG_CANCELLED,
    MSG_FAILED,
    MSG_LOA,
    MSG_NOT_FRESH,
    MSG_UNREACHABLE,
    MSG_UNTRUSTED,
    PERSONAL_NUMBER_CLAIM,
    AuthorizationRequest,
    IDTokenClaims,
    OIDCClient,
    OIDCConfig,
    verified_identity,
)
from esign.plone.signing.values import LOA3
from esign.plone.testservers.oidc import PAGE_TITLE, OIDCTestProvider

CLIENT_ID = "esign-plone"
CLIENT_SECRET = "esign-plone-secret"
CALLBACK = "http://localhost:8080/Plone/@@siths-callback"


@pytest.fixture(scope="module")
def running_provider() -> Iterator[OIDCTestProvider]:
    clients = {CLIENT_ID: {"secret": CLIENT_SECRET, "redirect_uris": ["http://localhost:8080/*"]}}
    with OIDCTestProvider(clients=clients) as provider:
        yield provider


@pytest.fixture
def provider(running_provider: OIDCTestProvider) -> Iterator[OIDCTestProvider]:
    yield running_provider
    running_provider.honour_prompt_login = True
    running_provider.rogue_signing_key = None
    running_provider.id_token_filter = None
    running_provider.id_token_overrides = {}


@pytest.fixture
def client(provider: OIDCTestProvider) -> OIDCClient:
    return OIDCClient(OIDCConfig(issuer=provider.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET))


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def open_login(browser: requests.Session, request: AuthorizationRequest) -> requests.Response:
    return browser.get(request.url, allow_redirects=False, timeout=5)


def submit(
    browser: requests.Session,
    page: requests.Response,
    *,
    person: str = "sara",
    six_digits: str = "123456",
    action: str = "approve",
) -> requests.Response:
    tx = re.search(r'name="tx" value="([^"]+)"', page.text)
    assert tx, "the login page has no form"
    form = {"tx": tx.group(1), "person": person, "code": six_digits, "action": action}
    return browser.post(
        urlsplit(page.url)._replace(query="").geturl(), data=form, allow_redirects=False, timeout=5
    )


def callback_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(CALLBACK)
    return dict(parse_qsl(urlsplit(location).query))


def log_in(
    client: OIDCClient, browser: requests.Session, *, force_login: bool = True, person: str = "sara"
) -> tuple[AuthorizationRequest, str]:
    """A full login through the page; the request and the authorization code."""
    request = client.authorization_request(redirect_uri=CALLBACK, force_login=force_login)
    page = open_login(browser, request)
    assert page.status_code == 200 and PAGE_TITLE in page.text
    code = client.code_from_callback(callback_params(submit(browser, page, person=person)), request=request)
    return request, code


def refused(excinfo: pytest.ExceptionInfo[OIDCError]) -> str:
    return f"{excinfo.value.message} | {getattr(excinfo.value, 'details', '')}"


# -- the happy path ------------------------------------------------------------------------------------


def test_a_nurse_logging_in_with_her_card_is_verified_with_hsa_id_personal_number_and_loa3(
    client: OIDCClient, browser: requests.Session
) -> None:
    request, code = log_in(client, browser)

    claims = client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert claims.hsa_id == "SE2321000016-1003"
    assert claims.personal_number == "198112289874"
    assert (claims.given_name, claims.family_name) == ("Sara", "Sjuksköterska")
    assert claims.acr == LOA3
    assert request.created_at - 5 <= claims.auth_time <= time.time() + 1
    identity = verified_identity(claims)
    assert identity.common_name == "Sara Sjuksköterska"
    assert identity.subject_serial_number == "PNOSE-198112289874"
    assert identity.context.method == "siths"
    assert identity.context.identity_provider == client.config.issuer
    assert identity.context.level_of_assurance == LOA3
    assert identity.context.transaction_ref == claims.raw["sid"]
    assert int(identity.context.authenticated_at.timestamp()) == claims.auth_time


def test_the_login_request_uses_pkce_and_demands_a_fresh_login_for_signing(client: OIDCClient) -> None:
    signing = client.authorization_request(redirect_uri=CALLBACK, force_login=True)
    browsing = client.authorization_request(redirect_uri=CALLBACK, force_login=False)

    params = dict(parse_qsl(urlsplit(signing.url).query))
    assert params["code_challenge_method"] == "S256"
    assert params["prompt"] == "login" and params["max_age"] == "0"
    assert params["acr_values"] == LOA3
    assert "prompt" not in dict(parse_qsl(urlsplit(browsing.url).query))
    assert len({signing.state, signing.nonce, signing.code_verifier, browsing.state}) == 4
    assert all(len(value) >= 43 for value in (signing.state, signing.nonce, signing.code_verifier))


def test_lars_gets_his_own_stable_subject(client: OIDCClient) -> None:
    subjects = []
    for _ in range(2):
        with requests.Session() as browser:
            request, code = log_in(client, browser, person="lars")
            claims = client.exchange(code=code, redirect_uri=CALLBACK, request=request)
            subjects.append(claims.subject)
    assert claims.hsa_id == "SE2321000016-1004"
    assert claims.personal_number == "197010632391"
    assert subjects[0] == subjects[1]


# -- tokens we must not trust --------------------------------------------------------------------------


def test_an_id_token_signed_with_another_key_than_the_published_one_is_refused(
    provider: OIDCTestProvider, client: OIDCClient, browser: requests.Session
) -> None:
    provider.rogue_signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    request, code = log_in(client, browser)

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert excinfo.value.message == MSG_UNTRUSTED
    assert "Signature verification failed" in refused(excinfo)


def test_an_id_token_whose_content_was_changed_after_signing_is_refused(
    provider: OIDCTestProvider, client: OIDCClient, browser: requests.Session
) -> None:
    def change_the_name(token: str) -> str:
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims[HSA_ID_CLAIM] = "SE2321000016-9999"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{header}.{forged}.{signature}"

    provider.id_token_filter = change_the_name
    request, code = log_in(client, browser)

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert excinfo.value.message == MSG_UNTRUSTED


def test_an_id_token_from_another_login_attempt_is_refused_by_its_nonce(
    client: OIDCClient, browser: requests.Session
) -> None:
    request, code = log_in(client, browser)
    other_attempt = dataclasses.replace(request, nonce="a-nonce-from-another-login-attempt")

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=other_attempt)

    assert excinfo.value.message == MSG_UNTRUSTED
    assert "nonce" in refused(excinfo)


def test_an_id_token_below_loa3_is_refused(
    provider: OIDCTestProvider, client: OIDCClient, browser: requests.Session
) -> None:
    provider.id_token_overrides = {"acr": "http://id.elegnamnden.se/loa/1.0/loa2"}
    request, code = log_in(client, browser)

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert excinfo.value.message == MSG_LOA


def test_an_id_token_for_another_client_is_refused(
    provider: OIDCTestProvider, client: OIDCClient, browser: requests.Session
) -> None:
    provider.id_token_overrides = {"aud": [CLIENT_ID, "someone-else"], "azp": "someone-else"}
    request, code = log_in(client, browser)

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert excinfo.value.message == MSG_UNTRUSTED
    assert "azp" in refused(excinfo)


def test_an_expired_id_token_is_refused(client: OIDCClient, browser: requests.Session) -> None:
    request, code = log_in(client, browser)

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=request, now=time.time() + 3600)

    assert excinfo.value.message == MSG_UNTRUSTED
    assert "expired" in refused(excinfo)


def test_keys_rolled_by_the_provider_are_fetched_again(
    provider: OIDCTestProvider, client: OIDCClient, browser: requests.Session
) -> None:
    request, code = log_in(client, browser)
    client.exchange(code=code, redirect_uri=CALLBACK, request=request)
    provider.rotate_key()

    with requests.Session() as another_browser:
        request, code = log_in(client, another_browser)
        claims = client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert claims.hsa_id == "SE2321000016-1003"


# -- the token endpoint --------------------------------------------------------------------------------


def test_a_wrong_pkce_verifier_is_refused_by_the_provider(
    client: OIDCClient, browser: requests.Session
) -> None:
    request, code = log_in(client, browser)
    intercepted = dataclasses.replace(request, code_verifier="x" * 64)

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=intercepted)

    assert excinfo.value.message == MSG_FAILED
    assert "HTTP 400" in refused(excinfo) and "invalid_grant" in refused(excinfo)


def test_an_authorization_code_can_be_used_only_once(client: OIDCClient, browser: requests.Session) -> None:
    request, code = log_in(client, browser)
    client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert excinfo.value.message == MSG_FAILED
    assert "invalid_grant" in refused(excinfo)


def test_a_wrong_client_secret_is_refused(provider: OIDCTestProvider, browser: requests.Session) -> None:
    impostor = OIDCClient(OIDCConfig(issuer=provider.issuer, client_id=CLIENT_ID, client_secret="guessed"))
    request, code = log_in(impostor, browser)

    with pytest.raises(OIDCError) as excinfo:
        impostor.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert "invalid_client" in refused(excinfo)


def test_the_provider_accepts_client_secret_post_and_answers_userinfo_for_the_access_token(
    provider: OIDCTestProvider, client: OIDCClient, browser: requests.Session
) -> None:
    request, code = log_in(client, browser)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": request.code_verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    tokens = requests.post(f"{provider.issuer}/token", data=form, timeout=5).json()

    info = requests.get(
        f"{provider.issuer}/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    )
    anonymous = requests.get(f"{provider.issuer}/userinfo", timeout=5)

    assert info.json()[HSA_ID_CLAIM] == "SE2321000016-1003"
    assert info.json()["family_name"] == "Sjuksköterska"
    assert anonymous.status_code == 401


# -- single sign-on and fresh logins -------------------------------------------------------------------


def test_without_force_login_an_sso_session_skips_the_login_page(
    client: OIDCClient, browser: requests.Session
) -> None:
    first_request, first_code = log_in(client, browser, force_login=False)
    first = client.exchange(code=first_code, redirect_uri=CALLBACK, request=first_request)

    request = client.authorization_request(redirect_uri=CALLBACK, force_login=False)
    straight_back = open_login(browser, request)
    claims = client.exchange(
        code=client.code_from_callback(callback_params(straight_back), request=request),
        redirect_uri=CALLBACK,
        request=request,
    )

    assert PAGE_TITLE not in straight_back.text
    assert claims.auth_time == first.auth_time
    assert claims.raw["sid"] == first.raw["sid"]


def test_signing_shows_the_login_page_again_despite_an_sso_session_and_gets_a_fresh_auth_time(
    provider: OIDCTestProvider, client: OIDCClient, browser: requests.Session
) -> None:
    first_request, first_code = log_in(client, browser, force_login=False)
    first = client.exchange(code=first_code, redirect_uri=CALLBACK, request=first_request)
    provider.age_sessions(600)

    request = client.authorization_request(redirect_uri=CALLBACK, force_login=True)
    page = open_login(browser, request)
    code = client.code_from_callback(callback_params(submit(browser, page)), request=request)
    claims = client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert page.status_code == 200 and PAGE_TITLE in page.text
    # The SSO session now dates from ten minutes ago; the signature needs this new login.
    assert claims.auth_time >= request.created_at - 5 > first.auth_time - 600
    assert claims.raw["sid"] != first.raw["sid"]


def test_a_provider_passing_off_an_old_sso_login_as_fresh_is_refused_for_signing(
    provider: OIDCTestProvider, client: OIDCClient, browser: requests.Session
) -> None:
    log_in(client, browser, force_login=False)
    provider.age_sessions(600)
    provider.honour_prompt_login = False

    request = client.authorization_request(redirect_uri=CALLBACK, force_login=True)
    code = client.code_from_callback(callback_params(open_login(browser, request)), request=request)
    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    assert excinfo.value.message == MSG_NOT_FRESH


# -- the login page ------------------------------------------------------------------------------------


@pytest.mark.parametrize("six_digits", ["12345", "1234567", "12a456", ""])
def test_a_security_code_that_is_not_six_digits_shows_an_error_on_the_login_page(
    client: OIDCClient, browser: requests.Session, six_digits: str
) -> None:
    request = client.authorization_request(redirect_uri=CALLBACK, force_login=True)
    page = open_login(browser, request)

    again = submit(browser, page, six_digits=six_digits)

    assert "Location" not in again.headers
    assert "Säkerhetskoden ska vara sex siffror" in again.text
    assert PAGE_TITLE in again.text
    # The person can correct the code on the same page.
    assert callback_params(submit(browser, again, six_digits="246810"))["code"]


def test_cancelling_on_the_login_page_tells_the_person_the_login_was_cancelled(
    client: OIDCClient, browser: requests.Session
) -> None:
    request = client.authorization_request(redirect_uri=CALLBACK, force_login=True)
    params = callback_params(submit(browser, open_login(browser, request), action="cancel"))

    with pytest.raises(OIDCError) as excinfo:
        client.code_from_callback(params, request=request)

    assert params["error"] == "access_denied"
    assert excinfo.value.message == MSG_CANCELLED


def test_a_callback_carrying_another_state_is_refused(client: OIDCClient, browser: requests.Session) -> None:
    request = client.authorization_request(redirect_uri=CALLBACK, force_login=True)
    params = callback_params(submit(browser, open_login(browser, request)))

    with pytest.raises(OIDCError):
        client.code_from_callback({**params, "state": "forged"}, request=request)


def test_an_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(
    client: OIDCClient, browser: requests.Session
) -> None:
    request = client.authorization_request(redirect_uri="https://evil.example/steal", force_login=True)

    page = open_login(browser, request)

    assert page.status_code == 400
    assert "Location" not in page.headers
    assert "inte registrerad" in page.text


# -- configuration and failures ------------------------------------------------------------------------


def test_an_unreachable_provider_says_so_in_swedish() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OIDCClient(
        OIDCConfig(issuer=f"http://127.0.0.1:{port}", client_id="a", client_secret="b", timeout=2)
    )

    with pytest.raises(OIDCError) as excinfo:
        client.authorization_request(redirect_uri=CALLBACK, force_login=True)

    assert excinfo.value.message == MSG_UNREACHABLE
    assert isinstance(excinfo.value.__cause__, requests.RequestException)


def test_a_plain_http_provider_on_the_network_is_refused() -> None:
    with pytest.raises(OIDCError):
        OIDCClient(OIDCConfig(issuer="http://idp.example.se", client_id="a", client_secret="b"))


def test_the_environment_overrides_the_configured_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = {
        "issuer": "https://idp.inera.se/oidc",
        "client_id": "site",
        "client_secret": "x",
        "timeout": 3.0,
    }
    monkeypatch.setenv("ESIGN_OIDC_ISSUER", "http://127.0.0.1:18445")
    monkeypatch.delenv("ESIGN_OIDC_CLIENT_ID", raising=False)
    monkeypatch.delenv("ESIGN_OIDC_CLIENT_SECRET", raising=False)

    config = OIDCConfig.from_env(defaults)

    assert config == OIDCConfig(
        issuer="http://127.0.0.1:18445", client_id="site", client_secret="x", timeout=3.0
    )
    monkeypatch.delenv("ESIGN_OIDC_ISSUER")
    assert OIDCConfig.from_env() is None


def test_personal_numbers_stay_out_of_logs_and_reprs(
    provider: OIDCTestProvider,
    client: OIDCClient,
    browser: requests.Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider.id_token_overrides = {PERSONAL_NUMBER_CLAIM: "19811228987"}
    request, code = log_in(client, browser)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(OIDCError) as excinfo:
        client.exchange(code=code, redirect_uri=CALLBACK, request=request)

    claims = IDTokenClaims("s", "i", 0, LOA3, None, "198112289874", "Sara", "S", raw={"p": "198112289874"})
    assert "1981122898" not in caplog.text + refused(excinfo) + repr(claims)


# -- the console script --------------------------------------------------------------------------------


def test_the_console_script_serves_discovery_and_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = Path(sys.executable).parent / "esign-oidc-test-server"
    key_dir = tmp_path / "oidc-test"
    process = subprocess.Popen(
        [str(script), "--port", str(port), "--key-dir", str(key_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
        settings = {}
        while "ESIGN_OIDC_CLIENT_SECRET" not in settings:
            name, _, value = lines.get(timeout=10).strip().partition("=")
            settings[name] = value
        assert settings["ESIGN_OIDC_ISSUER"] == f"http://127.0.0.1:{port}"
        assert settings["ESIGN_OIDC_CLIENT_ID"] == "esign-plone"

        discovery = requests.get(
            f"{settings['ESIGN_OIDC_ISSUER']}/.well-known/openid-configuration", timeout=5
        )

        assert discovery.json()["issuer"] == settings["ESIGN_OIDC_ISSUER"]
        assert stat.S_IMODE(os.stat(key_dir / "signing-key.pem").st_mode) == 0o600
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
        process.stderr.close()

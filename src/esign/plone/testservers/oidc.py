"""The project's own OpenID Connect provider for tests and ``make start``: a stand-in for Inera IdP.

It speaks real OIDC over HTTP (discovery, authorization code flow with PKCE S256, token endpoint
with ``client_secret_basic`` or ``client_secret_post``, RS256 ID tokens, JWKS, userinfo) and keeps
an SSO session in a cookie like a real identity provider: a later ``/authorize`` from the same
browser goes straight back to the client unless it asks for ``prompt=login`` or ``max_age``.

The login page lets the tester pick a test staff member and type the card's six-digit code (any
six digits will do: there is no card). Never expose it beyond loopback; it vouches for anyone.

A registered redirect URI ending in ``*`` matches every URI that starts with the part before the
``*`` (e.g. ``http://localhost:8080/*``). That is a convenience for development sites whose paths
vary; real providers match redirect URIs exactly.

Run it with ``esign-oidc-test-server`` (see ``--help``), or in tests::

    with OIDCTestProvider(clients={"rp": {"secret": "s", "redirect_uris": ["http://rp/cb"]}}) as provider:
        issuer = provider.issuer
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import logging
import os
import re
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from esign.plone.identity.oidc import HSA_ID_CLAIM, PERSONAL_NUMBER_CLAIM
from esign.plone.signing.values import LOA3
from esign.plone.testservers.http import Handler

logger = logging.getLogger(__name__)

SESSION_COOKIE = "esign_oidc_test_sso"
CODE_LIFETIME = 60
TOKEN_LIFETIME = 300
PENDING_LIFETIME = 600
KEY_FILE = "signing-key.pem"
PAGE_TITLE = "Inloggning Personal – eTjänstekort (test)"

_PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_SIX_DIGITS = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class StaffMember:
    """A test person with a SITHS eTjänstekort."""

    key: str
    given_name: str
    family_name: str
    hsa_id: str
    personal_number: str
    title: str

    @property
    def subject(self) -> str:
        # Opaque and stable across restarts, as a real provider's sub is.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"esign-oidc-test:{self.hsa_id}"))

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"


STAFF = (
    StaffMember("sara", "Sara", "Sjuksköterska", "SE2321000016-1003", "198112289874", "Sjuksköterska"),
    StaffMember("lars", "Lars", "Läkare", "SE2321000016-1004", "197010632391", "Läkare"),
)
STAFF_BY_KEY = {member.key: member for member in STAFF}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_or_create_key(key_dir: Path | None) -> rsa.RSAPrivateKey:
    """The provider's RSA signing key, kept in ``key_dir`` (mode 0600) so restarts keep the JWKS."""
    if key_dir is None:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = key_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def public_jwk(key: rsa.RSAPrivateKey) -> dict:
    """The public JWK of ``key`` with its RFC 7638 thumbprint as ``kid``."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    canonical = json.dumps({name: jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
    jwk["kid"] = _b64url(hashlib.sha256(canonical.encode()).digest())
    jwk.update(use="sig", alg="RS256")
    return jwk


class OIDCTestProvider:
    """A local OpenID Connect provider serving on a background thread.

    :param clients: client id → ``{"secret": ..., "redirect_uris": [...]}``; a redirect URI
        ending in ``*`` is a prefix (development convenience only).
    :param key_dir: where the RSA signing key is kept; ``None`` makes a fresh key in memory.

    Knobs for tests that need a misbehaving provider (all off by default):

    - ``honour_prompt_login``: set ``False`` to answer from the SSO session even when the client
      demanded a fresh login (``prompt=login`` / ``max_age``), as a faulty IdP would.
    - ``rogue_signing_key``: sign ID tokens with this key while still naming the published ``kid``.
    - ``id_token_filter``: a function applied to each encoded ID token before it is sent.
    - ``id_token_overrides``: claims that replace or add to those of every ID token.
    - :meth:`age_sessions`: pretend every SSO login happened some seconds earlier.
    - :meth:`rotate_key`: roll the signing key.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clients: dict[str, dict] | None = None,
        key_dir: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.clients = {
            client_id: {"secret": str(spec["secret"]), "redirect_uris": list(spec.get("redirect_uris", []))}
            for client_id, spec in (clients or {}).items()
        }
        self.signing_key = load_or_create_key(key_dir)
        self.jwk = public_jwk(self.signing_key)
        self.honour_prompt_login = True
        self.rogue_signing_key: rsa.RSAPrivateKey | None = None
        self.id_token_filter: Callable[[str], str] | None = None
        self.id_token_overrides: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, dict] = {}
        self._sessions: dict[str, dict] = {}
        self._codes: dict[str, dict] = {}
        self._access_tokens: dict[str, dict] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        if self._server is None:
            raise RuntimeError("the provider is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> OIDCTestProvider:
        provider = self

        class Handler(_Handler):
            pass

        Handler.provider = provider
        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="oidc-test-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OIDCTestProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def rotate_key(self) -> None:
        """Replace the signing key (in memory only), as a provider rolling its keys does."""
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = public_jwk(self.signing_key)

    def age_sessions(self, seconds: int) -> None:
        """Move every SSO login ``seconds`` into the past (an old session in a long-lived browser)."""
        with self._lock:
            for session in self._sessions.values():
                session["auth_time"] -= seconds

    # -- protocol pieces ----------------------------------------------------------------------------

    def metadata(self) -> dict:
        issuer = self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": [LOA3],
            "prompt_values_supported": ["none", "login"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "sid",
                "given_name",
                "family_name",
                "name",
                HSA_ID_CLAIM,
                PERSONAL_NUMBER_CLAIM,
            ],
            "ui_locales_supported": ["sv"],
        }

    def redirect_uri_allowed(self, client_id: str, redirect_uri: str) -> bool:
        client = self.clients.get(client_id)
        if client is None or not redirect_uri:
            return False
        for registered in client["redirect_uris"]:
            if registered.endswith("*"):
                if redirect_uri.startswith(registered[:-1]):
                    return True
            elif redirect_uri == registered:
                return True
        return False

    def client_authenticated(self, client_id: str, secret: str) -> bool:
        client = self.clients.get(client_id)
        return client is not None and hmac.compare_digest(client["secret"].encode(), secret.encode())

    def issue_code(self, request: dict, session: dict) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = {
                "client_id": request["client_id"],
                "redirect_uri": request["redirect_uri"],
                "code_challenge": request["code_challenge"],
                "nonce": request.get("nonce"),
                "scope": request["scope"],
                "member": session["member"],
                "auth_time": session["auth_time"],
                "sid": session["sid"],
                "expires": time.time() + CODE_LIFETIME,
            }
        return code

    def take_code(self, code: str) -> dict | None:
        # Single use: whatever happens next, this code is gone (RFC 6749 §4.1.2).
        with self._lock:
            grant = self._codes.pop(code, None)
        if grant is None or grant["expires"] < time.time():
            return None
        return grant

    def new_session(self, member: StaffMember) -> tuple[str, dict]:
        cookie = secrets.token_urlsafe(32)
        session = {"member": member, "auth_time": int(time.time()), "sid": str(uuid.uuid4())}
        with self._lock:
            self._sessions[cookie] = session
        return cookie, session

    def session(self, cookie: str | None) -> dict | None:
        if not cookie:
            return None
        with self._lock:
            return self._sessions.get(cookie)

    def remember_request(self, request: dict) -> str:
        tx = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[tx] = {**request, "expires": time.time() + PENDING_LIFETIME}
        return tx

    def pending_request(self, tx: str, *, remove: bool = False) -> dict | None:
        with self._lock:
            request = self._pending.pop(tx, None) if remove else self._pending.get(tx)
        if request is None or request["expires"] < time.time():
            return None
        return request

    def id_token(self, grant: dict) -> str:
        member: StaffMember = grant["member"]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": member.subject,
            "aud": grant["client_id"],
            "exp": now + TOKEN_LIFETIME,
            "iat": now,
            "auth_time": grant["auth_time"],
            "acr": LOA3,
            "amr": ["sc", "pin"],
            "sid": grant["sid"],
            "jti": str(uuid.uuid4()),
            "given_name": member.given_name,
            "family_name": member.family_name,
            "name": member.name,
            HSA_ID_CLAIM: member.hsa_id,
            PERSONAL_NUMBER_CLAIM: member.personal_number,
        }
        if grant.get("nonce"):
            claims["nonce"] = grant["nonce"]
        claims.update(self.id_token_overrides)
        key = self.rogue_signing_key or self.signing_key
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.jwk["kid"]})
        return self.id_token_filter(token) if self.id_token_filter else token

    def issue_access_token(self, grant: dict) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[token] = {**grant, "expires": time.time() + TOKEN_LIFETIME}
        return token

    def access_token(self, token: str) -> dict | None:
        with self._lock:
            grant = self._access_tokens.get(token)
        if grant is None or grant["expires"] < time.time():
            return None
        return grant


def _redirect_with(redirect_uri: str, params: dict[str, str]) -> str:
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return f"{redirect_uri}{separator}{urlencode({k: v for k, v in params.items() if v is not None})}"


class _Handler(Handler):
    provider: OIDCTestProvider
    server_version = "esign-oidc-test"

    # -- plumbing -----------------------------------------------------------------------------------

    def _json(self, status: int, document: dict, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(document).encode(), "application/json", headers)

    def _oauth_error(self, status: int, error: str, description: str, headers: dict | None = None) -> None:
        self._json(status, {"error": error, "error_description": description}, headers)

    def _redirect(self, location: str, headers: dict[str, str] | None = None) -> None:
        self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": location, **(headers or {})})

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return dict(parse_qsl(raw, keep_blank_values=True))

    def _query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))

    def _cookie(self) -> str | None:
        cookies = SimpleCookie(self.headers.get("Cookie", ""))
        morsel = cookies.get(SESSION_COOKIE)
        return morsel.value if morsel else None

    # -- routes -------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        route = urlsplit(self.path).path
        if route == "/.well-known/openid-configuration":
            self._json(HTTPStatus.OK, self.provider.metadata())
        elif route == "/jwks":
            self._json(HTTPStatus.OK, {"keys": [self.provider.jwk]})
        elif route == "/authorize":
            self._authorize(self._query())
        elif route == "/userinfo":
            self._userinfo()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

    def do_POST(self) -> None:
        route = urlsplit(self.path).path
        if route == "/authorize":
            self._approve(self._form())
        elif route == "/token":
            self._token(self._form())
        elif route == "/userinfo":
            self._userinfo()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

    def _authorize(self, params: dict[str, str]) -> None:
        provider = self.provider
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        # RFC 6749 §4.1.2.1: with an unknown client or redirect URI, tell the person, never redirect.
        if not provider.redirect_uri_allowed(client_id, redirect_uri):
            self._page(
                HTTPStatus.BAD_REQUEST,
                error="Tjänsten som skickade hit dig är inte registrerad (okänd klient eller återadress).",
            )
            return
        state = params.get("state")

        def refuse(error: str, description: str) -> None:
            self._redirect(
                _redirect_with(
                    redirect_uri, {"error": error, "error_description": description, "state": state}
                )
            )

        if params.get("response_type") != "code":
            return refuse("unsupported_response_type", "only response_type=code")
        scope = params.get("scope", "").split()
        if "openid" not in scope:
            return refuse("invalid_scope", "scope must contain openid")
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return refuse("invalid_request", "PKCE with code_challenge_method=S256 is required")
        prompt = set(params.get("prompt", "").split())
        max_age = params.get("max_age")
        if max_age is not None and not max_age.isdigit():
            return refuse("invalid_request", "max_age must be a non-negative integer")

        request = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "nonce": params.get("nonce"),
            "scope": " ".join(scope),
            "code_challenge": params["code_challenge"],
        }
        session = provider.session(self._cookie())
        # OIDC Core §3.1.2.1: max_age=0 is the same as prompt=login.
        fresh_login_demanded = (
            "login" in prompt
            or max_age == "0"
            or (
                max_age is not None
                and session is not None
                and time.time() - session["auth_time"] > int(max_age)
            )
        )
        if session is not None and (not fresh_login_demanded or not provider.honour_prompt_login):
            code = provider.issue_code(request, session)
            self._redirect(_redirect_with(redirect_uri, {"code": code, "state": state}))
            return
        if "none" in prompt:
            return refuse("login_required", "no session and prompt=none")
        self._page(HTTPStatus.OK, tx=provider.remember_request(request))

    def _approve(self, form: dict[str, str]) -> None:
        provider = self.provider
        tx = form.get("tx", "")
        request = provider.pending_request(tx)
        if request is None:
            self._page(HTTPStatus.BAD_REQUEST, error="Inloggningen har gått ut. Gå tillbaka och börja om.")
            return
        if form.get("action") == "cancel":
            provider.pending_request(tx, remove=True)
            self._redirect(
                _redirect_with(
                    request["redirect_uri"],
                    {
                        "error": "access_denied",
                        "error_description": "the user cancelled",
                        "state": request["state"],
                    },
                )
            )
            return
        member = STAFF_BY_KEY.get(form.get("person", ""))
        if member is None:
            self._page(HTTPStatus.BAD_REQUEST, tx=tx, error="Välj vem du är.")
            return
        if not _SIX_DIGITS.match(form.get("code", "")):
            self._page(
                HTTPStatus.BAD_REQUEST,
                tx=tx,
                error="Säkerhetskoden ska vara sex siffror. Försök igen.",
                selected=member.key,
            )
            return
        provider.pending_request(tx, remove=True)
        cookie, session = provider.new_session(member)
        code = provider.issue_code(request, session)
        self._redirect(
            _redirect_with(request["redirect_uri"], {"code": code, "state": request["state"]}),
            {"Set-Cookie": f"{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax"},
        )

    def _token(self, form: dict[str, str]) -> None:
        provider = self.provider
        header = self.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            if "client_secret" in form:
                # RFC 6749 §2.3: one client authentication method per request.
                self._oauth_error(
                    HTTPStatus.BAD_REQUEST, "invalid_request", "more than one client auth method"
                )
                return
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
                raw_id, raw_secret = decoded.split(":", 1)
            except ValueError:
                raw_id, raw_secret = "", ""
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not provider.client_authenticated(client_id, secret):
            self._oauth_error(
                HTTPStatus.UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
                {"WWW-Authenticate": 'Basic realm="esign-oidc-test"'},
            )
            return
        if form.get("grant_type") != "authorization_code":
            self._oauth_error(HTTPStatus.BAD_REQUEST, "unsupported_grant_type", "only authorization_code")
            return
        grant = provider.take_code(form.get("code", ""))
        if grant is None or grant["client_id"] != client_id:
            self._oauth_error(HTTPStatus.BAD_REQUEST, "invalid_grant", "unknown, used or expired code")
            return
        if form.get("redirect_uri") != grant["redirect_uri"]:
            self._oauth_error(HTTPStatus.BAD_REQUEST, "invalid_grant", "redirect_uri does not match")
            return
        verifier = form.get("code_verifier", "")
        challenge = _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
        if not _PKCE_VERIFIER.match(verifier) or not hmac.compare_digest(challenge, grant["code_challenge"]):
            self._oauth_error(HTTPStatus.BAD_REQUEST, "invalid_grant", "PKCE code_verifier does not match")
            return
        self._json(
            HTTPStatus.OK,
            {
                "access_token": provider.issue_access_token(grant),
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "scope": grant["scope"],
                "id_token": provider.id_token(grant),
            },
        )

    def _userinfo(self) -> None:
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        grant = self.provider.access_token(token) if token else None
        if grant is None:
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"",
                "text/plain",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            return
        member: StaffMember = grant["member"]
        info: dict[str, Any] = {"sub": member.subject, HSA_ID_CLAIM: member.hsa_id}
        if "profile" in grant["scope"].split():
            info.update(given_name=member.given_name, family_name=member.family_name, name=member.name)
        info[PERSONAL_NUMBER_CLAIM] = member.personal_number
        self._json(HTTPStatus.OK, info)

    # -- the login page -----------------------------------------------------------------------------

    def _page(
        self, status: int, *, tx: str | None = None, error: str | None = None, selected: str = ""
    ) -> None:
        esc = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="sv"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(PAGE_TITLE)}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}"
            "fieldset{border:1px solid #ccc;padding:1rem}label{display:block;margin:.4rem 0}"
            ".error{color:#a00;font-weight:bold}.test{background:#fe0;padding:.3rem .6rem}</style>",
            "</head><body>",
            f"<h1>{esc(PAGE_TITLE)}</h1>",
            '<p class="test">Testmiljö – här finns inget riktigt kort. Välj en testperson.</p>',
        ]
        if error:
            parts.append(f'<p class="error" role="alert">{esc(error)}</p>')
        if tx is not None:
            parts += [
                '<form method="post" action="/authorize">',
                f'<input type="hidden" name="tx" value="{esc(tx)}">',
                "<fieldset><legend>Vem är du?</legend>",
            ]
            for index, member in enumerate(STAFF):
                checked = " checked" if member.key == selected or (not selected and index == 0) else ""
                parts.append(
                    f'<label><input type="radio" name="person" value="{esc(member.key)}"{checked}> '
                    f"{esc(member.name)}, {esc(member.title)} – HSA-id {esc(member.hsa_id)}, "
                    f"personnummer {esc(member.personal_number)}</label>"
                )
            parts += [
                "</fieldset>",
                '<label for="code">Säkerhetskod för kortet (sex siffror)</label>',
                '<input id="code" name="code" type="password" inputmode="numeric" autocomplete="off"'
                ' pattern="[0-9]{6}" maxlength="6" required>',
                "<p>",
                '<button type="submit" name="action" value="approve">Logga in</button> ',
                '<button type="submit" name="action" value="cancel" formnovalidate>Avbryt</button>',
                "</p></form>",
            ]
        parts.append("</body></html>")
        self._send(status, "\n".join(parts).encode("utf-8"), "text/html; charset=utf-8")


def main(argv: list[str] | None = None) -> None:
    """``esign-oidc-test-server``: serve the test provider until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="esign-oidc-test-server",
        description="Local OpenID Connect provider with SITHS eTjänstekort test staff (loopback only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18445)
    parser.add_argument("--client-id", default="esign-plone")
    parser.add_argument("--client-secret", default="esign-plone-secret")
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        help="registered redirect URI, repeatable; a trailing * matches by prefix "
        "(default: http://localhost:8080/*)",
    )
    parser.add_argument("--key-dir", type=Path, default=Path("var/oidc-test"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    provider = OIDCTestProvider(
        host=args.host,
        port=args.port,
        clients={
            args.client_id: {
                "secret": args.client_secret,
                "redirect_uris": args.redirect_uris or ["http://localhost:8080/*"],
            }
        },
        key_dir=args.key_dir,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    provider.start()
    print(f"OIDC test provider (SITHS eTjänstekort) at {provider.issuer}", flush=True)
    print(f"ESIGN_OIDC_ISSUER={provider.issuer}", flush=True)
    print(f"ESIGN_OIDC_CLIENT_ID={args.client_id}", flush=True)
    print(f"ESIGN_OIDC_CLIENT_SECRET={args.client_secret}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        provider.stop()


if __name__ == "__main__":
    main()

"""OpenID Connect client for staff logins with the SITHS eTjänstekort (e.g. through Inera IdP).

Authorization code flow with PKCE (S256) and a confidential client (``client_secret_basic``).
The client only trusts an ID token whose signature verifies against the provider's JWKS and
whose issuer, audience, lifetime, nonce, level of assurance and (for signing) authentication time
are what we asked for. No Plone here: values in, values out.

Every failure raises :class:`~esign.plone.errors.OIDCError` with a Swedish message for the
person; the technical reason is in the error's ``details`` and, where there is one, its
``__cause__``. Personal identity numbers never reach a log line or an error detail.

Example::

    client = OIDCClient(OIDCConfig.from_env())
    request = client.authorization_request(redirect_uri=callback_url, force_login=True)
    # keep `request` in the signer's session, redirect the browser to request.url ...
    code = client.code_from_callback(callback_query, request=request)
    claims = client.exchange(code=code, redirect_uri=callback_url, request=request)
    identity = verified_identity(claims)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote_plus, urlencode, urlsplit

import jwt
import requests

from esign.plone.errors import OIDCError
from esign.plone.signing.values import LOA3, AuthenticationContext, VerifiedIdentity

logger = logging.getLogger(__name__)

#: Claim carrying the staff member's HSA-id (Sambi attribute URI).
HSA_ID_CLAIM = "http://sambi.se/attributes/1/employeeHsaId"
#: Claim carrying the 12-digit Swedish personal identity number (Sambi attribute URI).
PERSONAL_NUMBER_CLAIM = "http://sambi.se/attributes/1/personalIdentityNumber"

#: Signature algorithms we accept on ID tokens; never "none" or HMAC (alg confusion).
ALLOWED_ALGORITHMS = ("RS256", "ES256")
#: Clock skew tolerated on ``exp``, ``iat`` and ``auth_time`` in the future.
LEEWAY_SECONDS = 30
#: How much older than the authorization request a forced login's ``auth_time`` may be.
FORCE_LOGIN_SLACK_SECONDS = 5

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_HSA_ID = re.compile(r"^SE\d{10}-[0-9A-Za-z]+$")
_PERSONAL_NUMBER = re.compile(r"^\d{12}$")

MSG_NOT_CONFIGURED = "Inloggning med eTjänstekort är inte rätt inställd. Kontakta den som förvaltar tjänsten."
MSG_UNREACHABLE = "Inloggningstjänsten för eTjänstekort svarar inte just nu. Försök igen om en stund."
MSG_FAILED = "Inloggningen med eTjänstekort kunde inte slutföras. Börja om inloggningen."
MSG_CANCELLED = "Inloggningen med eTjänstekort avbröts. Börja om när du är redo."
MSG_UNTRUSTED = "Svaret från inloggningstjänsten gick inte att lita på. Börja om inloggningen."
MSG_LOA = (
    "Inloggningen gav inte den säkerhetsnivå som krävs för att skriva under. "
    "Logga in med ditt eTjänstekort och börja om."
)
MSG_NOT_FRESH = (
    "För att skriva under behöver du logga in på nytt med ditt eTjänstekort. Börja om inloggningen."
)
MSG_IDENTITY = "Inloggningstjänsten skickade inte de uppgifter om dig som behövs för att skriva under."


def _fail(message: str, details: str, cause: BaseException | None = None) -> NoReturn:
    error = OIDCError(message)
    # OIDCError has no details parameter (unlike BankIDError); the reason rides on the instance.
    error.details = details  # type: ignore[attr-defined]
    logger.info("OIDC login refused: %s", details)
    raise error from cause


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE code verifier (RFC 7636 §4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _check_url(url: Any, what: str) -> str:
    # Credentials and tokens travel over these URLs: HTTPS, except for a provider on this machine.
    if not isinstance(url, str) or not url:
        _fail(MSG_NOT_CONFIGURED, f"{what} is missing")
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
        return url
    _fail(MSG_NOT_CONFIGURED, f"{what} must be an https URL (http only on loopback): {url!r}")


@dataclass(frozen=True)
class OIDCConfig:
    """How to reach the identity provider and who we are to it."""

    #: The provider's issuer identifier; discovery is read from ``<issuer>/.well-known/openid-configuration``.
    issuer: str
    #: Our client id registered at the provider.
    client_id: str
    #: Our client secret, sent with HTTP Basic to the token endpoint.
    client_secret: str
    #: Scopes asked for; must contain ``openid``.
    scopes: tuple[str, ...] = ("openid", "profile")
    #: The ``acr`` the ID token must carry (requested with ``acr_values``).
    required_acr: str = LOA3
    #: Seconds before a call to the provider counts as failed.
    timeout: float = 10.0

    @classmethod
    def from_env(cls, defaults: dict | None = None) -> OIDCConfig | None:
        """Settings from ``defaults`` overridden by ``ESIGN_OIDC_ISSUER``, ``ESIGN_OIDC_CLIENT_ID``
        and ``ESIGN_OIDC_CLIENT_SECRET``.

        :param defaults: keyword arguments of :class:`OIDCConfig` (e.g. from the control panel).
        :returns: the config, or ``None`` when issuer, client id or secret is missing (SITHS off).
        """
        values = dict(defaults or {})
        for name in ("issuer", "client_id", "client_secret"):
            env = os.environ.get(f"ESIGN_OIDC_{name.upper()}", "").strip()
            if env:
                values[name] = env
        if not all(str(values.get(name) or "").strip() for name in ("issuer", "client_id", "client_secret")):
            return None
        if "scopes" in values and isinstance(values["scopes"], str):
            values["scopes"] = tuple(values["scopes"].split())
        elif "scopes" in values:
            values["scopes"] = tuple(values["scopes"])
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass(frozen=True)
class AuthorizationRequest:
    """One login sent to the provider; keep it server-side until the callback comes back."""

    #: Where to send the browser.
    url: str
    #: Echoed back on the callback; binds the callback to this browser session (CSRF).
    state: str
    #: Must come back inside the ID token; binds the token to this request (replay).
    nonce: str
    #: PKCE secret proving at the token endpoint that we started this login.
    code_verifier: str
    #: A fresh login was demanded (``prompt=login``, ``max_age=0``), as for signing.
    force_login: bool
    #: Epoch seconds when the request was made.
    created_at: float


@dataclass(frozen=True)
class IDTokenClaims:
    """The verified content of an ID token."""

    #: The provider's stable identifier of the person.
    subject: str
    issuer: str
    #: Epoch seconds when the person authenticated at the provider.
    auth_time: int
    #: Level of assurance URI.
    acr: str
    #: HSA-id, e.g. ``SE2321000016-1003``.
    hsa_id: str | None
    #: 12-digit personnummer, digits only (kept out of ``repr`` so it cannot leak into logs).
    personal_number: str | None = field(repr=False)
    given_name: str
    family_name: str
    #: Every claim of the token as sent.
    raw: dict = field(repr=False)


class OIDCClient:
    """A relying party of one OpenID Connect provider. Safe to share between threads."""

    def __init__(self, config: OIDCConfig) -> None:
        if "openid" not in config.scopes:
            _fail(MSG_NOT_CONFIGURED, "scopes must contain 'openid'")
        _check_url(config.issuer, "issuer")
        self.config = config
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._metadata: dict | None = None
        self._jwks: jwt.PyJWKSet | None = None

    # -- provider documents -------------------------------------------------------------------------

    def _get_json(self, url: str, what: str) -> dict:
        try:
            response = self._http.get(url, timeout=self.config.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            _fail(MSG_UNREACHABLE, f"{what} could not be fetched from {url}", exc)
        if response.status_code != 200:
            _fail(MSG_UNREACHABLE, f"{what} at {url} answered HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError as exc:
            _fail(MSG_UNREACHABLE, f"{what} at {url} is not JSON", exc)
        if not isinstance(document, dict):
            _fail(MSG_UNREACHABLE, f"{what} at {url} is not a JSON object")
        return document

    def metadata(self) -> dict:
        """The provider's discovery document, fetched once per client.

        :raises OIDCError: unreachable, or the document does not describe our issuer.
        """
        with self._lock:
            if self._metadata is not None:
                return self._metadata
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._get_json(url, "discovery document")
        # OpenID Connect Discovery §4.3: the document must name exactly the issuer we asked.
        if document.get("issuer") != self.config.issuer:
            _fail(
                MSG_NOT_CONFIGURED, f"discovery issuer {document.get('issuer')!r} != {self.config.issuer!r}"
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            _check_url(document.get(name), name)
        methods = document.get("code_challenge_methods_supported")
        if methods is not None and "S256" not in methods:
            _fail(MSG_NOT_CONFIGURED, "provider does not support PKCE S256")
        with self._lock:
            self._metadata = document
        return document

    def _signing_keys(self, *, refresh: bool = False) -> jwt.PyJWKSet:
        with self._lock:
            if self._jwks is not None and not refresh:
                return self._jwks
        document = self._get_json(self.metadata()["jwks_uri"], "JWKS")
        try:
            keys = jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWTError as exc:
            _fail(MSG_UNTRUSTED, "JWKS holds no usable key", exc)
        with self._lock:
            self._jwks = keys
        return keys

    def _key_for(self, header: dict) -> jwt.PyJWK:
        alg = header.get("alg")

        def pick(keys: jwt.PyJWKSet) -> jwt.PyJWK | None:
            # algorithm_name follows the JWK's alg, or its kty and crv: an RSA key never verifies ES256.
            candidates = [
                key for key in keys if key.algorithm_name == alg and (key.public_key_use or "sig") == "sig"
            ]
            kid = header.get("kid")
            if kid is not None:
                candidates = [key for key in candidates if key.key_id == kid]
            # Without a kid the key is only unambiguous when there is exactly one of its type.
            return candidates[0] if len(candidates) == 1 else None

        key = pick(self._signing_keys())
        if key is None:
            # The provider may have rolled its keys since we cached them: look once more.
            key = pick(self._signing_keys(refresh=True))
        if key is None:
            _fail(MSG_UNTRUSTED, f"no signing key in the JWKS for kid={header.get('kid')!r} alg={alg}")
        return key

    # -- the code flow ------------------------------------------------------------------------------

    def authorization_request(self, *, redirect_uri: str, force_login: bool) -> AuthorizationRequest:
        """Start a login: the URL to send the browser to and the secrets to keep until the callback.

        :param redirect_uri: our callback URL, registered at the provider.
        :param force_login: demand a fresh card login (signing) instead of accepting an SSO session.
        :raises OIDCError: the provider cannot be reached or is misconfigured.
        """
        endpoint = self.metadata()["authorization_endpoint"]
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636's 43..128
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "acr_values": self.config.required_acr,
            "ui_locales": "sv",
        }
        if force_login:
            params["prompt"] = "login"
            params["max_age"] = "0"
        separator = "&" if urlsplit(endpoint).query else "?"
        return AuthorizationRequest(
            url=f"{endpoint}{separator}{urlencode(params)}",
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            force_login=force_login,
            created_at=time.time(),
        )

    def code_from_callback(self, params: Mapping[str, str], *, request: AuthorizationRequest) -> str:
        """The authorization code from the callback's query parameters, after checking ``state``.

        :raises OIDCError: the person cancelled, the provider refused, or the state does not match.
        """
        state = params.get("state") or ""
        if not hmac.compare_digest(state.encode(), request.state.encode()):
            _fail(MSG_FAILED, "state in the callback does not match the authorization request")
        error = params.get("error")
        if error:
            message = MSG_CANCELLED if error == "access_denied" else MSG_FAILED
            _fail(message, f"provider answered error={error!r} ({params.get('error_description', '')})")
        code = params.get("code")
        if not code:
            _fail(MSG_FAILED, "callback carries neither code nor error")
        return code

    def exchange(
        self, *, code: str, redirect_uri: str, request: AuthorizationRequest, now: float | None = None
    ) -> IDTokenClaims:
        """Trade the authorization code for an ID token and verify it.

        :param now: epoch seconds to check the token's times against (tests); defaults to the clock.
        :returns: the verified claims.
        :raises OIDCError: the provider refused the code or the token is not one we can trust.
        """
        metadata = self.metadata()
        # RFC 6749 §2.3.1: id and secret are form-encoded before they go into the Basic header.
        auth = (quote_plus(self.config.client_id), quote_plus(self.config.client_secret))
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": request.code_verifier,
        }
        try:
            response = self._http.post(
                metadata["token_endpoint"],
                data=form,
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=self.config.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            _fail(MSG_UNREACHABLE, "token endpoint could not be reached", exc)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200:
            _fail(
                MSG_FAILED,
                f"token endpoint answered HTTP {response.status_code} "
                f"error={body.get('error')!r} ({body.get('error_description', '')})",
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            _fail(MSG_FAILED, "token response carries no id_token")
        if str(body.get("token_type", "")).lower() != "bearer":
            _fail(MSG_FAILED, f"token response has token_type {body.get('token_type')!r}")
        return self._verify_id_token(id_token, request=request, now=time.time() if now is None else now)

    def _verify_id_token(self, token: str, *, request: AuthorizationRequest, now: float) -> IDTokenClaims:
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            _fail(MSG_UNTRUSTED, "ID token is not a JWS", exc)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            _fail(MSG_UNTRUSTED, f"ID token signed with {alg!r}; only {', '.join(ALLOWED_ALGORITHMS)}")
        key = self._key_for(header)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=config.client_id,
                issuer=config.issuer,
                # Times are checked below against `now`, which PyJWT cannot be given.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                },
            )
        except jwt.PyJWTError as exc:
            _fail(MSG_UNTRUSTED, f"ID token rejected: {exc}", exc)

        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        # OpenID Connect Core §3.1.3.7 (4, 5): several audiences need azp, and azp must be us.
        if (len(audiences) > 1 and azp is None) or (azp is not None and azp != config.client_id):
            _fail(MSG_UNTRUSTED, f"ID token azp {azp!r} with audiences {audiences!r}")
        for name in ("exp", "iat"):
            if not isinstance(claims[name], int | float):
                _fail(MSG_UNTRUSTED, f"ID token {name} is not a number")
        if claims["exp"] <= now - LEEWAY_SECONDS:
            _fail(MSG_UNTRUSTED, f"ID token expired at {claims['exp']} (now {int(now)})")
        if claims["iat"] > now + LEEWAY_SECONDS:
            _fail(MSG_UNTRUSTED, f"ID token issued in the future ({claims['iat']}, now {int(now)})")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), request.nonce.encode()):
            _fail(MSG_UNTRUSTED, "ID token nonce does not match the authorization request")
        if claims.get("acr") != config.required_acr:
            _fail(MSG_LOA, f"ID token acr {claims.get('acr')!r}, required {config.required_acr!r}")

        auth_time = claims.get("auth_time")
        # The signature certificate records when the person authenticated (RFC 7773): no auth_time, no use.
        if not isinstance(auth_time, int) or isinstance(auth_time, bool):
            _fail(MSG_UNTRUSTED if request.force_login else MSG_IDENTITY, "ID token has no integer auth_time")
        if auth_time > now + LEEWAY_SECONDS:
            _fail(MSG_UNTRUSTED, f"ID token auth_time {auth_time} is in the future (now {int(now)})")
        if request.force_login and auth_time < request.created_at - FORCE_LOGIN_SLACK_SECONDS:
            # The provider answered from an older SSO session although we demanded a new card login.
            _fail(
                MSG_NOT_FRESH,
                f"auth_time {auth_time} is {int(request.created_at - auth_time)} s older than the request",
            )

        hsa_id = claims.get(HSA_ID_CLAIM)
        if hsa_id is not None and (not isinstance(hsa_id, str) or not _HSA_ID.match(hsa_id)):
            _fail(MSG_IDENTITY, "HSA-id claim is not of the form SE<10 digits>-<suffix>")
        personal_number = claims.get(PERSONAL_NUMBER_CLAIM)
        if personal_number is not None:
            # Never put the number itself in a detail: details end up in logs.
            if not isinstance(personal_number, str):
                _fail(MSG_IDENTITY, "personal number claim is not a string")
            personal_number = personal_number.replace("-", "")
            if not _PERSONAL_NUMBER.match(personal_number):
                _fail(MSG_IDENTITY, "personal number claim is not 12 digits")
        return IDTokenClaims(
            subject=claims["sub"],
            issuer=claims["iss"],
            auth_time=auth_time,
            acr=claims["acr"],
            hsa_id=hsa_id,
            personal_number=personal_number,
            given_name=str(claims.get("given_name") or claims.get("givenName") or ""),
            family_name=str(claims.get("family_name") or claims.get("surname") or ""),
            raw=claims,
        )


def verified_identity(claims: IDTokenClaims) -> VerifiedIdentity:
    """The signer identity vouched for by a verified ID token.

    :raises OIDCError: the token names neither an HSA-id nor a personal number, or no name.
    """
    if not (claims.hsa_id or claims.personal_number):
        _fail(MSG_IDENTITY, "ID token carries neither an HSA-id nor a personal number")
    if not (claims.given_name or claims.family_name):
        _fail(MSG_IDENTITY, "ID token carries no name")
    return VerifiedIdentity(
        given_name=claims.given_name,
        surname=claims.family_name,
        personal_number=claims.personal_number,
        hsa_id=claims.hsa_id,
        email=claims.raw.get("email") or None,
        context=AuthenticationContext(
            method="siths",
            identity_provider=claims.issuer,
            authenticated_at=dt.datetime.fromtimestamp(claims.auth_time, tz=dt.UTC),
            level_of_assurance=claims.acr,
            transaction_ref=str(claims.raw.get("sid") or claims.raw.get("jti") or claims.subject),
        ),
    )

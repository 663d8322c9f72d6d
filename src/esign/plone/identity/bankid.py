"""A client of the BankID Relying Party API v6.0.

JSON POSTs over mutual TLS: we present the relying party's client certificate
and trust only the CA configured for the BankID server (``ca_path``), never the
system store. Plone-free: values in, values out, :class:`BankIDError` on
failure with a message for a person (BankID's recommended texts, see
:mod:`.rfa`) and the BankID ``errorCode``/``details`` for the logs.

Personal numbers are never logged; the ``orderRef`` is what ties log lines to
an order.

Example::

    client = BankIDClient(BankIDConfig.from_env())
    order = client.auth(end_user_ip="192.0.2.10")
    qr = order.qr_data()                 # show as a QR code, refresh every second
    result = client.collect(order.order_ref)   # poll about every 2 s
    if result.completion:
        identity = verified_identity(result.completion, order_ref=result.order_ref,
                                     provider="https://appapi2.bankid.com/rp/v6.0")
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from esign.plone.environment import seconds_from_env
from esign.plone.errors import BankIDError
from esign.plone.identity.rfa import error_message
from esign.plone.signing.values import LOA3, AuthenticationContext, VerifiedIdentity

logger = logging.getLogger(__name__)

#: The only ``userVisibleDataFormat`` BankID defines: simple Markdown (headings, bold, tables).
VISIBLE_DATA_FORMAT = "simpleMarkdownV1"

_ENV = {
    "url": "ESIGN_BANKID_URL",
    "cert_path": "ESIGN_BANKID_CERT",
    "key_path": "ESIGN_BANKID_KEY",
    "ca_path": "ESIGN_BANKID_CA",
}


@dataclass(frozen=True)
class BankIDConfig:
    """Where the RP API is and the files for mutual TLS."""

    #: Base URL ending in ``/rp/v6.0``, e.g. ``https://appapi2.test.bankid.com/rp/v6.0``.
    url: str
    #: PEM certificate of the relying party (the client certificate).
    cert_path: str
    #: PEM private key of that certificate, unencrypted.
    key_path: str
    #: PEM CA certificate(s) the BankID server's certificate must chain to.
    ca_path: str
    #: Seconds to wait for a connection and for an answer.
    timeout: float = 10.0

    @classmethod
    def from_env(cls, defaults: dict[str, Any] | None = None) -> BankIDConfig | None:
        """Read ``ESIGN_BANKID_URL``, ``_CERT``, ``_KEY``, ``_CA``, ``_TIMEOUT``; each overrides ``defaults``.

        :param defaults: values for the fields (``url``, ``cert_path``, ``key_path``, ``ca_path``,
            ``timeout``), e.g. from the control panel.
        :returns: ``None`` when no URL is set (BankID is not configured).
        :raises BankIDError: when a URL is set but a certificate, key or CA path is missing.
        """
        values: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
        for name, variable in _ENV.items():
            if os.environ.get(variable):
                values[name] = os.environ[variable]
        timeout = seconds_from_env("ESIGN_BANKID_TIMEOUT")
        if timeout is not None:
            values["timeout"] = timeout
        if not values.get("url"):
            return None
        missing = [_ENV[f] for f in ("cert_path", "key_path", "ca_path") if not values.get(f)]
        if missing:
            raise BankIDError(
                "BankID är inte fullständigt konfigurerat.",
                error_code="configuration",
                details="missing " + ", ".join(missing),
            )
        return cls(
            url=str(values["url"]),
            cert_path=str(values["cert_path"]),
            key_path=str(values["key_path"]),
            ca_path=str(values["ca_path"]),
            timeout=float(values.get("timeout", 10.0)),
        )


@dataclass(frozen=True)
class OrderStart:
    """A started auth or sign order."""

    #: BankID's id of the order; collect and cancel with it.
    order_ref: str
    #: For the autostart link on the same device (:func:`autostart_url`).
    auto_start_token: str
    #: Public part of the animated QR code.
    qr_start_token: str
    #: Key of the QR code's HMAC; keep it on the server, never send it to a browser.
    qr_start_secret: str
    #: When the order started (``time.time()``); the QR code counts seconds from here.
    started_at: float

    def qr_data(self, now: float | None = None) -> str:
        """The QR code content for this moment (changes every second)."""
        seconds = max(0, math.floor((time.time() if now is None else now) - self.started_at))
        return qr_data(self.qr_start_token, self.qr_start_secret, seconds)


@dataclass(frozen=True)
class Completion:
    """``completionData`` of a complete order, as received."""

    #: 12 digits.
    personal_number: str
    name: str
    given_name: str
    surname: str
    #: The IP address of the person's device as BankID saw it.
    ip_address: str
    #: Unique hardware id of the person's device ("" if BankID sent none).
    uhi: str
    #: When the person's BankID was issued, ``YYYY-MM-DD``.
    bankid_issue_date: str
    #: ``stepUp.mrtd``: the person also showed an ID document; ``None`` when not sent.
    step_up: bool | None
    #: Base64 of the XML signature BankID made over the visible and non-visible data.
    signature: str = field(repr=False)
    #: Base64 of the DER OCSP response for the person's BankID certificate.
    ocsp_response: str = field(repr=False)


@dataclass(frozen=True)
class CollectResult:
    """One collect answer."""

    order_ref: str
    #: ``pending``, ``failed`` or ``complete``.
    status: str
    #: Why pending or failed (``outstandingTransaction``, ``userSign``, ``userCancel`` …); "" when complete.
    hint_code: str
    completion: Completion | None = None


class BankIDClient:
    """Talks to one BankID RP API v6.0 over mutual TLS."""

    def __init__(self, config: BankIDConfig) -> None:
        self.config = config
        self._base = config.url.rstrip("/")
        self._session = requests.Session()
        self._session.cert = (config.cert_path, config.key_path)
        self._session.verify = config.ca_path
        # Proxies from the environment must not see our client certificate's traffic.
        self._session.trust_env = False

    def close(self) -> None:
        """Close the kept connections."""
        self._session.close()

    def auth(
        self,
        *,
        end_user_ip: str,
        personal_number: str | None = None,
        user_visible_data: str | None = None,
        return_url: str | None = None,
    ) -> OrderStart:
        """Start an identification.

        :param end_user_ip: the person's IP address as our web server sees it.
        :param personal_number: only this person may identify (12 digits).
        :param user_visible_data: Markdown text shown in the app.
        :param return_url: where the app sends the person back after autostart.
        :raises BankIDError: e.g. ``alreadyInProgress`` or ``invalidParameters``.
        """
        body = self._order_body(end_user_ip, personal_number, user_visible_data, None, return_url)
        return self._start("auth", body)

    def sign(
        self,
        *,
        end_user_ip: str,
        user_visible_data: str,
        user_non_visible_data: bytes | None = None,
        personal_number: str | None = None,
        return_url: str | None = None,
    ) -> OrderStart:
        """Start a signature of ``user_visible_data`` (what the person reads and approves).

        :param user_non_visible_data: bytes signed along but not shown, e.g. a document digest.
        :raises BankIDError: e.g. ``alreadyInProgress`` or ``invalidParameters``.
        """
        body = self._order_body(
            end_user_ip, personal_number, user_visible_data, user_non_visible_data, return_url
        )
        return self._start("sign", body)

    def collect(self, order_ref: str) -> CollectResult:
        """Ask how the order is going; call about every 2 seconds while pending.

        :raises BankIDError: ``invalidParameters`` for an order BankID does not know (any longer).
        """
        data = self._post("collect", {"orderRef": order_ref}, order_ref=order_ref)
        try:
            status = str(data["status"])
            completion = None
            if status == "complete":
                completion = _completion(data["completionData"])
            result = CollectResult(
                order_ref=str(data.get("orderRef", order_ref)),
                status=status,
                hint_code=str(data.get("hintCode", "")),
                completion=completion,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise _invalid_response(f"collect: {exc!r}") from exc
        if status != "pending":
            logger.info("BankID order %s %s %s", order_ref, status, result.hint_code)
        return result

    def cancel(self, order_ref: str) -> None:
        """Cancel a pending order (the person left or chose another way).

        :raises BankIDError: ``invalidParameters`` for an order BankID does not know.
        """
        self._post("cancel", {"orderRef": order_ref}, order_ref=order_ref)
        logger.info("BankID order %s cancelled by us", order_ref)

    def _order_body(
        self,
        end_user_ip: str,
        personal_number: str | None,
        visible: str | None,
        non_visible: bytes | None,
        return_url: str | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"endUserIp": end_user_ip}
        if personal_number:
            body["requirement"] = {"personalNumber": personal_number}
        if visible is not None:
            body["userVisibleData"] = base64.b64encode(visible.encode("utf-8")).decode("ascii")
            body["userVisibleDataFormat"] = VISIBLE_DATA_FORMAT
        if non_visible is not None:
            body["userNonVisibleData"] = base64.b64encode(non_visible).decode("ascii")
        if return_url:
            body["returnUrl"] = return_url
        return body

    def _start(self, endpoint: str, body: dict[str, Any]) -> OrderStart:
        started_at = time.time()
        data = self._post(endpoint, body)
        try:
            order = OrderStart(
                order_ref=str(data["orderRef"]),
                auto_start_token=str(data["autoStartToken"]),
                qr_start_token=str(data["qrStartToken"]),
                qr_start_secret=str(data["qrStartSecret"]),
                started_at=started_at,
            )
        except (KeyError, TypeError) as exc:
            raise _invalid_response(f"{endpoint}: {exc!r}") from exc
        logger.info("BankID %s order %s started", endpoint, order.order_ref)
        return order

    def _post(self, endpoint: str, body: dict[str, Any], *, order_ref: str = "") -> dict[str, Any]:
        url = f"{self._base}/{endpoint}"
        try:
            response = self._session.post(url, json=body, timeout=self.config.timeout)
        except requests.RequestException as exc:
            logger.warning("BankID %s %s unreachable: %s", endpoint, order_ref, type(exc).__name__)
            raise BankIDError(
                error_message("unreachable"), error_code="unreachable", details=f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            if isinstance(data, dict) and data.get("errorCode"):
                code, details = str(data["errorCode"]), str(data.get("details", ""))
            else:
                code, details = _status_error_code(response.status_code), response.text[:200]
            logger.warning("BankID %s %s failed: %s %s", endpoint, order_ref, response.status_code, code)
            raise BankIDError(error_message(code), error_code=code, details=details)
        if not isinstance(data, dict):
            raise _invalid_response(f"{endpoint}: HTTP {response.status_code} without a JSON object")
        return data


def _status_error_code(status: int) -> str:
    return {
        400: "invalidParameters",
        401: "unauthorized",
        403: "unauthorized",
        404: "notFound",
        405: "methodNotAllowed",
        408: "requestTimeout",
        415: "unsupportedMediaType",
        503: "maintenance",
    }.get(status, "internalError" if status >= 500 else "invalidResponse")


def _invalid_response(details: str) -> BankIDError:
    logger.warning("BankID answered something we cannot read: %s", details[:200])
    return BankIDError(error_message("invalidResponse"), error_code="invalidResponse", details=details)


def _completion(data: dict[str, Any]) -> Completion:
    user, device = data["user"], data.get("device") or {}
    step_up = data.get("stepUp")
    mrtd = step_up.get("mrtd") if isinstance(step_up, dict) else None
    return Completion(
        personal_number=str(user["personalNumber"]),
        name=str(user.get("name", "")),
        given_name=str(user.get("givenName", "")),
        surname=str(user.get("surname", "")),
        ip_address=str(device.get("ipAddress", "")),
        uhi=str(device.get("uhi", "")),
        bankid_issue_date=str(data.get("bankIdIssueDate", "")),
        step_up=bool(mrtd) if mrtd is not None else None,
        signature=str(data["signature"]),
        ocsp_response=str(data["ocspResponse"]),
    )


def qr_data(qr_start_token: str, qr_start_secret: str, seconds: int) -> str:
    """The content of the animated QR code ``seconds`` whole seconds after the order started.

    ``bankid.<qrStartToken>.<seconds>.<hex HMAC-SHA256(key=qrStartSecret, msg=str(seconds))>``
    """
    code = hmac.new(qr_start_secret.encode("ascii"), str(seconds).encode("ascii"), hashlib.sha256).hexdigest()
    return f"bankid.{qr_start_token}.{seconds}.{code}"


def autostart_url(auto_start_token: str, *, redirect: str = "null") -> str:
    """The link that starts the BankID app on this device.

    :param redirect: where the app returns to (URL-encoded here); ``"null"`` lets the app decide.
    """
    return f"bankid:///?autostarttoken={quote(auto_start_token, safe='')}&redirect={quote(redirect, safe='')}"


def verified_identity(
    completion: Completion,
    *,
    order_ref: str,
    provider: str,
    authenticated_at: dt.datetime | None = None,
) -> VerifiedIdentity:
    """The person BankID has just identified, for the signing engine.

    :param provider: URI naming the BankID service that vouched, e.g. the RP API URL.
    :param authenticated_at: when collect said complete; now (UTC) by default.
    """
    return VerifiedIdentity(
        given_name=completion.given_name,
        surname=completion.surname,
        personal_number=completion.personal_number,
        context=AuthenticationContext(
            method="bankid",
            identity_provider=provider,
            authenticated_at=authenticated_at or dt.datetime.now(dt.UTC),
            level_of_assurance=LOA3,
            transaction_ref=order_ref,
        ),
    )


__all__ = [
    "VISIBLE_DATA_FORMAT",
    "BankIDClient",
    "BankIDConfig",
    "CollectResult",
    "Completion",
    "OrderStart",
    "autostart_url",
    "qr_data",
    "verified_identity",
]

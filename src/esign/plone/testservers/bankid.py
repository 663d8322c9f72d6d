"""A local test server of the BankID Relying Party API v6.0, with a page where a tester plays the app.

Run ``esign-bankid-test-server`` (or :class:`BankIDTestServer` in tests). Two
listeners on real sockets:

* the **RP API** (HTTPS, mutual TLS, ``ssl.CERT_REQUIRED``): ``POST /rp/v6.0/auth``,
  ``sign``, ``phone/auth``, ``phone/sign``, ``collect``, ``cancel`` with the v6.0
  fields, validation and error answers (``{"errorCode", "details"}``);
* the **tester page** (plain HTTP, Swedish, "BankID (test)"): lists pending orders;
  a tester approves an order as a test person ("Godkänn") or cancels it as the
  person would in the app ("Avbryt"). ``GET /orders.json`` lists them for scripts.

Files in ``directory`` (created on first start, reused later; keys are 0600, unencrypted)::

    ca.pem  ca-key.pem          test CA; issues everything below
    server.pem  server-key.pem  the API's certificate, for localhost and 127.0.0.1
    rp.pem  rp-key.pem          the relying party's client certificate (ESIGN_BANKID_CERT/_KEY)

Behaviour, as BankID's (the differences are marked *test server*):

* Orders live in memory. A pending order expires after ``order_lifetime`` (180 s):
  collect says ``failed``/``expiredTransaction``.
* collect: ``pending``/``outstandingTransaction`` until the tester opens the order on
  the page (``GET /orders/<orderRef>``), then ``pending``/``userSign``; ``failed``/
  ``userCancel`` after "Avbryt"; ``complete`` after "Godkänn". An unknown orderRef gives
  400 ``invalidParameters`` "No such order".
* cancel by the RP removes a pending order: a later collect gives 400
  ``invalidParameters`` "No such order" (as BankID).
* An auth or sign with ``requirement.personalNumber`` (or a phone order) for a
  person who already has a pending order: the new call gets 400 ``alreadyInProgress``
  and no order; the old order fails with hintCode ``cancelled``. So both fail, as at BankID.
* Wrong method on an API path: 405 ``methodNotAllowed``; a body that is not
  ``application/json``: 415 ``unsupportedMediaType``; an unknown path: 404 ``notFound``.
* *Test server*: phone orders are approved on the page like the others (no call).

``completionData.signature`` is base64 of this XML document (UTF-8, no whitespace
between elements; shown indented here)::

    <Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
      <SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
        <CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></CanonicalizationMethod>
        <SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"></SignatureMethod>
        <Reference Type="http://www.bankid.com/signature/v1.0.0/types" URI="#bidSignedData">
          <DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"></DigestMethod>
          <DigestValue>base64 SHA-256 of the bankIdSignedData element's bytes</DigestValue>
        </Reference>
      </SignedInfo>
      <SignatureValue>base64 ECDSA P-256 signature, r || s (32 + 32 bytes)</SignatureValue>
      <KeyInfo><X509Data>
        <X509Certificate>the person's certificate (base64 DER)</X509Certificate>
        <X509Certificate>the test CA (base64 DER)</X509Certificate>
      </X509Data></KeyInfo>
      <Object>
        <bankIdSignedData xmlns="http://www.bankid.com/signature/v1.0.0/types" Id="bidSignedData">
          <usrVisibleData charset="UTF-8" visible="wysiwys">userVisibleData as sent</usrVisibleData>
          <usrNonVisibleData>userNonVisibleData as sent</usrNonVisibleData>
          <srvInfo><name>esign.plone BankID test server</name><nonce>base64</nonce></srvInfo>
          <clientInfo><funcId>Identification | Signing</funcId>
            <env><ai><uhi>…</uhi></ai></env></clientInfo>
          <user><personalNumber>…</personalNumber><name>…</name></user>   (test server)
        </bankIdSignedData>
      </Object>
    </Signature>

The digest and the signature are over the exact bytes of the ``bankIdSignedData``
and ``SignedInfo`` elements as they appear in the document (written with explicit
end tags and sorted attributes so that those bytes are meant to be their exclusive
canonical form). The person's certificate is issued by the test CA (subject
``serialNumber`` = personal number) with a key the server keeps in memory.
``completionData.ocspResponse`` is base64 DER of an OCSP response (status good,
signed by the test CA, nonce = SHA-256 of the signature XML) for that certificate.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import html
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from esign.plone.testservers.http import Handler

logger = logging.getLogger(__name__)

API_PREFIX = "/rp/v6.0"
ORDER_LIFETIME = 180.0
MAX_VISIBLE = 40_000
MAX_NON_VISIBLE = 200_000
_MAX_BODY = 1_000_000
_ENDPOINTS = ("auth", "sign", "phone/auth", "phone/sign", "collect", "cancel")
_PERSONAL_NUMBER = re.compile(r"^\d{12}$")
_XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
_BANKID_TYPES = "http://www.bankid.com/signature/v1.0.0/types"


@dataclass(frozen=True)
class Persona:
    """A test person the tester can approve an order as."""

    personal_number: str
    given_name: str
    surname: str

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.surname}"


PERSONAS: tuple[Persona, ...] = (
    Persona("191212121212", "Anna", "Andersson"),
    Persona("194911172296", "Bertil", "Berg"),
    Persona("198112289874", "Cecilia", "Carlsson"),
)


class _Rejected(Exception):
    """An API call answered with ``{"errorCode", "details"}``."""

    def __init__(self, status: int, error_code: str, details: str) -> None:
        super().__init__(details)
        self.status, self.error_code, self.details = status, error_code, details


class _PageRefusal(Exception):
    """A tester's action on the page cannot be done; the text says why, in Swedish."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


@dataclass
class _Order:
    ref: str
    kind: str  # "auth" or "sign"
    phone: bool
    end_user_ip: str
    personal_number: str | None
    visible: str | None  # base64 as sent
    non_visible: str | None
    started: float
    auto_start_token: str = field(default_factory=lambda: str(uuid.uuid4()))
    qr_start_token: str = field(default_factory=lambda: str(uuid.uuid4()))
    qr_start_secret: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "pending"
    hint_code: str = "outstandingTransaction"
    completion: dict[str, Any] | None = None

    @property
    def visible_text(self) -> str:
        return base64.b64decode(self.visible).decode("utf-8") if self.visible else ""

    def summary(self) -> dict[str, Any]:
        return {
            "orderRef": self.ref,
            "type": self.kind,
            "phone": self.phone,
            "visibleText": self.visible_text,
            "personalNumber": self.personal_number,
            "hintCode": self.hint_code,
            "started": dt.datetime.fromtimestamp(self.started, dt.UTC).isoformat(timespec="seconds"),
        }


# --- PKI -------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "SE")]
    for oid, value in (
        (NameOID.SURNAME, extra.get("surname")),
        (NameOID.GIVEN_NAME, extra.get("given_name")),
        (NameOID.SERIAL_NUMBER, extra.get("serial_number")),
    ):
        if value:
            attributes.append(x509.NameAttribute(oid, value))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "esign.plone BankID test"))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if private:
        os.chmod(path, 0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class _TestPKI:
    """The test CA and what it issues."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.paths = {
            "ca": directory / "ca.pem",
            "ca_key": directory / "ca-key.pem",
            "server_cert": directory / "server.pem",
            "server_key": directory / "server-key.pem",
            "rp_cert": directory / "rp.pem",
            "rp_key": directory / "rp-key.pem",
        }
        if not all(p.exists() for p in self.paths.values()):
            self._create()
        self.ca_cert = x509.load_pem_x509_certificate(self.paths["ca"].read_bytes())
        ca_key = serialization.load_pem_private_key(self.paths["ca_key"].read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        self.ca_key = ca_key
        self._people: dict[tuple[str, str], tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}
        self._lock = threading.Lock()

    def _create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("BankID test CA (esign.plone)")
        now = _now()
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = self._issue(
            ca_cert,
            ca_key,
            _name("localhost"),
            server_key.public_key(),
            days=3650,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            san=[
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ],
        )
        rp_key = ec.generate_private_key(ec.SECP256R1())
        rp_cert = self._issue(
            ca_cert,
            ca_key,
            _name("esign.plone test relying party"),
            rp_key.public_key(),
            days=3650,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        pem = serialization.Encoding.PEM
        _write(self.paths["ca_key"], _pem_key(ca_key), private=True)
        _write(self.paths["server_key"], _pem_key(server_key), private=True)
        _write(self.paths["rp_key"], _pem_key(rp_key), private=True)
        _write(self.paths["server_cert"], server_cert.public_bytes(pem))
        _write(self.paths["rp_cert"], rp_cert.public_bytes(pem))
        _write(self.paths["ca"], ca_cert.public_bytes(pem))

    @staticmethod
    def _issue(
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        *,
        days: int,
        usage: x509.ObjectIdentifier | None = None,
        san: list[x509.GeneralName] | None = None,
        signing: bool = False,
    ) -> x509.Certificate:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, signing, False, False, not signing, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def person(
        self, personal_number: str, given_name: str, surname: str
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The person's BankID certificate and key (made once per process)."""
        with self._lock:
            found = self._people.get((personal_number, f"{given_name} {surname}"))
            if found is None:
                key = ec.generate_private_key(ec.SECP256R1())
                cert = self._issue(
                    self.ca_cert,
                    self.ca_key,
                    _name(
                        f"{given_name} {surname}",
                        given_name=given_name,
                        surname=surname,
                        serial_number=personal_number,
                    ),
                    key.public_key(),
                    days=730,
                    signing=True,
                )
                found = self._people[(personal_number, f"{given_name} {surname}")] = (cert, key)
            return found

    def ocsp_good(self, cert: x509.Certificate, nonce: bytes) -> bytes:
        now = _now().replace(microsecond=0)
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=cert,
                issuer=self.ca_cert,
                algorithm=hashes.SHA1(),  # noqa: S303 - the CertID hash OCSP clients expect
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=now,
                next_update=now + dt.timedelta(days=1),
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca_cert)
            .add_extension(x509.OCSPNonce(nonce), critical=False)
        )
        return builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.paths["ca"]))
        context.load_cert_chain(str(self.paths["server_cert"]), str(self.paths["server_key"]))
        # The RP authenticates with its client certificate; without one there is no API.
        context.verify_mode = ssl.CERT_REQUIRED
        return context


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def signature_document(
    order: _Order,
    persona: Persona,
    uhi: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
) -> bytes:
    """The XML signature of a completed order (format in the module docstring)."""
    parts = [f'<bankIdSignedData xmlns="{_BANKID_TYPES}" Id="bidSignedData">']
    if order.visible:
        parts.append(f'<usrVisibleData charset="UTF-8" visible="wysiwys">{order.visible}</usrVisibleData>')
    if order.non_visible:
        parts.append(f"<usrNonVisibleData>{order.non_visible}</usrNonVisibleData>")
    parts.append(
        f"<srvInfo><name>esign.plone BankID test server</name><nonce>{_b64(secrets.token_bytes(16))}</nonce>"
        f"</srvInfo><clientInfo><funcId>{'Signing' if order.kind == 'sign' else 'Identification'}</funcId>"
        f"<env><ai><uhi>{_xml_text(uhi)}</uhi></ai></env></clientInfo>"
        f"<user><personalNumber>{persona.personal_number}</personalNumber><name>{_xml_text(persona.name)}</name>"
        "</user></bankIdSignedData>"
    )
    signed_data = "".join(parts).encode("utf-8")
    signed_info = (
        f'<SignedInfo xmlns="{_XMLDSIG}">'
        '<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></CanonicalizationMethod>'
        '<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"></SignatureMethod>'
        f'<Reference Type="{_BANKID_TYPES}" URI="#bidSignedData">'
        '<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"></DigestMethod>'
        f"<DigestValue>{_b64(hashlib.sha256(signed_data).digest())}</DigestValue></Reference></SignedInfo>"
    ).encode()
    r, s = decode_dss_signature(key.sign(signed_info, ec.ECDSA(hashes.SHA256())))
    value = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = serialization.Encoding.DER
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        + f'<Signature xmlns="{_XMLDSIG}">'.encode()
        + signed_info
        + f"<SignatureValue>{_b64(value)}</SignatureValue><KeyInfo><X509Data>"
        f"<X509Certificate>{_b64(cert.public_bytes(der))}</X509Certificate>"
        f"<X509Certificate>{_b64(ca.public_bytes(der))}</X509Certificate>"
        "</X509Data></KeyInfo><Object>".encode()
        + signed_data
        + b"</Object></Signature>"
    )


# --- Orders ----------------------------------------------------------------------------------------


class _Orders:
    """The in-memory order book shared by the API and the page."""

    def __init__(self, pki: _TestPKI, lifetime: float) -> None:
        self.pki = pki
        self.lifetime = lifetime
        self._orders: dict[str, _Order] = {}
        self._lock = threading.Lock()

    def _expire(self) -> None:
        now = time.time()
        for ref, order in list(self._orders.items()):
            if order.status == "pending" and now - order.started > self.lifetime:
                order.status, order.hint_code = "failed", "expiredTransaction"
            if now - order.started > max(self.lifetime, 180.0) + 600:
                del self._orders[ref]

    def start(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        phone = endpoint.startswith("phone/")
        kind = endpoint.removeprefix("phone/")
        end_user_ip = body.get("endUserIp")
        if not phone or end_user_ip is not None:
            if not isinstance(end_user_ip, str) or not end_user_ip:
                raise _Rejected(400, "invalidParameters", "Invalid endUserIp")
            try:
                ipaddress.ip_address(end_user_ip)
            except ValueError:
                raise _Rejected(400, "invalidParameters", "Invalid endUserIp") from None
        requirement = body.get("requirement", {})
        if not isinstance(requirement, dict):
            raise _Rejected(400, "invalidParameters", "Invalid requirement")
        personal_number = requirement.get("personalNumber")
        if phone:
            personal_number = body.get("personalNumber")
            if body.get("callInitiator") not in ("user", "RP"):
                raise _Rejected(400, "invalidParameters", "Invalid callInitiator")
        if personal_number is not None and (
            not isinstance(personal_number, str) or not _PERSONAL_NUMBER.match(personal_number)
        ):
            raise _Rejected(400, "invalidParameters", "Invalid personalNumber")
        if phone and personal_number is None:
            raise _Rejected(400, "invalidParameters", "Invalid personalNumber")
        visible = _base64_field(body, "userVisibleData", MAX_VISIBLE, required=kind == "sign")
        if visible is not None:
            try:
                base64.b64decode(visible).decode("utf-8")
            except UnicodeDecodeError:
                raise _Rejected(400, "invalidParameters", "Invalid userVisibleData") from None
        non_visible = _base64_field(body, "userNonVisibleData", MAX_NON_VISIBLE, required=False)
        if body.get("userVisibleDataFormat", "simpleMarkdownV1") != "simpleMarkdownV1":
            raise _Rejected(400, "invalidParameters", "Invalid userVisibleDataFormat")
        if not isinstance(body.get("returnUrl", ""), str):
            raise _Rejected(400, "invalidParameters", "Invalid returnUrl")
        order = _Order(
            ref=str(uuid.uuid4()),
            kind=kind,
            phone=phone,
            end_user_ip=end_user_ip or "",
            personal_number=personal_number,
            visible=visible,
            non_visible=non_visible,
            started=time.time(),
        )
        with self._lock:
            self._expire()
            if personal_number:
                busy = [
                    o
                    for o in self._orders.values()
                    if o.status == "pending" and o.personal_number == personal_number
                ]
                if busy:
                    # BankID: the old order is cancelled and no new order is created.
                    for old in busy:
                        old.status, old.hint_code = "failed", "cancelled"
                    raise _Rejected(400, "alreadyInProgress", "Order already in progress for pno")
            self._orders[order.ref] = order
        answer = {"orderRef": order.ref}
        if not phone:
            answer.update(
                autoStartToken=order.auto_start_token,
                qrStartToken=order.qr_start_token,
                qrStartSecret=order.qr_start_secret,
            )
        return answer

    def collect(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._expire()
            order = self._orders.get(_order_ref(body))
            if order is None:
                raise _Rejected(400, "invalidParameters", "No such order")
            answer: dict[str, Any] = {"orderRef": order.ref, "status": order.status}
            if order.status == "complete":
                answer["completionData"] = order.completion
            else:
                answer["hintCode"] = order.hint_code
            return answer

    def cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._expire()
            ref = _order_ref(body)
            order = self._orders.get(ref)
            if order is None or order.status != "pending":
                raise _Rejected(400, "invalidParameters", "No such order")
            del self._orders[ref]
            return {}

    def pending(self) -> list[_Order]:
        with self._lock:
            self._expire()
            return sorted(
                (o for o in self._orders.values() if o.status == "pending"), key=lambda o: o.started
            )

    def _pending_order(self, ref: str) -> _Order:
        order = self._orders.get(ref)
        if order is None:
            raise _PageRefusal(404, "Ordern finns inte.")
        if order.status != "pending":
            raise _PageRefusal(409, "Ordern är inte längre aktiv.")
        return order

    def open(self, ref: str) -> _Order:
        """The tester looks at the order, as the app shows it to the person: now ``userSign``."""
        with self._lock:
            self._expire()
            order = self._pending_order(ref)
            order.hint_code = "userSign"
            return order

    def user_cancel(self, ref: str) -> None:
        with self._lock:
            self._expire()
            order = self._pending_order(ref)
            order.status, order.hint_code = "failed", "userCancel"

    def approve(self, ref: str, persona: Persona) -> None:
        with self._lock:
            self._expire()
            order = self._pending_order(ref)
            if order.personal_number and order.personal_number != persona.personal_number:
                raise _PageRefusal(403, f"Ordern kan bara godkännas av personnummer {order.personal_number}.")
            cert, key = self.pki.person(persona.personal_number, persona.given_name, persona.surname)
            uhi = base64.urlsafe_b64encode(
                hashlib.sha256(b"uhi:" + persona.personal_number.encode()).digest()[:18]
            )
            document = signature_document(order, persona, uhi.decode(), cert, key, self.pki.ca_cert)
            ocsp_der = self.pki.ocsp_good(cert, hashlib.sha256(document).digest())
            order.status, order.hint_code = "complete", ""
            order.completion = {
                "user": {
                    "personalNumber": persona.personal_number,
                    "name": persona.name,
                    "givenName": persona.given_name,
                    "surname": persona.surname,
                },
                "device": {"ipAddress": order.end_user_ip or "127.0.0.1", "uhi": uhi.decode()},
                "stepUp": {"mrtd": False},
                "bankIdIssueDate": (_now() - dt.timedelta(days=400)).date().isoformat(),
                "signature": _b64(document),
                "ocspResponse": _b64(ocsp_der),
            }


def _order_ref(body: dict[str, Any]) -> str:
    ref = body.get("orderRef")
    if not isinstance(ref, str) or not ref:
        raise _Rejected(400, "invalidParameters", "Invalid orderRef")
    return ref


def _base64_field(body: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _Rejected(400, "invalidParameters", f"Invalid {name}")
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _Rejected(400, "invalidParameters", f"Invalid {name}")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Rejected(400, "invalidParameters", f"Invalid {name}") from None
    return value


# --- HTTP ------------------------------------------------------------------------------------------


class _Handler(Handler):
    server_version = "BankIDTestServer/6.0"
    orders: _Orders

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            raise _Rejected(400, "invalidParameters", "Request too large")
        return self.rfile.read(length) if length else b""


class _APIHandler(_Handler):
    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _endpoint(self) -> str | None:
        path = self.path.split("?", 1)[0]
        if path.startswith(API_PREFIX + "/") and path[len(API_PREFIX) + 1 :] in _ENDPOINTS:
            return path[len(API_PREFIX) + 1 :]
        return None

    def do_POST(self) -> None:
        try:
            body = self._body()
            endpoint = self._endpoint()
            if endpoint is None:
                raise _Rejected(404, "notFound", "Not found")
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != "application/json":
                raise _Rejected(415, "unsupportedMediaType", "Unsupported media type, use application/json")
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise _Rejected(400, "invalidParameters", "Invalid JSON") from None
            if not isinstance(data, dict):
                raise _Rejected(400, "invalidParameters", "Invalid JSON")
            if endpoint == "collect":
                answer = self.orders.collect(data)
            elif endpoint == "cancel":
                answer = self.orders.cancel(data)
            else:
                answer = self.orders.start(endpoint, data)
        except _Rejected as rejected:
            self._json(rejected.status, {"errorCode": rejected.error_code, "details": rejected.details})
            return
        self._json(200, answer)

    def _not_post(self) -> None:
        with contextlib.suppress(_Rejected):
            self._body()
        if self._endpoint() is None:
            self._json(404, {"errorCode": "notFound", "details": "Not found"})
        else:
            self._json(405, {"errorCode": "methodNotAllowed", "details": "Use POST"})

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _not_post


_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#193e4f}"
    "section{border:1px solid #c5d5dc;border-radius:.5rem;padding:1rem;margin:1rem 0}"
    "pre{white-space:pre-wrap;background:#f3f7f8;padding:.5rem}"
    "button{margin-right:.5rem}.error{color:#a00}"
)


class _PageHandler(_Handler):
    def _html(self, status: int, title: str, content: str) -> None:
        page = (
            f'<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{content}</body></html>"
        )
        self._send(status, page.encode("utf-8"), "text/html; charset=utf-8")

    def _error(self, status: int, text: str) -> None:
        self._html(
            status,
            "BankID (test)",
            f'<p class="error">{html.escape(text)}</p><p><a href="/">Tillbaka</a></p>',
        )

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._list()
        elif path == "/orders.json":
            data = json.dumps([o.summary() for o in self.orders.pending()], ensure_ascii=False)
            self._send(200, data.encode("utf-8"), "application/json")
        elif (match := re.fullmatch(r"/orders/([0-9a-f-]+)", path)) is not None:
            try:
                order = self.orders.open(match.group(1))
            except _PageRefusal as refusal:
                self._error(refusal.status, refusal.text)
            else:
                self._html(200, "BankID (test)", _order_section(order, detail=True))
        else:
            self._error(404, "Sidan finns inte.")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            form = parse_qs(self._body().decode("utf-8"))
        except (_Rejected, UnicodeDecodeError):
            self._error(400, "Ogiltigt formulär.")
            return
        match = re.fullmatch(r"/orders/([0-9a-f-]+)/(approve|cancel)", path)
        if match is None:
            self._error(404, "Sidan finns inte.")
            return
        ref, action = match.groups()
        try:
            if action == "cancel":
                self.orders.user_cancel(ref)
            else:
                self.orders.approve(ref, _persona_from(form))
        except _PageRefusal as refusal:
            self._error(refusal.status, refusal.text)
            return
        self._send(303, b"", "text/plain", {"Location": "/"})

    def _list(self) -> None:
        orders = self.orders.pending()
        content = "".join(_order_section(o) for o in orders) or "<p>Inga pågående order.</p>"
        intro = (
            "<p>Här godkänner eller avbryter du order som om du vore personen i BankID-appen. "
            'Sidan uppdateras inte av sig själv; <a href="/">ladda om</a>.</p>'
        )
        self._html(200, "BankID (test)", intro + content)


def _first(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0].strip()


def _persona_from(form: dict[str, list[str]]) -> Persona:
    personal_number = _first(form, "personal_number")
    if personal_number:
        name = _first(form, "name")
        if not _PERSONAL_NUMBER.match(personal_number):
            raise _PageRefusal(400, "Personnumret ska vara tolv siffror, t.ex. 199001011234.")
        given_name, _, surname = name.rpartition(" ")
        if not name or not given_name:
            raise _PageRefusal(400, "Skriv förnamn och efternamn.")
        return Persona(personal_number, given_name, surname)
    chosen = _first(form, "person")
    for persona in PERSONAS:
        if persona.personal_number == chosen:
            return persona
    raise _PageRefusal(400, "Välj en testperson eller skriv ett personnummer och ett namn.")


def _selected(chosen: bool) -> str:
    return " selected" if chosen else ""


def _order_section(order: _Order, *, detail: bool = False) -> str:
    e = html.escape
    kind = "Underskrift" if order.kind == "sign" else "Identifiering"
    if order.phone:
        kind += " (telefon)"
    started = dt.datetime.fromtimestamp(order.started).strftime("%Y-%m-%d %H:%M:%S")
    rows = [f"<h2>{kind}</h2>", f"<p>Startad {started} · order <code>{e(order.ref)}</code></p>"]
    if order.personal_number:
        rows.append(f"<p>Kräver personnummer <strong>{e(order.personal_number)}</strong></p>")
    if order.visible:
        rows.append(f"<p>Text att godkänna:</p><pre>{e(order.visible_text)}</pre>")
    if order.non_visible:
        rows.append("<p>Med osynlig data.</p>")
    if not detail:
        rows.append(f'<p><a href="/orders/{e(order.ref)}">Öppna i appen</a></p>')
    options = "".join(
        f'<option value="{p.personal_number}"{_selected(p.personal_number == order.personal_number)}>'
        f"{e(p.name)} ({p.personal_number})</option>"
        for p in PERSONAS
    )
    rows.append(
        f'<form method="post" action="/orders/{e(order.ref)}/approve">'
        f'<label>Testperson <select name="person">{options}</select></label> '
        '<p>eller <label>personnummer <input name="personal_number" inputmode="numeric" '
        'pattern="[0-9]{12}" placeholder="ÅÅÅÅMMDDNNNN"></label> '
        '<label>namn <input name="name" placeholder="Förnamn Efternamn"></label></p>'
        "<button>Godkänn</button></form>"
        f'<form method="post" action="/orders/{e(order.ref)}/cancel"><button>Avbryt</button></form>'
    )
    return f"<section>{''.join(rows)}</section>"


class _APIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, orders: _Orders) -> None:
        self.context = context
        handler = type("APIHandler", (_APIHandler,), {"orders": orders})
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the request's thread, so a slow or certificate-less
        # client cannot hold up accept().
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.info("BankID test API: TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("BankID test API: error with %s", client_address, exc_info=True)


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], orders: _Orders) -> None:
        super().__init__(address, type("PageHandler", (_PageHandler,), {"orders": orders}))

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("BankID test page: error with %s", client_address, exc_info=True)


class BankIDTestServer:
    """The RP API v6.0 and the tester page on two local ports.

    :param directory: where the test PKI lives (created on first start).
    :param api_port: 0 picks a free port; ``page_port`` likewise.
    :param order_lifetime: seconds until a pending order expires (BankID: 180).

    Example::

        with BankIDTestServer(tmp_path) as server:
            config = BankIDConfig(server.api_url, server.paths["rp_cert"], server.paths["rp_key"],
                                  server.paths["ca"])
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        host: str = "127.0.0.1",
        api_port: int = 0,
        page_port: int = 0,
        order_lifetime: float = ORDER_LIFETIME,
    ) -> None:
        self.directory = Path(directory).absolute()
        self.host = host
        self._ports = (api_port, page_port)
        self.order_lifetime = order_lifetime
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._pki: _TestPKI | None = None

    def start(self) -> BankIDTestServer:
        self._pki = _TestPKI(self.directory)
        orders = _Orders(self._pki, self.order_lifetime)
        api = _APIServer((self.host, self._ports[0]), self._pki.server_context(), orders)
        try:
            page = _PageServer((self.host, self._ports[1]), orders)
        except OSError:
            api.server_close()
            raise
        self._servers = [api, page]
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"bankid-test-{id(server)}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> BankIDTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _url_host(self) -> str:
        # The server certificate names localhost, 127.0.0.1 and ::1.
        if self.host in ("127.0.0.1", "localhost", "", "0.0.0.0"):  # noqa: S104 - only compared
            return "localhost"
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def api_url(self) -> str:
        return f"https://{self._url_host()}:{self._servers[0].server_address[1]}{API_PREFIX}"

    @property
    def page_url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0") else "127.0.0.1"  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self._servers[1].server_address[1]}/"

    @property
    def paths(self) -> dict[str, Path]:
        """``ca`` (trust this for the API), ``rp_cert`` and ``rp_key`` (the RP's client certificate)."""
        base = self.directory
        return {"ca": base / "ca.pem", "rp_cert": base / "rp.pem", "rp_key": base / "rp-key.pem"}

    def environment(self) -> dict[str, str]:
        """The ``ESIGN_BANKID_*`` variables that point esign.plone at this server."""
        return {
            "ESIGN_BANKID_URL": self.api_url,
            "ESIGN_BANKID_CERT": str(self.paths["rp_cert"]),
            "ESIGN_BANKID_KEY": str(self.paths["rp_key"]),
            "ESIGN_BANKID_CA": str(self.paths["ca"]),
        }


def main(argv: list[str] | None = None) -> int:
    """``esign-bankid-test-server``: serve until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description="Local BankID RP API v6.0 test server with a tester page.")
    parser.add_argument("--dir", default="var/bankid-test", help="test PKI directory (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--api-port", type=int, default=18443, help="RP API port, HTTPS (default: %(default)s)"
    )
    parser.add_argument(
        "--page-port", type=int, default=18444, help="tester page port (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = BankIDTestServer(args.dir, host=args.host, api_port=args.api_port, page_port=args.page_port)
    server.start()
    try:
        print(f"BankID RP API v6.0 (test): {server.api_url}", flush=True)
        print(f"Tester page:               {server.page_url}", flush=True)
        print("Point esign.plone at it with:", flush=True)
        for name, value in server.environment().items():
            print(f"  export {name}={value}", flush=True)
        while not stopping.wait(1):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A throwaway CA and a tiny HTTP server for the site CA's trust services, without Plone.

:class:`ThrowawayCA` makes a root, an issuing CA and a TSA certificate in memory, with
keys the test holds (the ``pki`` fixture keeps its keys private). :class:`TrustServer`
serves a :class:`~esign.plone.signing.tsa.TimeStampAuthority`, an
:class:`~esign.plone.signing.revocation.OCSPResponder` and CRLs over real HTTP on
127.0.0.1, the way the add-on's ``/esign-pki/*`` views do, so pyHanko's
``HTTPTimeStamper``, ``openssl ocsp -url`` and certvalidator's fetchers talk to them::

    with TrustServer(tsa=tsa, ocsp=responder, crls={"issuing.crl": make_crl}) as server:
        HTTPTimeStamper(server.url + "/tsa")
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from esign.plone.signing.certificates import signing_certificate_builder, with_publication
from esign.plone.signing.keys import SoftwareKey, sign_certificate
from esign.plone.signing.revocation import (
    OCSP_REQUEST,
    OCSP_RESPONSE,
    PKIX_CRL,
    MemoryRegistry,
    OCSPResponder,
    build_crl,
)
from esign.plone.signing.tsa import (
    TIMESTAMP_QUERY,
    TIMESTAMP_REPLY,
    TimeStampAuthority,
    tsa_certificate_builder,
)
from esign.plone.signing.values import PublicationPoints

KeyKind = Literal["ec", "rsa"]

_MAX_BODY = 64 * 1024
_PREFIX = "/esign-pki"


def new_key(kind: KeyKind) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """A fresh EC P-256 or RSA-2048 key (2048 keeps RSA tests fast)."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Testkommunen"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    not_before: dt.datetime,
    days: int,
    publication: PublicationPoints | None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if issuer is not None:
        builder = with_publication(builder, publication, issued_by_root=True)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class ThrowawayCA:
    """Root CA, issuing CA and TSA certificate made for one test module, keys included."""

    root: x509.Certificate
    root_key: SoftwareKey
    issuing: x509.Certificate
    issuing_key: SoftwareKey
    tsa_certificate: x509.Certificate
    tsa_key: SoftwareKey
    publication: PublicationPoints | None
    not_before: dt.datetime

    @classmethod
    def create(
        cls,
        *,
        kind: KeyKind = "ec",
        tsa_kind: KeyKind | None = None,
        base_url: str | None = None,
        now: dt.datetime | None = None,
        issuing_days: int = 10 * 365,
    ) -> ThrowawayCA:
        """Make the CAs and the TSA certificate.

        :param kind: key type of the CAs.
        :param tsa_kind: key type of the TSA (defaults to ``kind``).
        :param base_url: when given, certificates point at ``<base_url>/esign-pki/…``.
        :param now: start of validity; defaults to an hour ago.
        :param issuing_days: validity of the issuing CA (the root has 20 years, the TSA 15).
        """
        not_before = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=1)
        publication = PublicationPoints.under(base_url) if base_url else None
        root_key, issuing_key, tsa_key = new_key(kind), new_key(kind), new_key(tsa_kind or kind)
        root = _ca_certificate(
            _name("Testkommunen Root CA"),
            root_key,
            issuer=None,
            issuer_key=root_key,
            not_before=not_before,
            days=20 * 365,
            publication=publication,
        )
        issuing = _ca_certificate(
            _name("Testkommunen Signing CA"),
            issuing_key,
            issuer=root,
            issuer_key=root_key,
            not_before=not_before,
            days=issuing_days,
            publication=publication,
        )
        tsa_certificate = sign_certificate(
            with_publication(
                tsa_certificate_builder(
                    subject=_name("Testkommunen Time Stamping Authority"),
                    public_key=tsa_key.public_key(),
                    issuer_certificate=root,
                    not_before=not_before,
                    not_after=not_before + dt.timedelta(days=15 * 365),
                ),
                publication,
                issued_by_root=True,
            ),
            SoftwareKey(root_key),
        )
        return cls(
            root=root,
            root_key=SoftwareKey(root_key, label="test root"),
            issuing=issuing,
            issuing_key=SoftwareKey(issuing_key, label="test issuing CA"),
            tsa_certificate=tsa_certificate,
            tsa_key=SoftwareKey(tsa_key, label="test TSA"),
            publication=publication,
            not_before=not_before,
        )

    def issue(
        self,
        common_name: str,
        *,
        validity: dt.timedelta = dt.timedelta(minutes=10),
        now: dt.datetime | None = None,
        kind: KeyKind = "ec",
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
        """A one-time end-entity certificate from the issuing CA, as the add-on issues them."""
        key = new_key(kind)
        builder = signing_certificate_builder(
            subject=_name(common_name),
            public_key=key.public_key(),
            issuer_certificate=self.issuing,
            validity=validity,
            now=now or dt.datetime.now(dt.UTC),
        )
        return sign_certificate(with_publication(builder, self.publication), self.issuing_key), key

    def registry(self) -> MemoryRegistry:
        """A register holding the issuing CA and the TSA certificate (issued by the root)."""
        registry = MemoryRegistry()
        registry.add(self.issuing, kind="ca")
        registry.add(self.tsa_certificate, kind="tsa")
        return registry

    def tsa(self, **options) -> TimeStampAuthority:
        return TimeStampAuthority(self.tsa_certificate, self.tsa_key, [self.root], **options)

    def ocsp_responder(self, registry: MemoryRegistry, **options) -> OCSPResponder:
        return OCSPResponder(self.issuing, self.issuing_key, registry, **options)

    def root_ocsp_responder(self, registry: MemoryRegistry, **options) -> OCSPResponder:
        """The root's responder: status of what the root certified (issuing CA, TSA)."""
        return OCSPResponder(self.root, self.root_key, registry, **options)

    def issuing_crl(self, registry: MemoryRegistry, *, now: dt.datetime | None = None) -> bytes:
        now = now or dt.datetime.now(dt.UTC)
        return build_crl(
            self.issuing,
            self.issuing_key,
            registry.revoked(),
            number=int(now.timestamp()),
            this_update=now,
            next_update=now + dt.timedelta(days=1),
        )

    def root_crl(self, registry: MemoryRegistry, *, now: dt.datetime | None = None) -> bytes:
        now = now or dt.datetime.now(dt.UTC)
        return build_crl(
            self.root,
            self.root_key,
            registry.revoked(),
            number=int(now.timestamp()),
            this_update=now,
            next_update=now + dt.timedelta(days=30),
        )

    def write_pem(self, directory: Path, **certificates: x509.Certificate) -> dict[str, Path]:
        """Write ``root.pem``, ``issuing.pem``, ``tsa.pem`` and any extra certificates to ``directory``."""
        everything = {"root": self.root, "issuing": self.issuing, "tsa": self.tsa_certificate, **certificates}
        paths = {}
        for name, certificate in everything.items():
            paths[name] = directory / f"{name}.pem"
            paths[name].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return paths


def signature_timestamp_token(embedded: EmbeddedPdfSignature) -> cms.ContentInfo:
    """The RFC 3161 token in a PAdES signature's unsigned attributes (B-T and above)."""
    for attribute in embedded.signer_info["unsigned_attrs"]:
        if attribute["type"].native == "signature_time_stamp_token":
            return attribute["values"][0]
    raise AssertionError(f"signature {embedded.field_name} has no signature timestamp")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args) -> None:
        pass

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> str:
        path = self.path.split("?")[0]
        with self.server.lock:
            self.server.requests.append((self.command, path))
        # Certificates name <site>/esign-pki/...; the bare paths work as well.
        return path.removeprefix(_PREFIX)

    def do_POST(self) -> None:
        path = self._route().rstrip("/")
        services = self.server.services
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._reply(413, "text/plain", b"too large")
            return
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        if path == "/tsa" and services.tsa is not None:
            if content_type != TIMESTAMP_QUERY:
                self._reply(415, "text/plain", b"expected " + TIMESTAMP_QUERY.encode())
                return
            self._reply(200, TIMESTAMP_REPLY, services.tsa.respond(body))
        elif (responder := services.responders().get(path)) is not None:
            if content_type != OCSP_REQUEST:
                self._reply(415, "text/plain", b"expected " + OCSP_REQUEST.encode())
                return
            self._reply(200, OCSP_RESPONSE, responder.respond(body))
        else:
            self._reply(404, "text/plain", b"not found")

    def do_GET(self) -> None:
        path = self._route()
        services = self.server.services
        for base, responder in services.responders().items():
            # The base64 may hold "/" when a client does not percent-encode it.
            if path.startswith(base + "/"):
                self._reply(200, OCSP_RESPONSE, responder.respond_to_get(path[len(base) + 1 :]))
                return
        crl = services.crls.get(path.lstrip("/"))
        if crl is None:
            self._reply(404, "text/plain", b"not found")
            return
        self._reply(200, PKIX_CRL, crl() if callable(crl) else crl)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, services: TrustServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.services = services
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()


class TrustServer:
    """The trust services over HTTP on 127.0.0.1 (a free port), in a background thread.

    Routes: ``POST /tsa``; ``POST /ocsp`` and ``GET /ocsp/<base64>`` (issuing CA),
    ``POST /root-ocsp`` and ``GET /root-ocsp/<base64>`` (root); ``GET /<name>`` for each
    CRL in ``crls`` (bytes, or a callable that builds them on each request); the same
    below ``/esign-pki`` as in certificates made with ``PublicationPoints.under(url)``.
    The port is taken on construction, so certificates can name :attr:`url` before the
    services exist; assign :attr:`tsa`, :attr:`ocsp`, :attr:`root_ocsp` and :attr:`crls` later.

    :param tsa: the TSA to serve, if any.
    :param ocsp: the issuing CA's OCSP responder, if any.
    :param root_ocsp: the root's OCSP responder (for the TSA certificate), if any.
    :param crls: CRLs by path, e.g. ``{"issuing.crl": ..., "root.crl": ...}``.
    """

    def __init__(
        self,
        *,
        tsa: TimeStampAuthority | None = None,
        ocsp: OCSPResponder | None = None,
        root_ocsp: OCSPResponder | None = None,
        crls: Mapping[str, bytes | Callable[[], bytes]] | None = None,
    ) -> None:
        self.tsa = tsa
        self.ocsp = ocsp
        self.root_ocsp = root_ocsp
        self.crls: dict[str, bytes | Callable[[], bytes]] = dict(crls or {})
        self._server = _Server(self)
        self._thread: threading.Thread | None = None

    @classmethod
    def of_a_new_ca(cls) -> tuple[ThrowawayCA, TrustServer]:
        """A throwaway CA and a server (not started) of its TSA, OCSP responders and CRLs."""
        server = cls()
        ca = ThrowawayCA.create(base_url=server.url)
        registry = ca.registry()
        server.tsa = ca.tsa()
        server.ocsp = ca.ocsp_responder(registry)
        server.root_ocsp = ca.root_ocsp_responder(registry)
        server.crls = {
            "issuing.crl": lambda: ca.issuing_crl(registry),
            "root.crl": lambda: ca.root_crl(registry),
        }
        return ca, server

    def responders(self) -> dict[str, OCSPResponder]:
        """The OCSP responders being served, by path."""
        served = {"/ocsp": self.ocsp, "/root-ocsp": self.root_ocsp}
        return {path: responder for path, responder in served.items() if responder is not None}

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request served so far."""
        with self._server.lock:
            return list(self._server.requests)

    def start(self) -> TrustServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="trust-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TrustServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

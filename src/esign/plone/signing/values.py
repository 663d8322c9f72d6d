"""Values in and out of the signing engine: frozen dataclasses, no Plone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cryptography import x509

KeyAlgorithm = Literal["ec-p256", "rsa-3072"]

#: Level of assurance URIs (Sweden Connect / DIGG).
LOA3 = "http://id.elegnamnden.se/loa/1.0/loa3"


@dataclass(frozen=True)
class AuthenticationContext:
    """How and when the signer was authenticated (recorded per RFC 7773)."""

    #: "bankid", "siths" or "direct" (identity handed over by trusted code, e.g. the demo).
    method: str
    #: URI of the identity provider that vouched for the person.
    identity_provider: str
    #: When that provider authenticated the person (timezone-aware).
    authenticated_at: dt.datetime
    #: Level of assurance URI.
    level_of_assurance: str = LOA3
    #: The provider's reference: BankID orderRef, SAML assertion id, OIDC ``sid``/``jti``.
    transaction_ref: str = ""


@dataclass(frozen=True)
class VerifiedIdentity:
    """A person whose identity an identity provider has just verified."""

    given_name: str
    surname: str
    context: AuthenticationContext
    #: 12-digit Swedish personnummer / samordningsnummer, digits only.
    personal_number: str | None = None
    #: HSA-id for staff (SITHS), e.g. ``SE2321000016-1003``.
    hsa_id: str | None = None
    email: str | None = None

    @property
    def common_name(self) -> str:
        return f"{self.given_name} {self.surname}".strip()

    @property
    def subject_serial_number(self) -> str:
        """The certificate subject's serialNumber (ETSI EN 319 412-1 semantics)."""
        if self.personal_number:
            return f"PNOSE-{self.personal_number}"
        if self.hsa_id:
            return self.hsa_id
        raise ValueError("a verified identity needs a personal number or an HSA-id")


@dataclass(frozen=True)
class SigningProfile:
    """Settings of one signature."""

    key_algorithm: KeyAlgorithm = "ec-p256"
    #: Validity of the one-time signer certificate.
    certificate_validity: dt.timedelta = dt.timedelta(minutes=10)
    #: Name of the signature field to create; ``None`` picks ``Signature<n>``.
    field_name: str | None = None
    reason: str | None = None
    location: str | None = None
    #: Organisation named in certificates and in the signature.
    organisation: str = ""
    #: PAdES level of the signature: "B-B", "B-T", "B-LT" (B-LTA is B-LT plus a document
    #: timestamp once all have signed, so a signature itself is made as for B-LT).
    level: str = "B-B"
    #: Let pyHanko fetch revocation data of certificates not from the site CA (an external TSA's).
    fetch_revocation: bool = False
    #: Trust anchors besides the site root: an external TSA's (its chain is validated for B-LT).
    tsa_trust_roots: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class SignatureResult:
    """What one signature produced. Holds no key material."""

    field_name: str
    signed_at: dt.datetime
    certificate_der: bytes
    #: Hex serial of the one-time certificate.
    certificate_serial: str
    #: RFC 4514 subject of the one-time certificate.
    certificate_subject: str
    #: SHA-256 hex of the whole signed file.
    document_sha256: str
    #: Size in bytes of the signed file.
    document_size: int


@dataclass(frozen=True)
class SignatureReport:
    """Validation outcome of one embedded signature."""

    field_name: str
    signer_name: str
    #: The subject serialNumber, e.g. ``PNOSE-191212121212``.
    signer_serial_number: str
    certificate_subject: str
    certificate_serial: str
    issuer_subject: str
    signing_time: dt.datetime | None
    #: The signed bytes are unchanged.
    intact: bool
    #: The cryptographic signature is correct.
    valid: bool
    #: The certificate chains to one of the trust roots.
    trusted: bool
    #: "entire file", "entire revision" or "partial".
    coverage: str
    #: pyHanko's ModificationLevel name: NONE, LTA_UPDATES, FORM_FILLING, ANNOTATIONS, OTHER.
    modification_level: str
    #: True when nothing but allowed updates came after this signature.
    unmodified_since: bool
    #: Overall verdict: intact, valid, trusted and no disallowed changes.
    bottom_line: bool
    #: Human-readable details when something is wrong.
    problems: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ValidationReport:
    signatures: tuple[SignatureReport, ...]

    @property
    def all_valid(self) -> bool:
        return bool(self.signatures) and all(s.bottom_line for s in self.signatures)


@dataclass(frozen=True)
class PdfInfo:
    """What the document check found in an uploaded PDF."""

    page_count: int
    size: int
    signature_count: int
    sha256: str


@dataclass(frozen=True)
class PublicationPoints:
    """Where the site CA publishes revocation data and its certificates (put into every certificate).

    Built with :meth:`under` from the site's public URL; the add-on serves each address.
    """

    #: OCSP responder for certificates of the issuing CA (authorityInfoAccess).
    ocsp_url: str
    #: CRL of the issuing CA (cRLDistributionPoints of end-entity certificates).
    crl_url: str
    #: CRL of the root CA (cRLDistributionPoints of the issuing CA and TSA certificates).
    root_crl_url: str
    #: The issuing CA certificate (authorityInfoAccess caIssuers).
    ca_issuers_url: str
    #: The root certificate (caIssuers of certificates the root signs).
    root_certificate_url: str
    #: OCSP responder for certificates the root signs (the TSA's).
    root_ocsp_url: str = ""

    @classmethod
    def under(cls, base_url: str) -> PublicationPoints:
        """The add-on's addresses below ``base_url`` (the site root, no trailing slash)."""
        base = base_url.rstrip("/") + "/esign-pki"
        return cls(
            ocsp_url=f"{base}/ocsp",
            crl_url=f"{base}/issuing.crl",
            root_crl_url=f"{base}/root.crl",
            ca_issuers_url=f"{base}/issuing.crt",
            root_certificate_url=f"{base}/root.crt",
            root_ocsp_url=f"{base}/root-ocsp",
        )

"""Validation reports per ETSI EN 319 102-1, with the ETSI TS 119 102-2 XML report.

Every signature in a PDF is run through pyHanko's AdES validation process that fits
what the file holds: the basic process for a bare B-B signature, validation with time
for a signature timestamp (B-T), and the long-term process (EN 319 102-1 § 5.6.3) once
revocation data (B-LT) and document timestamps (B-LTA) are there. Nothing is fetched
from the network unless the caller allows it: revocation data comes from the
document's DSS and from what the caller hands in (the site CA's own current CRLs).

The outcome per signature is the standard's main indication (TOTAL-PASSED,
INDETERMINATE, TOTAL-FAILED) with its sub-indication, a Swedish sentence saying what
it means, and the PAdES level the file reaches. The XML report carries one
``SignatureValidationReport`` per signature and each document timestamp as a
validation object with its own report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus, AdESSubIndic
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import SigSeedSubFilter, enumerate_sig_fields
from pyhanko.sign.validation import ades, generic_cms
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.report.tools import NAMESPACES, generate_report
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.poe import ValidationObject, ValidationObjectType
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

from esign.plone.errors import CorruptPdf, DocumentTooLarge, EncryptedPdf, InvalidDocument, NotAPdf
from esign.plone.signing.documents import stream_size

__all__ = [
    "DEFAULT_MAX_SIGNATURES",
    "DEFAULT_MAX_SIZE",
    "EXPLANATIONS",
    "AssessmentReport",
    "SignatureAssessment",
    "assess_pdf",
]

logger = logging.getLogger(__name__)

#: The largest file :func:`assess_pdf` reads unless the caller says otherwise (50 MiB).
DEFAULT_MAX_SIZE = 50 * 1024 * 1024
#: More signature fields than this and the file is refused: each costs a full validation.
DEFAULT_MAX_SIGNATURES = 50

Indication = Literal["TOTAL-PASSED", "INDETERMINATE", "TOTAL-FAILED"]
Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]

PASSED: Indication = "TOTAL-PASSED"
INDETERMINATE: Indication = "INDETERMINATE"
FAILED: Indication = "TOTAL-FAILED"

_INDICATIONS: dict[AdESStatus, Indication] = {
    AdESStatus.PASSED: PASSED,
    AdESStatus.INDETERMINATE: INDETERMINATE,
    AdESStatus.FAILED: FAILED,
}

_MAIN_INDICATION_URN = {
    PASSED: "urn:etsi:019102:mainindication:total-passed",
    INDETERMINATE: "urn:etsi:019102:mainindication:indeterminate",
    FAILED: "urn:etsi:019102:mainindication:total-failed",
}

#: Swedish explanation per outcome, keyed by an id that is also the tail of the i18n msgid
#: ``validation_explanation_<id>``: ``total_passed``, else the sub-indication in lower case
#: (TOTAL-FAILED/NOT_YET_VALID, which shares its name with an INDETERMINATE one, is
#: ``failed_not_yet_valid``).
EXPLANATIONS: dict[str, str] = {
    "total_passed": "Underskriften är giltig.",
    # TOTAL-FAILED
    "format_failure": "Underskriften är inte utformad enligt standarden och kan inte kontrolleras.",
    "hash_failure": "Dokumentet har ändrats efter underskriften.",
    "sig_crypto_failure": "Underskriftens kryptografiska värde stämmer inte; underskriften är förfalskad "
    "eller skadad.",
    "revoked": "Undertecknarens certifikat var återkallat när underskriften gjordes.",
    "failed_not_yet_valid": "Underskriften gjordes innan undertecknarens certifikat blev giltigt.",
    # INDETERMINATE
    "sig_constraints_failure": "Underskriften saknar något som valideringen kräver, till exempel en "
    "tidsstämpel.",
    "chain_constraints_failure": "Certifikatkedjan uppfyller inte kraven för en underskrift.",
    "certificate_chain_general_failure": "Certifikatkedjan kunde inte kontrolleras, till exempel för att "
    "spärrinformation saknas.",
    "crypto_constraints_failure": "Underskriften använder en algoritm eller nyckellängd som inte längre "
    "godtas.",
    "expired": "Underskriften kan inte visas ha gjorts innan undertecknarens certifikat gick ut.",
    "not_yet_valid": "Undertecknarens certifikat var ännu inte giltigt vid den tidpunkt som kan styrkas.",
    "policy_processing_error": "Underskriftspolicyn kunde inte behandlas.",
    "signature_policy_not_available": "Underskriftspolicyn som underskriften hänvisar till finns inte "
    "tillgänglig.",
    "timestamp_order_failure": "Tidsstämplarna i underskriften är i fel tidsordning.",
    "no_signing_certificate_found": "Undertecknarens certifikat finns inte i underskriften.",
    "no_certificate_chain_found": "Undertecknarens certifikat leder inte till en betrodd utfärdare.",
    "revoked_no_poe": "Undertecknarens certifikat har återkallats och det går inte att visa att "
    "underskriften gjordes före återkallelsen.",
    "revoked_ca_no_poe": "En utfärdare i certifikatkedjan har återkallats och det går inte att visa att "
    "underskriften gjordes före återkallelsen.",
    "out_of_bounds_no_poe": "Undertecknarens certifikat har gått ut och det saknas bevis (tidsstämpel) för "
    "att underskriften gjordes medan det var giltigt.",
    "revocation_out_of_bounds_no_poe": "Spärrinformationen kan inte visas gälla den tid då underskriften "
    "gjordes.",
    "out_of_bounds_not_revoked": "Undertecknarens certifikat har gått ut utan att återkallas, men det "
    "saknas bevis för när underskriften gjordes.",
    "crypto_constraints_failure_no_poe": "En algoritm i underskriften godtas inte längre och det saknas "
    "bevis för att underskriften gjordes medan den godtogs.",
    "no_poe": "Det saknas bevis (tidsstämpel) för att underskriften fanns medan certifikaten var giltiga.",
    "try_later": "Aktuell spärrinformation finns inte att tillgå; försök igen senare.",
    "signed_data_not_found": "Det underskrivna innehållet kunde inte hittas.",
    "generic": "Underskriften kunde inte kontrolleras fullt ut.",
}

#: Swedish warning when the document was changed after a signature in a way that is not allowed
#: (i18n msgid ``validation_later_changes``).
LATER_CHANGES = (
    "Dokumentet har ändrats efter denna underskrift på ett sätt som inte är tillåtet; "
    "det du ser nu är inte det som skrevs under."
)

_NO_SIGNATURES = "Dokumentet innehåller inga underskrifter."
_ALL_PASSED = "Alla underskrifter är giltiga."
_SOME_FAILED = "Minst en underskrift är ogiltig."
_SOME_INDETERMINATE = "Minst en underskrift kunde inte bekräftas som giltig."

# ISO 32000 lets the header sit anywhere in the first 1024 bytes.
_HEADER_WINDOW = 1024
_PADES_SUBFILTER = SigSeedSubFilter.PADES.value
_KNOWN_SUBFILTERS = {s.value for s in SigSeedSubFilter}
# Later updates that leave what the signer saw untouched (cf. validation.py).
_ALLOWED_LATER_CHANGES = (
    ModificationLevel.NONE,
    ModificationLevel.LTA_UPDATES,
    ModificationLevel.FORM_FILLING,
)


@dataclass(frozen=True)
class SignatureAssessment:
    """The EN 319 102-1 outcome of one signature or document timestamp."""

    #: Name of the signature field.
    field_name: str
    #: ``"signature"`` or ``"document-timestamp"``.
    kind: Literal["signature", "document-timestamp"]
    #: Common name of the signer's certificate (the TSA's, for a document timestamp).
    signer_name: str
    #: The subject serialNumber, e.g. ``PNOSE-191212121212``; empty when the certificate has none.
    signer_serial_number: str
    #: RFC 4514 subject and issuer of that certificate (empty when it could not be read).
    certificate_subject: str
    issuer_subject: str
    #: The signature timestamp's time when there is one, else the time the signer claimed.
    signing_time: dt.datetime | None
    #: ``"timestamp"`` or ``"claimed"`` (or ``"none"``): where :attr:`signing_time` comes from.
    time_source: Literal["timestamp", "claimed", "none"]
    #: PAdES baseline level the file reaches for this signature; ``None`` for a document
    #: timestamp and for signatures that are not PAdES (e.g. ``adbe.pkcs7.detached``).
    level: Level | None
    #: EN 319 102-1 main indication.
    indication: Indication
    #: EN 319 102-1 sub-indication name (``HASH_FAILURE``, ``NO_POE``, ...); ``None`` when passed.
    sub_indication: str | None
    #: What the outcome means, in Swedish.
    explanation: str
    #: Key of :data:`EXPLANATIONS` (tail of the i18n msgid ``validation_explanation_<id>``).
    explanation_id: str
    #: The validation process that was run: ``Basic``, ``LTVM`` (with time), ``LTA`` or ``Timestamp``.
    validation_process: str
    #: The document was changed after this signature in a way that is not allowed
    #: (reported beside the indication, as EN 319 102-1 validates the signed revision).
    later_changes: bool = False
    #: pyHanko's own words when something failed (English, for the log and experts).
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.indication == PASSED


@dataclass(frozen=True)
class AssessmentReport:
    """Validation of every signature and document timestamp in one PDF."""

    #: The signatures, in signing order.
    signatures: tuple[SignatureAssessment, ...]
    #: The document timestamps, in order.
    document_timestamps: tuple[SignatureAssessment, ...]
    #: The moment the validation was made for.
    validation_time: dt.datetime
    #: SHA-256 (hex) and size of the validated file.
    document_sha256: str
    document_size: int
    #: The ETSI TS 119 102-2 validation report; empty when the file has no signature.
    etsi_xml: bytes

    @property
    def has_signatures(self) -> bool:
        return bool(self.signatures)

    @property
    def all_passed(self) -> bool:
        """Every signature TOTAL-PASSED, none followed by disallowed changes (``False`` without any)."""
        return bool(self.signatures) and all(s.passed and not s.later_changes for s in self.signatures)

    @property
    def summary(self) -> str:
        """One Swedish sentence about the whole document."""
        if not self.signatures:
            return _NO_SIGNATURES
        if self.all_passed:
            return _ALL_PASSED
        if any(s.indication == FAILED or s.later_changes for s in self.signatures):
            return _SOME_FAILED
        return _SOME_INDETERMINATE


# -- reading the file -------------------------------------------------------------


def _open(source: BinaryIO | bytes, *, max_size: int) -> tuple[PdfFileReader, str, int]:
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    size = stream_size(stream)
    if size > max_size:
        raise DocumentTooLarge(
            f"The file is {size / 1e6:.1f} MB; the largest document that can be validated is "
            f"{max_size / 1e6:.1f} MB."
        )
    if size == 0:
        raise NotAPdf("The file is empty.")
    stream.seek(0)
    if b"%PDF-" not in stream.read(_HEADER_WINDOW):
        raise NotAPdf("The file is not a PDF document.")
    digest = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(1024 * 1024):
        digest.update(chunk)
    stream.seek(0)
    try:
        reader = PdfFileReader(stream, strict=False)
    except Exception as exc:
        raise CorruptPdf("The PDF file is damaged or incomplete and cannot be read.") from exc
    if reader.encrypted or "/Encrypt" in reader.trailer:
        raise EncryptedPdf("The PDF is password-protected or encrypted; it cannot be validated.")
    return reader, digest.hexdigest(), size


def _signature_fields(reader: PdfFileReader, *, max_signatures: int) -> list[tuple[str, Any]]:
    try:
        fields = [(name, field) for name, _value, field in enumerate_sig_fields(reader, filled_status=True)]
    except Exception as exc:
        raise CorruptPdf("The PDF file is damaged and its signature fields cannot be read.") from exc
    if len(fields) > max_signatures:
        raise InvalidDocument(
            f"The document has {len(fields)} signatures; at most {max_signatures} can be validated here."
        )
    return fields


# -- what the document holds --------------------------------------------------------


def _der(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class _RevocationData:
    """Certificates, CRLs and OCSP responses: from the DSS or from the caller."""

    certificates: tuple[asn1_x509.Certificate, ...] = ()
    crls: tuple[crl.CertificateList, ...] = ()
    ocsps: tuple[ocsp.OCSPResponse, ...] = ()

    def knowledge(self) -> LocalKnowledge:
        return LocalKnowledge(
            known_certs=list(self.certificates),
            known_crls=[CRLContainer(c) for c in self.crls],
            known_ocsps=[container for r in self.ocsps for container in OCSPContainer.load_multi(r)],
        )

    def __add__(self, other: _RevocationData) -> _RevocationData:
        return _RevocationData(
            self.certificates + other.certificates, self.crls + other.crls, self.ocsps + other.ocsps
        )


def _read_dss(reader: PdfFileReader) -> _RevocationData:
    try:
        dss = DocumentSecurityStore.read_dss(reader)
        return _RevocationData(
            certificates=tuple(dss.load_certs()),
            crls=tuple(
                crl.CertificateList.load(ref.get_object().read_data(DecodePurpose.CRL)) for ref in dss.crls
            ),
            ocsps=tuple(
                ocsp.OCSPResponse.load(ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE))
                for ref in dss.ocsps
            ),
        )
    except NoDSSFoundError:
        return _RevocationData()
    except Exception:
        # A damaged DSS is no evidence; pyHanko's long-term process will say what is missing.
        logger.info("The document's DSS cannot be read", exc_info=True)
        return _RevocationData()


def _ocsp_serials(response: ocsp.OCSPResponse) -> set[int]:
    """Serial numbers of the certificates an OCSP response speaks about."""
    try:
        basic = response["response_bytes"]["response"].parsed
        return {
            single["cert_id"]["serial_number"].native for single in basic["tbs_response_data"]["responses"]
        }
    except (KeyError, ValueError, TypeError, AttributeError):
        return set()


def _declares_revocation(certificate: asn1_x509.Certificate) -> bool:
    return bool(certificate.crl_distribution_points or certificate.ocsp_urls)


def _chain(leaf: asn1_x509.Certificate, pool: Iterable[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
    """The leaf and its issuers found in ``pool`` by name, up to a self-issued certificate."""
    by_subject: dict[bytes, asn1_x509.Certificate] = {}
    for certificate in pool:
        by_subject.setdefault(certificate.subject.dump(), certificate)
    chain = [leaf]
    current = leaf
    while not current.self_issued and len(chain) < 10:
        parent = by_subject.get(current.issuer.dump())
        if parent is None or parent in chain:
            break
        chain.append(parent)
        current = parent
    return chain


def _revocation_covered(
    chain: Sequence[asn1_x509.Certificate], dss: _RevocationData, roots: Sequence[asn1_x509.Certificate]
) -> bool:
    """Whether the DSS holds revocation data for each certificate of the chain that asks for it."""
    if not (dss.certificates or dss.crls or dss.ocsps):
        return False
    crl_issuers = {c["tbs_cert_list"]["issuer"].dump() for c in dss.crls}
    # One-time certificates carry 127 random serial bits: the serial alone names one.
    ocsp_serials: set[int] = set().union(*(_ocsp_serials(r) for r in dss.ocsps))
    root_keys = {r.public_key.dump() for r in roots}
    for certificate in chain:
        if certificate.self_issued or certificate.public_key.dump() in root_keys:
            break
        if not _declares_revocation(certificate):
            continue
        if certificate.issuer.dump() in crl_issuers or certificate.serial_number in ocsp_serials:
            continue
        return False
    return True


def _signature_timestamp(embedded: EmbeddedPdfSignature) -> cms.SignedData | None:
    try:
        return next(generic_cms.extract_tst_data_iter(embedded.signer_info, signed=False))
    except StopIteration:
        return None


def _signer_certificate(embedded: EmbeddedPdfSignature) -> asn1_x509.Certificate | None:
    try:
        return embedded.signer_cert
    except Exception:
        # No certificate matches the SignerInfo: pyHanko reports NO_SIGNING_CERTIFICATE_FOUND.
        return None


def _tst_time(token: cms.SignedData) -> dt.datetime | None:
    try:
        return token["encap_content_info"]["content"].parsed["gen_time"].native
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _level(
    embedded: EmbeddedPdfSignature,
    *,
    timestamped: bool,
    dss: _RevocationData,
    document_timestamp_revisions: Sequence[int],
    roots: Sequence[asn1_x509.Certificate],
) -> Level | None:
    if str(embedded.sig_object.get("/SubFilter", "")) != _PADES_SUBFILTER:
        return None
    if not timestamped:
        return "B-B"
    signer = _signer_certificate(embedded)
    pool = [*embedded.other_embedded_certs, *dss.certificates]
    if signer is None or not _revocation_covered(_chain(signer, pool), dss, roots):
        return "B-T"
    if any(revision > embedded.signed_revision for revision in document_timestamp_revisions):
        return "B-LTA"
    return "B-LT"


# -- validation ------------------------------------------------------------------------


def _spec(
    roots: Sequence[asn1_x509.Certificate],
    knowledge: LocalKnowledge,
    *,
    allow_fetching: bool,
    ts_roots: Sequence[asn1_x509.Certificate] = (),
) -> SignatureValidationSpec:
    # Revocation is checked for every certificate that says where its status is published
    # (our one-time certificates do: OCSP and CRL); a certificate that names none is taken
    # as it is. Offline, that status must come from the DSS or the caller.
    def policy(anchors: Sequence[asn1_x509.Certificate]) -> CertValidationPolicySpec:
        return CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=list(anchors)),
            revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy("hard-fail")),
        )

    return SignatureValidationSpec(
        cert_validation_policy=policy(roots),
        # An external TSA's root vouches for timestamps, never for a signer's certificate.
        ts_cert_validation_policy=policy([*roots, *ts_roots]) if ts_roots else None,
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=(
                RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH
                if allow_fetching
                else RevinfoOnlineFetchingRule.LOCAL_ONLY
            )
        ),
        local_knowledge=knowledge,
    )


def _explanation_id(indication: Indication, sub: str | None) -> str:
    if indication == PASSED or sub is None:
        return "total_passed" if indication == PASSED else "generic"
    if indication == FAILED and sub == "NOT_YET_VALID":
        return "failed_not_yet_valid"
    key = sub.lower()
    return key if key in EXPLANATIONS else "generic"


def _outcome(subindic: AdESSubIndic) -> tuple[Indication, str | None]:
    indication = _INDICATIONS[subindic.status]
    return indication, (None if indication == PASSED else subindic.standard_name)


def _names(certificate: asn1_x509.Certificate | None) -> dict[str, str]:
    if certificate is None:
        return {
            "signer_name": "",
            "signer_serial_number": "",
            "certificate_subject": "",
            "issuer_subject": "",
        }

    def attribute(key: str) -> str:
        value = certificate.subject.native.get(key, "")
        return ", ".join(value) if isinstance(value, list) else str(value)

    parsed = x509.load_der_x509_certificate(certificate.dump())
    return {
        "signer_name": attribute("common_name"),
        "signer_serial_number": attribute("serial_number"),
        "certificate_subject": parsed.subject.rfc4514_string(),
        "issuer_subject": parsed.issuer.rfc4514_string(),
    }


def _later_changes(embedded: EmbeddedPdfSignature) -> bool:
    try:
        integrity = embedded.summarise_integrity_info()
    except Exception:
        return True
    diff = integrity.get("diff_result")
    level = getattr(diff, "modification_level", ModificationLevel.OTHER if diff is not None else None)
    if integrity.get("docmdp_ok") is False:
        return True
    return level is not None and level not in _ALLOWED_LATER_CHANGES


def _integrity(embedded: EmbeddedPdfSignature) -> None:
    try:
        embedded.compute_integrity_info()
    except Exception:
        # The change analysis gave up on the later updates (a suspicious xref, say): that
        # leaves "later changes" to report, and the signature itself is still validated.
        logger.info("Change analysis failed for %s", embedded.field_name, exc_info=True)
        embedded.compute_integrity_info(skip_diff=True)


@dataclass
class _Validated:
    assessment: SignatureAssessment
    embedded: EmbeddedPdfSignature | None = None
    result: ades.AdESBasicValidationResult | None = None


def _broken(field_name: str, kind: Any, detail: str) -> _Validated:
    explanation_id = "format_failure"
    return _Validated(
        SignatureAssessment(
            field_name=field_name,
            kind=kind,
            signer_name="",
            signer_serial_number="",
            certificate_subject="",
            issuer_subject="",
            signing_time=None,
            time_source="none",
            level=None,
            indication=FAILED,
            sub_indication=AdESFailure.FORMAT_FAILURE.standard_name,
            explanation=EXPLANATIONS[explanation_id],
            explanation_id=explanation_id,
            validation_process="Basic",
            detail=detail,
        )
    )


async def _validate_signature(
    embedded: EmbeddedPdfSignature,
    *,
    level: Level | None,
    timestamp: cms.SignedData | None,
    roots: Sequence[asn1_x509.Certificate],
    ts_roots: Sequence[asn1_x509.Certificate],
    caller: _RevocationData,
    dss: _RevocationData,
    timing: ValidationTimingInfo,
    allow_fetching: bool,
) -> _Validated:
    _integrity(embedded)
    result: ades.AdESBasicValidationResult
    if level in ("B-LT", "B-LTA"):
        # pyHanko's long-term process reads the DSS and the document timestamps itself.
        spec = PdfSignatureValidationSpec(
            _spec(roots, caller.knowledge(), allow_fetching=allow_fetching, ts_roots=ts_roots)
        )
        result = await ades.ades_lta_validation(embedded, spec, timing_info=timing)
        process = "LTA"
    elif timestamp is not None:
        spec_t = _spec(roots, (caller + dss).knowledge(), allow_fetching=allow_fetching, ts_roots=ts_roots)
        result = await ades.ades_with_time_validation(
            embedded.signed_data,
            spec_t,
            timing_info=timing,
            raw_digest=embedded.compute_digest(),
            extra_status_kwargs=embedded.summarise_integrity_info(),
            status_cls=PdfSignatureStatus,
        )
        process = "LTVM"
    else:
        spec_b = _spec(roots, (caller + dss).knowledge(), allow_fetching=allow_fetching, ts_roots=ts_roots)
        # The basic process builds its own status object; the PDF integrity facts are
        # reported separately (later_changes) rather than passed in.
        result = await ades.ades_basic_validation(
            embedded.signed_data, spec_b, timing_info=timing, raw_digest=embedded.compute_digest()
        )
        process = "Basic"
    indication, sub = _outcome(result.ades_subindic)
    explanation_id = _explanation_id(indication, sub)
    timestamp_time = _tst_time(timestamp) if timestamp is not None else None
    claimed = embedded.self_reported_timestamp
    return _Validated(
        SignatureAssessment(
            field_name=embedded.field_name,
            kind="signature",
            **_names(_signer_certificate(embedded)),
            signing_time=timestamp_time or claimed,
            time_source="timestamp" if timestamp_time else ("claimed" if claimed else "none"),
            level=level,
            indication=indication,
            sub_indication=sub,
            explanation=EXPLANATIONS[explanation_id],
            explanation_id=explanation_id,
            validation_process=process,
            later_changes=_later_changes(embedded),
            detail=result.failure_msg or "",
        ),
        embedded=embedded,
        result=result,
    )


async def _validate_document_timestamp(
    embedded: EmbeddedPdfSignature,
    *,
    roots: Sequence[asn1_x509.Certificate],
    ts_roots: Sequence[asn1_x509.Certificate],
    caller: _RevocationData,
    dss: _RevocationData,
    timing: ValidationTimingInfo,
    allow_fetching: bool,
) -> _Validated:
    # Validated at the validation time (EN 319 102-1 § 5.4). An older document timestamp
    # whose TSA certificate has since expired is kept alive by the newer ones; pyHanko
    # checks that chain as part of the long-term process of each signature.
    _integrity(embedded)
    spec = _spec(roots, (caller + dss).knowledge(), allow_fetching=allow_fetching, ts_roots=ts_roots)
    result = await ades.ades_timestamp_validation(
        embedded.signed_data, spec, embedded.compute_digest, timing_info=timing
    )
    indication, sub = _outcome(result.ades_subindic)
    explanation_id = _explanation_id(indication, sub)
    when = _tst_time(embedded.signed_data)
    return _Validated(
        SignatureAssessment(
            field_name=embedded.field_name,
            kind="document-timestamp",
            **_names(_signer_certificate(embedded)),
            signing_time=when,
            time_source="timestamp" if when else "none",
            level=None,
            indication=indication,
            sub_indication=sub,
            explanation=EXPLANATIONS[explanation_id],
            explanation_id=explanation_id,
            validation_process="Timestamp",
            later_changes=_later_changes(embedded),
            detail=result.failure_msg or "",
        ),
        embedded=embedded,
        result=result,
    )


# -- the ETSI TS 119 102-2 report ----------------------------------------------------------


def _xml_report(
    signatures: Sequence[_Validated], stamps: Sequence[_Validated], *, validation_time: dt.datetime
) -> bytes:
    from pyhanko.generated.etsi import ts_11910202
    from xsdata.formats.dataclass.parsers import XmlParser
    from xsdata.formats.dataclass.serializers import XmlSerializer
    from xsdata.formats.dataclass.serializers.config import SerializerConfig
    from xsdata.models.datatype import XmlDateTime

    if not signatures:
        return b""
    parser = XmlParser()
    reports = []
    objects: dict[str, Any] = {}

    def minimal(item: _Validated, process: str) -> Any:
        a = item.assessment
        return ts_11910202.SignatureValidationReportType(
            validation_time_info=ts_11910202.ValidationTimeInfoType(
                validation_time=XmlDateTime.from_datetime(validation_time)
            ),
            signature_validation_process=ts_11910202.SignatureValidationProcessType(
                signature_validation_process_id=f"urn:etsi:019102:validationprocess:{process}"
            ),
            signature_validation_status=ts_11910202.ValidationStatusType(
                main_indication=_MAIN_INDICATION_URN[a.indication],
                sub_indication=(f"urn:etsi:019102:subindication:{a.sub_indication}",)
                if a.sub_indication
                else (),
            ),
        )

    for item in signatures:
        single = None
        if item.embedded is not None and item.result is not None and item.result.api_status is not None:
            try:
                parsed = parser.from_string(
                    generate_report(item.embedded, item.result), ts_11910202.ValidationReport
                )
                single = parsed.signature_validation_report[0]
                if parsed.signature_validation_objects is not None:
                    for vo in parsed.signature_validation_objects.validation_object:
                        objects.setdefault(vo.id, vo)
            except Exception:
                # pyHanko's reporter is still incubating; a signature it cannot describe
                # in full still gets its indication in the report.
                logger.info("Full ETSI report failed for %s", item.assessment.field_name, exc_info=True)
        reports.append(single or minimal(item, item.assessment.validation_process))

    for item in stamps:
        if item.embedded is None:
            continue
        token = item.embedded.signed_data
        vo = ValidationObject(object_type=ValidationObjectType.TIMESTAMP, value=token)
        identifier = ades.derive_validation_object_identifier(vo)
        when = item.assessment.signing_time
        objects[identifier] = ts_11910202.ValidationObjectType(
            id=identifier,
            object_type=ValidationObjectType.TIMESTAMP.urn(),
            validation_object_representation=ts_11910202.ValidationObjectRepresentationType(
                base64=ades.derive_validation_object_binary_data(vo)
            ),
            poe=(
                ts_11910202.POEType(
                    poetime=XmlDateTime.from_datetime(when),
                    type_of_proof="urn:etsi:019102:poetype:validation",
                )
                if when
                else None
            ),
            validation_report=minimal(item, "Basic"),
        )

    report = ts_11910202.ValidationReport(
        signature_validation_report=tuple(reports),
        signature_validation_objects=(
            ts_11910202.ValidationObjectListType(tuple(objects.values())) if objects else None
        ),
    )
    xml = XmlSerializer(config=SerializerConfig(indent="  ")).render(report, ns_map=NAMESPACES)
    return xml.encode("utf-8")


# -- the door ----------------------------------------------------------------------------


def _revocation_from_caller(crls: Sequence[bytes], ocsp_responses: Sequence[bytes]) -> _RevocationData:
    try:
        return _RevocationData(
            crls=tuple(crl.CertificateList.load(bytes(data)) for data in crls),
            ocsps=tuple(ocsp.OCSPResponse.load(bytes(data)) for data in ocsp_responses),
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"unreadable revocation data: {exc}") from exc


async def _assess(
    reader: PdfFileReader,
    fields: Sequence[tuple[str, Any]],
    *,
    roots: Sequence[asn1_x509.Certificate],
    ts_roots: Sequence[asn1_x509.Certificate],
    caller: _RevocationData,
    timing: ValidationTimingInfo,
    allow_fetching: bool,
) -> tuple[list[_Validated], list[_Validated]]:
    embedded_all: list[tuple[str, EmbeddedPdfSignature | Exception, bool]] = []
    for name, field in fields:
        is_stamp = False
        try:
            value = field.get_object()["/V"].get_object()
            is_stamp = str(value.get("/Type", "/Sig")) == "/DocTimeStamp"
            subfilter = str(value.get("/SubFilter", ""))
            if subfilter not in _KNOWN_SUBFILTERS:
                raise ValueError(f"unsupported signature format {subfilter or '(none)'}")
            embedded_all.append((name, EmbeddedPdfSignature(reader, field, name), is_stamp))
        except Exception as exc:
            embedded_all.append((name, exc, is_stamp))
    dss = _read_dss(reader)
    stamp_revisions = [
        e.signed_revision for _n, e, stamp in embedded_all if stamp and isinstance(e, EmbeddedPdfSignature)
    ]
    signatures: list[tuple[int, _Validated]] = []
    stamps: list[tuple[int, _Validated]] = []
    for name, embedded, is_stamp in embedded_all:
        kind = "document-timestamp" if is_stamp else "signature"
        if isinstance(embedded, Exception):
            item = _broken(name, kind, f"The signature cannot be read: {embedded}")
            (stamps if is_stamp else signatures).append((10**9, item))
            continue
        try:
            if is_stamp:
                item = await _validate_document_timestamp(
                    embedded,
                    roots=roots,
                    ts_roots=ts_roots,
                    caller=caller,
                    dss=dss,
                    timing=timing,
                    allow_fetching=allow_fetching,
                )
            else:
                timestamp = _signature_timestamp(embedded)
                level = _level(
                    embedded,
                    timestamped=timestamp is not None,
                    dss=dss,
                    document_timestamp_revisions=stamp_revisions,
                    roots=roots,
                )
                item = await _validate_signature(
                    embedded,
                    level=level,
                    timestamp=timestamp,
                    roots=roots,
                    ts_roots=ts_roots,
                    caller=caller,
                    dss=dss,
                    timing=timing,
                    allow_fetching=allow_fetching,
                )
        except Exception as exc:
            # Whatever pyHanko trips over in one signature (a malformed CMS, an unknown
            # algorithm) is that signature's outcome, not the end of the report.
            logger.info("Validation of %s failed", name, exc_info=True)
            item = _broken(name, kind, f"The signature cannot be validated: {exc}")
            item = dataclasses.replace(
                item,
                assessment=dataclasses.replace(
                    item.assessment,
                    indication=INDETERMINATE,
                    sub_indication=AdESIndeterminate.GENERIC.standard_name,
                    explanation=EXPLANATIONS["generic"],
                    explanation_id="generic",
                ),
            )
        (stamps if is_stamp else signatures).append((embedded.signed_revision, item))
    order = lambda pair: pair[0]  # noqa: E731 - signing order is revision order
    return [i for _r, i in sorted(signatures, key=order)], [i for _r, i in sorted(stamps, key=order)]


def assess_pdf(
    source: BinaryIO | bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    timestamp_trust_roots: Sequence[x509.Certificate] = (),
    validation_time: dt.datetime | None = None,
    allow_fetching: bool = False,
    crls: Sequence[bytes] = (),
    ocsp_responses: Sequence[bytes] = (),
    max_size: int = DEFAULT_MAX_SIZE,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
) -> AssessmentReport:
    """Validate every signature and document timestamp of a PDF per ETSI EN 319 102-1.

    Example::

        report = assess_pdf(data, trust_roots=[pki.root_certificate],
                            crls=[pki.issuing_crl(), pki.root_crl()])
        for s in report.signatures:
            print(s.signer_name, s.level, s.indication, s.sub_indication, s.explanation)
        Path("rapport.xml").write_bytes(report.etsi_xml)

    :param source: the PDF, as bytes or a seekable binary file object (it is read, never kept).
    :param trust_roots: the certificates trusted as anchors, normally ``[pki.root_certificate]``.
    :param timestamp_trust_roots: anchors trusted besides those for timestamps only (signature
        and document timestamps): an external TSA's root.
    :param validation_time: the moment to validate for (timezone-aware); defaults to now.
    :param allow_fetching: let pyHanko fetch revocation data named in certificates (OCSP,
        CRL addresses) for the current-time checks; off by default: only the DSS and
        ``crls``/``ocsp_responses`` count.
    :param crls: DER CRLs known to the caller, e.g. the site CA's current ones.
    :param ocsp_responses: DER OCSP responses known to the caller.
    :param max_size: the largest file accepted, in bytes (checked before it is read).
    :param max_signatures: the most signature fields accepted.
    :returns: one :class:`SignatureAssessment` per signature and per document timestamp, and
        the ETSI TS 119 102-2 XML report. A PDF without signatures gives a report without
        any (``summary`` says so, ``etsi_xml`` is empty).
    :raises DocumentTooLarge: when the file is bigger than ``max_size``.
    :raises NotAPdf: when the file is empty or does not start like a PDF.
    :raises EncryptedPdf: when the PDF is encrypted.
    :raises CorruptPdf: when the PDF cannot be parsed.
    :raises InvalidDocument: when the PDF has more than ``max_signatures`` signatures.
    """
    if validation_time is not None and validation_time.utcoffset() is None:
        raise ValueError("validation_time must be timezone-aware")
    reader, sha256, size = _open(source, max_size=max_size)
    fields = _signature_fields(reader, max_signatures=max_signatures)
    moment = validation_time or dt.datetime.now(dt.UTC)
    timing = ValidationTimingInfo(
        validation_time=moment,
        best_signature_time=moment,
        point_in_time_validation=validation_time is not None,
    )
    roots = [_der(root) for root in trust_roots]
    ts_roots = [_der(root) for root in timestamp_trust_roots]
    caller = _revocation_from_caller(crls, ocsp_responses)
    signatures, stamps = asyncio.run(
        _assess(
            reader,
            fields,
            roots=roots,
            ts_roots=ts_roots,
            caller=caller,
            timing=timing,
            allow_fetching=allow_fetching,
        )
    )
    return AssessmentReport(
        signatures=tuple(s.assessment for s in signatures),
        document_timestamps=tuple(s.assessment for s in stamps),
        validation_time=moment,
        document_sha256=sha256,
        document_size=size,
        etsi_xml=_xml_report(signatures, stamps, validation_time=moment),
    )

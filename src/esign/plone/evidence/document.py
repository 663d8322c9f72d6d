"""The evidence document ("Signeringsbevis"): what happened to a case, sealed by the site.

When the last signer has signed, the site writes a short PDF that states which
document was signed (with SHA-256 of the original and of the signed file), who
signed it, how each person was identified and with which certificate, and the
head hash of the case's audit trail. The site seals it with a certificate from
its own CA, so the summary itself cannot be altered unnoticed.

The evidence holds no full personnummer: signers are shown as in every listing
(``19121212-****``), also inside the certificate subjects it quotes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import io
import re
import zoneinfo
from collections.abc import Callable, Iterable
from pathlib import Path
from xml.sax.saxutils import escape

from plone import api
from plone.namedfile.file import NamedBlobFile

from esign.plone import audit, logger
from esign.plone.content.identifiers import mask_personal_number
from esign.plone.errors import WrongState
from esign.plone.signing import seal_pdf
from esign.plone.sitepki import site_pki

__all__ = [
    "ATTRIBUTE",
    "METHOD_LABELS",
    "CaseEvidence",
    "SignerEvidence",
    "collect_evidence",
    "create_evidence",
    "evidence_filename",
    "render_evidence",
]

#: Where the sealed evidence (a NamedBlobFile) is kept on the case.
ATTRIBUTE = "evidence_document"

METHOD_LABELS = {
    "bankid": "BankID",
    "siths": "SITHS eTjänstekort",
    "direct": "Identitet överlämnad av betrodd tjänst",
}

#: Signing times are stated in Swedish time, with the zone, as a reader expects.
ZONE = zoneinfo.ZoneInfo("Europe/Stockholm")

_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class SignerEvidence:
    """One signer as the evidence states them (no full personnummer)."""

    #: 1, 2, … in the case's signer list.
    position: int
    name: str
    #: Masked personnummer (``19121212-****``) or HSA-id.
    identifier: str
    #: "BankID", "SITHS eTjänstekort", …
    method: str
    identity_provider: str
    level_of_assurance: str
    authenticated_at: dt.datetime | None
    signed_at: dt.datetime | None
    certificate_serial: str
    #: RFC 4514 subject with the personnummer masked.
    certificate_subject: str
    #: The BankID order behind the signature, when it was BankID.
    order_ref: str


@dataclasses.dataclass(frozen=True)
class CaseEvidence:
    """Everything the evidence document states, ready to print."""

    organisation: str
    title: str
    case_number: str
    information_class: str
    document_filename: str
    original_sha256: str
    signed_filename: str
    signed_sha256: str
    signers: tuple[SignerEvidence, ...]
    completed_at: dt.datetime | None
    audit_count: int
    audit_head: str
    #: Problems :func:`audit.verify` found; empty when the chain is unbroken.
    audit_problems: tuple[str, ...]
    generated_at: dt.datetime


def evidence_filename(case) -> str:
    """``<stem>-signeringsbevis.pdf`` after the case's document ``<stem>.pdf``."""
    original = getattr(case.document, "filename", None) or f"{case.getId()}.pdf"
    stem = original[:-4] if original.lower().endswith(".pdf") else original
    return f"{stem}-signeringsbevis.pdf"


def _sha256(named_file) -> str:
    digest = hashlib.sha256()
    with named_file.open() as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _redactor(personal_numbers: Iterable[str]) -> Callable[[str], str]:
    """Replace every signer's personnummer, in any usual spelling, by its masked form."""
    spellings: list[tuple[str, str]] = []
    for number in personal_numbers:
        masked = mask_personal_number(number)
        spellings += [(number, masked), (f"{number[:8]}-{number[8:]}", masked), (number[2:], masked[2:])]
    # Longest first, so the 10-digit spelling never eats into a 12-digit one.
    spellings.sort(key=lambda pair: len(pair[0]), reverse=True)

    def redact(text: str | None) -> str:
        text = text or ""
        for spelling, masked in spellings:
            text = text.replace(spelling, masked)
        return text

    return redact


# cryptography spells these by OID in RFC 4514 strings; a reader knows them by name.
_SUBJECT_NAMES = {"2.5.4.5": "serialNumber", "2.5.4.4": "SN", "2.5.4.42": "GN"}


def _readable_subject(subject: str) -> str:
    """``CN=A B, SN=B, GN=A, serialNumber=…``: named attributes, a space to wrap at."""
    parts = []
    for part in re.split(r"(?<!\\),", subject):
        attribute, _, value = part.partition("=")
        parts.append(f"{_SUBJECT_NAMES.get(attribute, attribute)}={value}")
    return ", ".join(parts)


def _parse_time(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _organisation() -> str:
    name = api.portal.get_registry_record("esign.organisation_name", default="") or ""
    return name.strip() or api.portal.get().Title() or "E-underskrift"


def collect_evidence(case, *, now: dt.datetime | None = None) -> CaseEvidence:
    """Gather what the evidence states about a case whose signers have all signed.

    :param case: the signing case.
    :param now: the moment the evidence is made; defaults to the current time.
    :returns: the facts, with every signer's personnummer masked wherever it would appear.
    :raises WrongState: when the case has no signed document or a signer has not signed.
    """
    if case.signed_document is None or not case.esign_all_signed():
        raise WrongState("Signeringsbevis skapas först när alla har undertecknat.")
    records = list(case.signer_records)
    redact = _redactor(r.personal_number for r in records if r.personal_number)
    signers = []
    for record in records:
        auth = dict(record.authentication or {})
        evidence = dict(getattr(record, "evidence", None) or {})
        method = auth.get("method") or evidence.get("method") or ""
        signers.append(
            SignerEvidence(
                position=record.position,
                name=redact(record.name),
                identifier=mask_personal_number(record.personal_number) or record.hsa_id or "",
                method=METHOD_LABELS.get(method, method),
                identity_provider=redact(auth.get("identity_provider")),
                level_of_assurance=redact(auth.get("level_of_assurance")),
                authenticated_at=_parse_time(auth.get("authenticated_at")),
                signed_at=record.signed_at,
                certificate_serial=record.certificate_serial,
                certificate_subject=_readable_subject(redact(record.certificate_subject)),
                order_ref=redact(evidence.get("order_ref")) if method == "bankid" else "",
            )
        )
    trail = audit.entries(case)
    completed = next((e for e in reversed(trail) if e.event == "completed"), None)
    verification = audit.verify(case)
    return CaseEvidence(
        organisation=_organisation(),
        title=redact(case.Title()),
        case_number=redact(getattr(case, "case_number", None)),
        information_class=getattr(case, "information_class", None) or "",
        document_filename=redact(case.document.filename),
        original_sha256=_sha256(case.document),
        signed_filename=redact(case.signed_document.filename),
        # Read again: after the last signature came the DSS and the document timestamp (B-LTA).
        signed_sha256=_sha256(case.signed_document) or _sha256(case.signed_document),
        signers=tuple(signers),
        completed_at=completed.timestamp if completed else None,
        audit_count=verification.count,
        audit_head=verification.head,
        audit_problems=verification.problems,
        generated_at=now or dt.datetime.now(dt.UTC),
    )


# -- the PDF -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Fonts:
    regular: str
    bold: str
    mono: str
    #: The PDF base-14 fonts cover Windows-1252 only; anything else must be replaced.
    latin1_only: bool


@functools.cache
def _fonts() -> _Fonts:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    files = {"EsignSans": "DejaVuSans.ttf", "EsignSans-Bold": "DejaVuSans-Bold.ttf"}
    files["EsignMono"] = "DejaVuSansMono.ttf"
    if all((_FONT_DIR / name).is_file() for name in files.values()):
        try:
            for font_name, file_name in files.items():
                pdfmetrics.registerFont(TTFont(font_name, str(_FONT_DIR / file_name)))
            return _Fonts("EsignSans", "EsignSans-Bold", "EsignMono", latin1_only=False)
        except Exception:  # a broken font file: fall back to the built-in fonts
            logger.warning("DejaVu fonts in %s cannot be used; evidence uses Helvetica", _FONT_DIR)
    return _Fonts("Helvetica", "Helvetica-Bold", "Courier", latin1_only=True)


def _when(moment: dt.datetime | None) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S %Z")


def render_evidence(evidence: CaseEvidence) -> bytes:
    """Lay out the evidence as an A4 PDF in Swedish (not yet sealed).

    :param evidence: the facts from :func:`collect_evidence`.
    :returns: the PDF bytes.
    """
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    fonts = _fonts()

    def clean(text: str) -> str:
        if fonts.latin1_only:
            text = text.encode("cp1252", "replace").decode("cp1252")
        return escape(text)

    body = ParagraphStyle("body", fontName=fonts.regular, fontSize=9, leading=12)
    label = ParagraphStyle("label", parent=body, fontName=fonts.bold)
    mono = ParagraphStyle("mono", parent=body, fontName=fonts.mono, fontSize=8, leading=11)
    title = ParagraphStyle("title", parent=body, fontName=fonts.bold, fontSize=20, leading=26, spaceAfter=4)
    heading = ParagraphStyle(
        "heading", parent=body, fontName=fonts.bold, fontSize=12, leading=16, spaceBefore=10, spaceAfter=4
    )
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#444444"))

    width = A4[0] - 40 * mm
    label_width = 55 * mm

    def facts(rows: list[tuple[str, str, bool]]) -> Table:
        table = Table(
            [
                [Paragraph(clean(name), label), Paragraph(clean(value or "–"), mono if is_code else body)]
                for name, value, is_code in rows
            ],
            colWidths=[label_width, width - label_width],
        )
        table.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
                    ("LEFTPADDING", (0, 0), (-1, -1), 2),
                    ("TOPPADDING", (0, 0), (-1, -1), 3),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                ]
            )
        )
        return table

    story: list = [
        Paragraph("Signeringsbevis", title),
        Paragraph(
            clean(
                f"Detta bevis sammanfattar den elektroniska underskriften av dokumentet nedan. "
                f"Det är utfärdat och elektroniskt stämplat (sigill) av {evidence.organisation}."
            ),
            body,
        ),
        Paragraph("Ärende", heading),
        facts(
            [
                ("Ärende", evidence.title, False),
                ("Diarienummer", evidence.case_number, False),
                ("Informationsklass", evidence.information_class, False),
                ("Färdigställt", _when(evidence.completed_at), False),
            ]
        ),
        Paragraph("Dokument", heading),
        facts(
            [
                ("Originaldokument", evidence.document_filename, False),
                ("SHA-256 (original)", evidence.original_sha256, True),
                ("Undertecknat dokument", evidence.signed_filename, False),
                ("SHA-256 (undertecknat)", evidence.signed_sha256, True),
            ]
        ),
        Paragraph("Undertecknare", heading),
    ]
    for signer in evidence.signers:
        rows = [
            ("Personnummer / HSA-id", signer.identifier, False),
            ("Metod", signer.method, False),
            ("Identitetsutfärdare", signer.identity_provider, False),
            ("Tillitsnivå", signer.level_of_assurance, False),
            ("Identifierad", _when(signer.authenticated_at), False),
            ("Undertecknat", _when(signer.signed_at), False),
            ("Certifikatets serienummer", signer.certificate_serial, True),
            ("Certifikatets innehavare", signer.certificate_subject, False),
        ]
        if signer.order_ref:
            rows.append(("BankID orderRef", signer.order_ref, True))
        story.append(
            KeepTogether(
                [Paragraph(clean(f"{signer.position}. {signer.name}"), label), facts(rows), Spacer(1, 6)]
            )
        )
    chain = "Obruten" if not evidence.audit_problems else "Bruten: " + "; ".join(evidence.audit_problems)
    story += [
        Paragraph("Händelselogg", heading),
        facts(
            [
                ("Antal poster", str(evidence.audit_count), False),
                ("Kontrollsumma (SHA-256)", evidence.audit_head, True),
                ("Kedjan", chain, False),
            ]
        ),
        Spacer(1, 10),
        Paragraph(
            clean(
                f"Skapat {_when(evidence.generated_at)}. Personnummer visas maskerade. "
                f"Bevisets äkthet kontrolleras med rotcertifikatet för {evidence.organisation}."
            ),
            small,
        ),
    ]
    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"Signeringsbevis: {evidence.title}",
        author=evidence.organisation,
        subject="Signeringsbevis",
        creator="esign.plone",
        lang="sv",
    ).build(story)
    return buffer.getvalue()


def create_evidence(case) -> NamedBlobFile:
    """Make, seal and store the case's evidence document, once.

    Called when the case completes; a second call returns the stored evidence
    unchanged, since the evidence speaks of the moment of completion.

    :param case: a signing case whose signers have all signed.
    :returns: the sealed PDF, also kept as ``case.evidence_document``.
    :raises WrongState: when not every signer has signed yet.
    :raises SigningError, PKIError: when the site cannot seal the evidence.
    """
    existing = getattr(case, ATTRIBUTE, None)
    if existing is not None:
        return existing
    now = dt.datetime.now(dt.UTC)
    evidence = collect_evidence(case, now=now)
    output = io.BytesIO()
    key_algorithm = api.portal.get_registry_record("esign.key_algorithm", default="ec-p256")
    result = seal_pdf(
        render_evidence(evidence),
        output,
        pki=site_pki(),
        organisation=evidence.organisation,
        now=now,
        key_algorithm=key_algorithm,
    )
    sealed = NamedBlobFile(
        data=output.getvalue(), contentType="application/pdf", filename=evidence_filename(case)
    )
    setattr(case, ATTRIBUTE, sealed)
    logger.info("Evidence for case %s sealed (certificate %s)", case.UID(), result.certificate_serial)
    return sealed

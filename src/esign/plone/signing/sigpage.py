"""The signature page ("Underskriftssida") and the visible stamps signers leave on it.

When a case is sent, before anyone signs, :func:`add_signature_page` appends an A4
page naming the case, the document and the SHA-256 of the original, with one empty
signature field per signer. Each field carries a FieldMDP lock that, once the field
is signed, freezes every form field except the other (still empty) signature
fields of the page: later signers can fill their own field and nothing else.

A signer then signs into their own field (:func:`.pades.sign_pdf` with the field's
name) and pyHanko draws a stamp in it from :func:`stamp_style` and
:func:`stamp_text_params`: name, date and time in Swedish time, case number and
how the person was identified. Text is set in an embedded subset of an OpenType
or TrueType font (DejaVu Sans by default) so å, ä and ö look and copy right.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import io
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from fontTools import subset
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.font.api import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter, PageObject
from pyhanko.sign import fields
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    FormUpdatingRule,
    GenericFieldModificationRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
)
from pyhanko.stamp import TextStamp, TextStampStyle

from esign.plone.errors import SigningError

__all__ = [
    "DEFAULT_FONT_PATH",
    "DIFF_POLICY",
    "FONT_ENVIRONMENT_VARIABLE",
    "PageSigner",
    "SignaturePage",
    "StampText",
    "add_signature_page",
    "field_names",
    "resolve_font_path",
    "signature_page_bytes",
    "stamp_style",
    "stamp_text_params",
]

#: Debian's ``fonts-dejavu-core``; covers Latin (å, ä, ö, ø, é …), Greek and Cyrillic.
DEFAULT_FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#: Environment variable naming another OpenType/TrueType font for pages and stamps.
FONT_ENVIRONMENT_VARIABLE = "ESIGN_STAMP_FONT"

#: Dates and times on stamps are Swedish local time, whatever the server's zone.
STAMP_TIME_ZONE = ZoneInfo("Europe/Stockholm")
STAMP_TIME_FORMAT = "%Y-%m-%d %H:%M"

_TEXTS: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "heading": "Underskriftssida",
        "continued": "Underskriftssida (forts.)",
        "case": "Ärende: {}",
        "document": "Dokument: {}",
        "sha256": "SHA-256 för originalet: {}",
        "explanation": (
            "Dokumentet ovan undertecknas elektroniskt av personerna nedan. Varje underskrift är en "
            "avancerad elektronisk underskrift (PAdES) i den här PDF-filen, gjord med ett certifikat "
            "som utfärdats för just den underskriften. Den låser dokumentet och de tidigare "
            "underskrifterna: ändras något efteråt visar PDF-läsaren att underskriften inte längre "
            "gäller. Kontrollsumman ovan identifierar originalet."
        ),
        "signer": "Underskrift {}: {}",
        "page": "Sida {} av {}",
        "stamp_case": "Ärende {}",
        "bankid": "Signerat med BankID",
        "siths": "Signerat med SITHS",
        "other": "Signerat elektroniskt",
    },
    "en": {
        "heading": "Signature page",
        "continued": "Signature page (continued)",
        "case": "Case: {}",
        "document": "Document: {}",
        "sha256": "SHA-256 of the original: {}",
        "explanation": (
            "The document above is signed electronically by the persons below. Each signature is an "
            "advanced electronic signature (PAdES) in this PDF file, made with a certificate issued "
            "for that signature alone. It seals the document and the earlier signatures: if anything "
            "is changed afterwards, the PDF reader shows that the signature no longer holds. The "
            "checksum above identifies the original."
        ),
        "signer": "Signature {}: {}",
        "page": "Page {} of {}",
        "stamp_case": "Case {}",
        "bankid": "Signed with BankID",
        "siths": "Signed with SITHS",
        "other": "Signed electronically",
    },
}

# Field names become PDF text strings and pyHanko reads "." as a level in the field
# hierarchy; a plain ASCII name is found the same way by every viewer and library.
_FIELD_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}\Z")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}\Z")

# A4 in points, with 2 cm margins.
_PAGE_WIDTH = 595.28
_PAGE_HEIGHT = 841.89
_MARGIN = 56.7
_CONTENT_WIDTH = _PAGE_WIDTH - 2 * _MARGIN
# Two columns of signature boxes; a box fits the four stamp lines at 10 pt with room.
_GUTTER = 18.0
_BOX_WIDTH = (_CONTENT_WIDTH - _GUTTER) / 2
_BOX_HEIGHT = 72.0
_LABEL_SIZE = 10
_LABEL_GAP = 5.0
_ROW_GAP = 18.0
_ROW_HEIGHT = _LABEL_SIZE + _LABEL_GAP + _BOX_HEIGHT + _ROW_GAP
_INVISIBLE_ROW_HEIGHT = 18.0
# A title longer than this many lines is cut off: the signers must still fit on the page.
_TITLE_LINES = 4
# Room kept free at the bottom for the page number.
_FOOTER_HEIGHT = 24.0

# The scripts a name or title on a Swedish public-sector document is set in. The font is cut
# down to these once per process: pyHanko reads and subsets the font again for every page and
# every stamp, and a font of ~1,500 glyphs subsets in a third of the time DejaVu Sans' 6,000 take.
# Text with a character outside them is set in the whole font.
_COMMON_RANGES = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x036F),  # Latin-1, Latin Extended-A/B, IPA, modifiers, combining diacritics
    (0x0370, 0x052F),  # Greek, Cyrillic
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese and others)
    (0x2000, 0x206F),  # General punctuation: dashes, quotes, ellipsis
    (0x20A0, 0x20CF),  # Currency
    (0x2100, 0x214F),  # Letterlike symbols
)
# What nearly every stamp and page needs (Swedish, the other Nordic and West European
# languages): ~500 glyphs, read and subset in a good third of the time of the common cut.
_LATIN_RANGES = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x017F),  # Latin-1, Latin Extended-A
    (0x2000, 0x206F),  # General punctuation
    (0x20A0, 0x20CF),  # Currency
)
#: The cuts tried in turn, smallest first; after them the whole font.
_CUTS = (_LATIN_RANGES, _COMMON_RANGES)


#: pyHanko's difference analysis for documents with field locks; validators pass it as
#: ``validate_pdf_signature(..., diff_policy=DIFF_POLICY)``. pyHanko 0.38's default policy
#: counts every text field's unchanged appearance stream as "updated" in each later
#: revision (``_allow_in_place_appearance_update`` compares the stream's last change with
#: ``==`` where ``<=`` is meant), so with a FieldMDP lock over a form's text fields every
#: signature but the last reads as "changed after signing". Not accepting appearance
#: streams rewritten in place avoids that path; new appearance streams, the way pyHanko and
#: viewers fill fields, are judged as before, and a change to a locked field is still caught.
DIFF_POLICY = StandardDiffPolicy(
    global_rules=DEFAULT_DIFF_POLICY.global_rules,
    form_rule=FormUpdatingRule(
        field_rules=[
            SigFieldCreationRule(),
            SigFieldModificationRule(allow_in_place_appearance_stream_changes=False),
            GenericFieldModificationRule(allow_in_place_appearance_stream_changes=False),
        ]
    ),
)


def _texts(language: str) -> Mapping[str, str]:
    return _TEXTS.get(language, _TEXTS["sv"])


@dataclass(frozen=True)
class PageSigner:
    """One signer on the signature page."""

    #: Name of the signature field the signer signs into, e.g. ``Underskrift1`` (ASCII).
    field_name: str
    #: The signer's name as shown beside the field, e.g. "Tolvan Tolvansson".
    name: str


@dataclass(frozen=True)
class SignaturePage:
    """What the signature page says; signers in signing order."""

    #: The case ("ärende") number, e.g. "2026/123".
    case_number: str
    #: Title of the document being signed.
    title: str
    #: SHA-256 (hex) of the original document, before the signature page was added.
    document_sha256: str
    signers: tuple[PageSigner, ...]
    #: Organisation shown at the top of the page; nothing when empty.
    organisation: str = ""
    #: "sv" or "en"; any other value gives Swedish.
    language: str = "sv"
    #: Invisible signatures: the page lists the signers but their fields have no box
    #: and the signatures no stamp.
    invisible_signatures: bool = False


@dataclass(frozen=True)
class StampText:
    """What a visible signature's stamp says."""

    signer_name: str
    #: When the person signed (timezone-aware); shown in Swedish local time.
    signed_at: dt.datetime
    case_number: str
    #: How the person was identified: "bankid", "siths" or anything else.
    method: str
    #: "sv" or "en"; any other value gives Swedish.
    language: str = "sv"


def field_names(n: int, *, taken: Collection[str] = ()) -> tuple[str, ...]:
    """Stable, ASCII names for ``n`` signature fields: ``Underskrift1``, ``Underskrift2``, …

    :param n: how many names.
    :param taken: field names the document already has; numbers in use are skipped.
    :returns: ``n`` names in signing order.
    """
    names: list[str] = []
    number = 0
    while len(names) < n:
        number += 1
        name = f"Underskrift{number}"
        if name not in taken:
            names.append(name)
    return tuple(names)


# -- fonts ----------------------------------------------------------------------------


def resolve_font_path(font_path: str | None = None) -> str:
    """The font file pages and stamps are set in.

    :param font_path: an explicit path; wins over the environment.
    :returns: ``font_path``, else ``$ESIGN_STAMP_FONT``, else :data:`DEFAULT_FONT_PATH`.
    :raises SigningError: when that file does not exist.
    """
    path = font_path or os.environ.get(FONT_ENVIRONMENT_VARIABLE) or DEFAULT_FONT_PATH
    if not os.path.isfile(path):
        raise SigningError(
            f"The font for signature pages and stamps, {path}, does not exist. Install the Debian "
            f"package fonts-dejavu-core or set {FONT_ENVIRONMENT_VARIABLE} to an OpenType/TrueType font."
        )
    return path


@dataclass(frozen=True)
class _FontProgram:
    """A font file prepared for pyHanko: 1000 units per em, no hinting, all or common glyphs."""

    data: bytes
    #: Code points this program has glyphs for.
    coverage: frozenset[int]
    #: Code points the font file has glyphs for.
    file_coverage: frozenset[int]


@functools.lru_cache(maxsize=12)
def _prepare_font(
    path: str, _mtime_ns: int, _size: int, *, ranges: tuple[tuple[int, int], ...] | None
) -> _FontProgram:
    from fontTools import subset, ttLib
    from fontTools.ttLib.scaleUpem import scale_upem

    try:
        font = ttLib.TTFont(path)
        file_coverage = frozenset(font.getBestCmap() or ())
        if ranges is not None:
            wanted = [c for c in file_coverage if any(lo <= c <= hi for lo, hi in ranges)]
        else:
            wanted = list(file_coverage)
        options = subset.Options()
        options.hinting = False  # PDF viewers do their own; hinting is a third of DejaVu's bytes
        options.layout_features = ["*"]  # keep kerning and marks for HarfBuzz
        options.name_IDs = ["*"]  # pyHanko takes the PostScript name from the name table
        options.notdef_outline = True
        options.drop_tables += ["FFTM"]  # FontForge's timestamp; fontTools warns on every subset
        subsetter = subset.Subsetter(options=options)
        subsetter.populate(unicodes=wanted)
        subsetter.subset(font)
        # pyHanko 0.38 writes glyph widths (/W) and TJ kerning in font units, which PDF reads
        # as thousandths of an em: a 2048-unit font such as DejaVu Sans comes out with every
        # letter twice as far apart. Scaling the font to 1000 units makes the two agree.
        if font["head"].unitsPerEm != 1000:
            scale_upem(font, 1000)
        buffer = io.BytesIO()
        font.save(buffer)
    except Exception as exc:
        raise SigningError(
            f"The font {path} is not an OpenType/TrueType font that can be embedded: {exc}"
        ) from exc
    return _FontProgram(data=buffer.getvalue(), coverage=frozenset(wanted), file_coverage=file_coverage)


def _font_data(path: str, text: str) -> bytes:
    """The prepared font for drawing ``text``: the smallest cut that has every glyph it needs."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise SigningError(f"The font {path} cannot be read: {exc}") from exc
    # Keyed by modification time and size so a replaced font file is read again.
    key = (path, stat.st_mtime_ns, stat.st_size)
    characters = {ord(char) for char in text}
    for ranges in _CUTS:
        cut = _prepare_font(*key, ranges=ranges)
        if (characters & cut.file_coverage) <= cut.coverage:
            return cut.data
    return _prepare_font(*key, ranges=None).data


#: The OpenType tables HarfBuzz shapes with and pyHanko leaves out of the embedded subset.
_LAYOUT_TABLES = ("GDEF", "GSUB", "GPOS")


class _ShapedGlyphAccumulator(GlyphAccumulator):
    """pyHanko's glyph accumulator, subsetting without reading the layout tables first.

    The glyphs in the content stream are already shaped (HarfBuzz reads GSUB and GPOS from
    its own copy of the font), so pyHanko embeds the subset without GDEF, GSUB and GPOS. But
    fontTools (4.68) decompiles those tables in full before it drops them: for every page and
    every stamp that took longer than the rest of the signature. Removed unread beforehand,
    the embedded font program comes out the same.
    """

    def _extract_subset(self, options: subset.Options | None = None) -> None:
        if options is None:
            # pyHanko's own choice: no layout closure, no layout tables in the subset.
            options = subset.Options(layout_closure=False)
            options.drop_tables += list(_LAYOUT_TABLES)
        if not options.layout_closure and set(_LAYOUT_TABLES) <= set(options.drop_tables):
            for tag in _LAYOUT_TABLES:
                if tag in self.tt:
                    del self.tt[tag]
        super()._extract_subset(options)


@dataclass(frozen=True)
class _EmbeddedFont(FontEngineFactory):
    """pyHanko font factory over the cached font program (a subset is embedded per use)."""

    path: str
    font_size: int = 10
    #: Every character the font will have to draw (picks the cut-down or the whole font).
    text: str = ""

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: Any = None) -> GlyphAccumulator:
        data = _font_data(self.path, self.text)
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return _ShapedGlyphAccumulator(writer, io.BytesIO(data), self.font_size, obj_stream=obj_stream)


# -- stamps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _StampStyle(TextStampStyle):
    """A text stamp whose font is picked for the text it is about to draw."""

    font_path: str = DEFAULT_FONT_PATH

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict
    ) -> TextStamp:
        text = " ".join(str(value) for value in text_params.values())
        font = _EmbeddedFont(self.font_path, font_size=self.text_box_style.font_size, text=text)
        style = dataclasses.replace(self, text_box_style=dataclasses.replace(self.text_box_style, font=font))
        return TextStamp(writer=writer, style=style, box=box, text_params=text_params)


@functools.lru_cache(maxsize=4)
def _stamp_style(path: str) -> TextStampStyle:
    _font_data(path, "")  # a broken font fails here, not halfway through signing
    margins = layout.Margins(left=8, right=8, top=6, bottom=6)
    return _StampStyle(
        font_path=path,
        stamp_text="%(stamp_text)s",
        border_width=1,
        border_color=(0.2, 0.3, 0.45),
        text_box_style=TextBoxStyle(
            font=_EmbeddedFont(path, font_size=10),
            font_size=10,
            leading=13,
            box_layout_rule=layout.SimpleBoxLayoutRule(
                x_align=layout.AxisAlignment.ALIGN_MIN,
                y_align=layout.AxisAlignment.ALIGN_MID,
                margins=layout.Margins.uniform(0),
            ),
        ),
        # Left-aligned, vertically centred; a long name shrinks the text rather than overflow.
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=margins,
        ),
    )


def stamp_style(font_path: str | None = None) -> TextStampStyle:
    """The look of a visible signature: framed text in an embedded font, no QR code.

    Pass it to pyHanko's ``PdfSigner(..., stamp_style=stamp_style())`` and fill it with
    ``sign_pdf(..., appearance_text_params=stamp_text_params(stamp))``.

    :param font_path: an OpenType/TrueType font; default ``$ESIGN_STAMP_FONT`` or DejaVu Sans.
    :returns: a pyHanko text stamp style (shared, immutable).
    :raises SigningError: when the font file is missing or unusable.
    """
    return _stamp_style(resolve_font_path(font_path))


def stamp_text_params(stamp: StampText) -> dict[str, str]:
    """The text pyHanko fills into a :func:`stamp_style` stamp.

    Example: ``Tolvan Tolvansson`` / ``2026-12-04 14:05`` / ``Ärende 2026/123`` /
    ``Signerat med BankID``.

    :param stamp: who signed, when, in which case, identified how.
    :returns: ``stamp_text`` (the lines of the stamp) and each part on its own
        (``signer_name``, ``signed_at``, ``case_number``, ``method``).
    :raises SigningError: when ``signed_at`` has no time zone.
    """
    if stamp.signed_at.tzinfo is None or stamp.signed_at.utcoffset() is None:
        raise SigningError("The signing time of a stamp must be timezone-aware.")
    texts = _texts(stamp.language)
    signed_at = stamp.signed_at.astimezone(STAMP_TIME_ZONE).strftime(STAMP_TIME_FORMAT)
    kind = stamp.method.strip().lower()
    method = texts[kind] if kind in ("bankid", "siths") else texts["other"]
    lines = [_one_line(stamp.signer_name), signed_at]
    if stamp.case_number:
        lines.append(texts["stamp_case"].format(_one_line(stamp.case_number)))
    lines.append(method)
    return {
        "stamp_text": "\n".join(lines),
        "signer_name": _one_line(stamp.signer_name),
        "signed_at": signed_at,
        "case_number": _one_line(stamp.case_number),
        "method": method,
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- the signature page ----------------------------------------------------------------


class _PageCanvas:
    """Collects the drawing operators of one page, text set with one font engine."""

    def __init__(self, engine: GlyphAccumulator, font_name: str = "/F1") -> None:
        self.engine = engine
        self.font_name = font_name
        self.ops: list[bytes] = []

    def width(self, text: str, size: float) -> float:
        return self.engine.shape(text, with_actual_text=False).x_advance * size

    def text(self, x: float, y: float, text: str, *, size: int, gray: float = 0.0) -> None:
        if not text:
            return
        # pyHanko converts glyph offsets (combining marks) into Td moves for the engine's size.
        self.engine.font_size = size
        shaped = self.engine.shape(text).graphics_ops
        self.ops.append(
            b"BT %g g %s %g Tf 1 0 0 1 %g %g Tm %s ET"
            % (gray, self.font_name.encode("ascii"), size, x, y, shaped)
        )

    def rectangle(self, x: float, y: float, width: float, height: float, *, gray: float = 0.6) -> None:
        self.ops.append(b"q %g G 0.75 w %g %g %g %g re S Q" % (gray, x, y, width, height))

    def rule(self, x: float, y: float, width: float, *, gray: float = 0.6) -> None:
        self.ops.append(b"q %g G 0.75 w %g %g m %g %g l S Q" % (gray, x, y, x + width, y))

    def content(self) -> bytes:
        return b"\n".join(self.ops)


def _wrap(canvas: _PageCanvas, text: str, size: float, width: float, *, max_lines: int = 0) -> list[str]:
    """Greedy word wrap; a word wider than a line (a checksum, a URL) is cut by characters.

    With ``max_lines``, what does not fit in that many lines is cut off with an ellipsis.
    """
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if canvas.width(candidate, size) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        while canvas.width(word, size) > width:
            cut = len(word) - 1
            while cut > 1 and canvas.width(word[:cut], size) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    if max_lines and len(lines) > max_lines:
        lines = [
            *lines[: max_lines - 1],
            _fit(canvas, lines[max_lines - 1] + " " + lines[max_lines], size, width),
        ]
        if not lines[-1].endswith("…"):
            lines[-1] = _fit(canvas, lines[-1] + "…", size, width)
    return lines or [""]


def _fit(canvas: _PageCanvas, text: str, size: float, width: float) -> str:
    """``text`` cut to ``width`` with an ellipsis if it does not fit."""
    if canvas.width(text, size) <= width:
        return text
    while text and canvas.width(text + "…", size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


@dataclass(frozen=True)
class _Slot:
    """Where one signer's field goes."""

    signer: PageSigner
    number: int
    page: int  # 0-based among the signature pages
    box: tuple[int, int, int, int] | None


def _draw_header(canvas: _PageCanvas, page: SignaturePage, *, first: bool) -> float:
    """Draw the page head; returns the y where the signer area starts."""
    texts = _texts(page.language)
    y = _PAGE_HEIGHT - _MARGIN
    if page.organisation:
        y -= 10
        canvas.text(
            _MARGIN, y, _fit(canvas, _one_line(page.organisation), 10, _CONTENT_WIDTH), size=10, gray=0.35
        )
        y -= 14
    y -= 20
    canvas.text(_MARGIN, y, texts["heading"] if first else texts["continued"], size=20)
    y -= 10
    canvas.rule(_MARGIN, y, _CONTENT_WIDTH)
    y -= 8
    lines = _wrap(canvas, texts["case"].format(_one_line(page.case_number)), 11, _CONTENT_WIDTH, max_lines=2)
    if first:
        title = texts["document"].format(_one_line(page.title))
        lines += _wrap(canvas, title, 11, _CONTENT_WIDTH, max_lines=_TITLE_LINES)
        lines += _wrap(canvas, texts["sha256"].format(page.document_sha256.lower()), 11, _CONTENT_WIDTH)
    for line in lines:
        y -= 15
        canvas.text(_MARGIN, y, line, size=11)
    if first:
        y -= 8
        for line in _wrap(canvas, texts["explanation"], 9, _CONTENT_WIDTH):
            y -= 13
            canvas.text(_MARGIN, y, line, size=9, gray=0.25)
    return y - 20


def _layout(
    page: SignaturePage, new_canvas: Callable[[], _PageCanvas]
) -> tuple[list[_PageCanvas], list[_Slot]]:
    """Place the signers row by row, two boxes a row, starting a new page when one is full."""
    texts = _texts(page.language)
    invisible = page.invisible_signatures
    row_height = _INVISIBLE_ROW_HEIGHT if invisible else _ROW_HEIGHT
    per_row = 1 if invisible else 2
    column_width = _CONTENT_WIDTH if invisible else _BOX_WIDTH
    pages: list[_PageCanvas] = []
    slots: list[_Slot] = []
    remaining = list(page.signers)
    while remaining:
        canvas = new_canvas()
        top = _draw_header(canvas, page, first=not pages)
        rows = int((top - _MARGIN - _FOOTER_HEIGHT) // row_height)
        if rows < 1:
            raise SigningError("The signature page has no room left for the signers; shorten the title.")
        for row in range(rows):
            for column in range(per_row):
                if not remaining:
                    break
                signer = remaining.pop(0)
                number = len(slots) + 1
                x = _MARGIN + column * (_BOX_WIDTH + _GUTTER)
                label_y = top - row * row_height - _LABEL_SIZE
                label = texts["signer"].format(number, _one_line(signer.name))
                canvas.text(x, label_y, _fit(canvas, label, _LABEL_SIZE, column_width), size=_LABEL_SIZE)
                box = None
                if not invisible:
                    # Whole points: pyHanko's field boxes are integers; the frame matches them.
                    left, bottom = round(x), round(label_y - _LABEL_GAP - _BOX_HEIGHT)
                    box = (left, bottom, left + round(_BOX_WIDTH), bottom + round(_BOX_HEIGHT))
                    canvas.rectangle(left, bottom, box[2] - left, box[3] - bottom)
                slots.append(_Slot(signer=signer, number=number, page=len(pages), box=box))
        pages.append(canvas)
    if len(pages) > 1:
        for index, canvas in enumerate(pages, start=1):
            footer = texts["page"].format(index, len(pages))
            canvas.text(_PAGE_WIDTH - _MARGIN - canvas.width(footer, 8), _MARGIN, footer, size=8, gray=0.35)
    return pages, slots


def _check(page: SignaturePage) -> None:
    if not page.signers:
        raise SigningError("A signature page needs at least one signer.")
    names = [signer.field_name for signer in page.signers]
    for name in names:
        if not _FIELD_NAME.match(name):
            raise SigningError(f"{name!r} is not a usable signature field name (ASCII letters and digits).")
    if len(set(names)) != len(names):
        raise SigningError("Every signer on a signature page needs a field of their own.")
    if not _SHA256.match(page.document_sha256):
        raise SigningError("The SHA-256 of the original must be 64 hexadecimal digits.")


def _page_text(page: SignaturePage) -> str:
    texts = _texts(page.language)
    parts: Iterable[str] = (
        *texts.values(),
        page.case_number,
        page.title,
        page.organisation,
        page.document_sha256,
        *(signer.name for signer in page.signers),
        "0123456789…",
    )
    return " ".join(parts)


def _field_names_in(writer: IncrementalPdfFileWriter) -> set[str]:
    """Fully qualified names of every form field the document already has."""
    try:
        top = writer.root["/AcroForm"]["/Fields"]
    except KeyError:
        return set()
    names: set[str] = set()
    seen: set[int] = set()
    stack = [(ref, "") for ref in top]
    while stack:
        ref, prefix = stack.pop()
        if ref.idnum in seen:  # a broken form may loop
            continue
        seen.add(ref.idnum)
        field = ref.get_object()
        partial = field.get("/T")
        if partial is None:
            continue  # a widget annotation, not a field
        name = f"{prefix}.{partial}" if prefix else str(partial)
        names.add(name)
        stack.extend((kid, name) for kid in field.get("/Kids", ()))
    return names


def _empty_signature_fields_in(writer: IncrementalPdfFileWriter) -> set[str]:
    return {name for name, _value, _ref in fields.enumerate_sig_fields(writer.prev, filled_status=False)}


def add_signature_page(
    source: BinaryIO | bytes,
    output: BinaryIO,
    *,
    page: SignaturePage,
    font_path: str | None = None,
) -> tuple[str, ...]:
    """Append the signature page(s) with one empty, locked signature field per signer.

    The page is added as an incremental update: the original bytes, and any
    signatures made elsewhere, stay as they were (but see the note on those below).
    Eight signers fit on the first page and ten on each further page
    ("Underskriftssida (forts.)"); pages are numbered when there is more than one.

    Each field ``F`` gets a FieldMDP lock (``/Exclude`` the page's other fields and
    any other empty signature field): after ``F`` is signed every form field but
    those is frozen, so later signers can sign their own field and change nothing
    else. Signers may sign in any order. Validate with :data:`DIFF_POLICY`.

    A signature made elsewhere stays intact and cryptographically valid (pdfsig:
    "Signature is Valid."), but pyHanko's difference analysis allows no new pages
    after a signature and reports it as changed afterwards; callers may prefer
    invisible signatures without a page for documents that arrive signed.

    :param source: the PDF, as bytes or a seekable binary file object.
    :param output: an empty binary file object the PDF with the page is written to.
    :param page: case number, title, SHA-256 of the original and the signers in order.
    :param font_path: OpenType/TrueType font; default ``$ESIGN_STAMP_FONT`` or DejaVu Sans.
    :returns: the signature field names, in signing order.
    :raises SigningError: when the font is missing, the page description is unusable,
        a field name is already taken, or the document cannot be updated.
    """
    _check(page)
    path = resolve_font_path(font_path)
    font = _EmbeddedFont(path, text=_page_text(page))
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        writer = IncrementalPdfFileWriter(stream, strict=False)
    except Exception as exc:
        raise SigningError(f"The document cannot be opened to add a signature page: {exc}") from exc
    if writer.security_handler is not None:
        raise SigningError("An encrypted document cannot get a signature page.")
    try:
        taken = _field_names_in(writer)
        other_empty = _empty_signature_fields_in(writer)
    except Exception as exc:
        raise SigningError(f"The document's form cannot be read: {exc}") from exc
    clash = sorted(taken & {signer.field_name for signer in page.signers})
    if clash:
        raise SigningError(f"The document already has a field named {clash[0]!r}.")

    try:
        engine = font.create_font_engine(writer)
        first_page = int(writer.root["/Pages"]["/Count"])
        pages, slots = _layout(page, lambda: _PageCanvas(engine))
        resources = generic.DictionaryObject(
            {
                generic.pdf_name("/Font"): generic.DictionaryObject(
                    {generic.pdf_name("/F1"): engine.as_resource()}
                )
            }
        )
        for canvas in pages:
            content = generic.StreamObject(stream_data=canvas.content())
            content.compress()
            writer.insert_page(
                PageObject(
                    contents=writer.add_object(content),
                    media_box=(0, 0, _PAGE_WIDTH, _PAGE_HEIGHT),
                    resources=resources,
                )
            )
        page_fields = [signer.field_name for signer in page.signers]
        texts = _texts(page.language)
        for slot in slots:
            unlocked = sorted((set(page_fields) | other_empty) - {slot.signer.field_name})
            fields.append_signature_field(
                writer,
                fields.SigFieldSpec(
                    slot.signer.field_name,
                    on_page=first_page + slot.page,
                    box=slot.box,
                    field_mdp_spec=fields.FieldMDPSpec(fields.FieldMDPAction.EXCLUDE, unlocked),
                    readable_field_name=texts["signer"].format(slot.number, _one_line(slot.signer.name)),
                ),
            )
        writer.write(output)
    except SigningError:
        raise
    except Exception as exc:
        raise SigningError(f"The signature page could not be added: {exc}") from exc
    return tuple(page_fields)


def signature_page_bytes(data: bytes, **kw: Any) -> tuple[bytes, tuple[str, ...]]:
    """:func:`add_signature_page` for a PDF held in memory; returns the PDF and the field names."""
    output = io.BytesIO()
    names = add_signature_page(data, output, **kw)
    return output.getvalue(), names


def carries_signatures(source: BinaryIO | bytes) -> bool:
    """Whether the document already has signed signature fields (made elsewhere).

    A signature page added after such a signature reads, to validators, as a change to
    the page tree after it; the add-on signs those documents without a page.

    :raises SigningError: when the document cannot be read.
    """
    from pyhanko.pdf_utils.reader import PdfFileReader

    from esign.plone.signing.documents import count_signatures

    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        return count_signatures(PdfFileReader(stream, strict=False)) > 0
    except Exception as exc:
        raise SigningError(f"The document cannot be read: {exc}") from exc

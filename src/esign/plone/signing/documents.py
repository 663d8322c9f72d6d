"""Checks an uploaded file before anyone is asked to sign it.

An upload is untrusted input: a PDF can be built to make a reader crash, hang or
run out of memory. :func:`inspect_pdf` bounds every step by the file's size and a
few fixed limits, and refuses what exceeds them with a message that says why:

* cross-reference data declaring more objects than the file could hold (a lenient
  reader would otherwise fill in millions of default entries);
* a compressed stream that inflates past :data:`MAX_STREAM_OUTPUT`, or far beyond
  its own size (a Flate bomb), counted while inflating, never held in memory;
* nesting too deep for the parser, cycles and lies in the page tree, more pages than
  ``max_pages``;
* anything the signature would later trip over: the upload rehearses the incremental
  update a signature makes (field, widget, form, metadata) without signing it, so a
  document that passes here can be signed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import io
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.filters import ASCII85Decode, ASCIIHexDecode
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfDecodeLimitError, read_non_whitespace
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.general import SigningError as PyHankoSigningError

from esign.plone.errors import (
    CorruptPdf,
    DocumentTooLarge,
    EmptyPdf,
    EncryptedPdf,
    ESignError,
    NotAPdf,
    PdfTooComplex,
)
from esign.plone.signing.validation import validate_pdf
from esign.plone.signing.values import PdfInfo

__all__ = [
    "MAX_OBJECTS",
    "MAX_PAGES",
    "MAX_STREAM_OUTPUT",
    "count_signatures",
    "inspect_pdf",
    "stream_size",
]

#: Most pages a document for signing may have.
MAX_PAGES = 10_000
#: Most objects a document may declare, whatever its size.
MAX_OBJECTS = 1_000_000
#: Most bytes one stream may inflate to (pyHanko's own default ceiling).
MAX_STREAM_OUTPUT = 256 * 1024 * 1024

# ISO 32000 lets a PDF header sit anywhere in the first 1024 bytes; readers accept that.
_HEADER_WINDOW = 1024
_CHUNK = 1024 * 1024
# A declared object needs a few bytes of file at least (a header in an object stream, a row in
# an xref stream); a file declaring more than one per four bytes is lying about its size.
_BYTES_PER_OBJECT = 4
_MIN_OBJECT_ALLOWANCE = 10_000
# Single-layer Deflate tops out just above 1000:1; more means stacked filters built to amplify.
# The ratio, its floor and the per-stream ceiling are pyHanko's DecodeLimits defaults, so what
# passes here also passes when pyHanko decodes it later; the document budget is tighter.
_MAX_RATIO = 1100
_RATIO_FLOOR = 1024 * 1024
_BUDGET_FLOOR = 256 * 1024 * 1024
_BUDGET_RATIO = 25
# Every stream is parsed to see whether it inflates too far; a document with 10 000 pages
# has a few streams per page. More are a file built to make the check itself slow.
_MAX_STREAMS = 50_000
# Page trees are balanced in practice (depth ~log n); pyHanko walks them recursively.
_MAX_TREE_DEPTH = 64
_RESERVED_HEX_DIGITS = 2 * 12 * 1024  # as pades.SIGNATURE_BYTES_RESERVED
# Copies of a document up to this size stay in memory; larger ones go to a temporary file.
_SPOOL = 8 * 1024 * 1024

# Where pyHanko looks for %%EOF (the last 1024 bytes), and enough before it for "startxref".
_EOF_WINDOW = 1024
_TAIL = _EOF_WINDOW + 1024
_STARTXREF_BEFORE_EOF = re.compile(rb"[\r\n]startxref[^\r\n]{0,256}[\r\n]+(?:[^\r\n]{0,256}[\r\n]+)?\Z")
_TOO_DEEP = "The PDF nests its objects too deeply to be read safely."
_DAMAGED = "The PDF file is damaged or incomplete and cannot be read."

# A name that may decode to /Size or /Index (names can hide letters as #xx escapes); the value
# after it (past whitespace and comments) is an integer or an array of integers.
_DECLARED_NAME = re.compile(rb"/(?:[SI]|#[0-9A-Fa-f]{2})[^\x00\t\n\x0c\r \[\]<>(){}/%]{0,24}")
_DECLARED_VALUE = re.compile(rb"\[[^\]]{0,512}\]|[+-]?\d+")
_SPACE = re.compile(rb"[\x00\t\n\x0c\r ]*+")
_EOL = re.compile(rb"[\r\n]")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_OBJ = re.compile(rb"obj(?![A-Za-z0-9])")
_HEADER_BEFORE = re.compile(rb"(?<![0-9])(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,5})[\x00\t\n\x0c\r ]+\Z")
# The first of these after an object header tells a stream from other objects ("endstream"
# first: the header was inside another stream's data).
_KEYWORD = re.compile(rb"endstream|stream[\r\n ]|endobj")
_FLATE = {"/FlateDecode", "/Fl"}
_SHRINKING = {
    "/ASCIIHexDecode": ASCIIHexDecode,
    "/AHx": ASCIIHexDecode,
    "/ASCII85Decode": ASCII85Decode,
    "/A85": ASCII85Decode,
}
# Past a Flate stage, the input of a hex/base-85 stage is held in memory; keep it small.
_MAX_INTERMEDIATE = 32 * 1024 * 1024


def stream_size(stream: BinaryIO) -> int:
    """Size of a seekable binary stream, without reading it.

    :param stream: a seekable file object.
    :returns: the number of bytes from the start to the end.
    """
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        position = stream.tell()
        size = stream.seek(0, io.SEEK_END)
        stream.seek(position)
        return size


def count_signatures(reader: PdfFileReader) -> int:
    """Number of filled signature fields in a parsed PDF.

    :param reader: a pyHanko reader.
    :returns: how many signature fields carry a signature.
    """
    return sum(1 for _name, value, _ref in enumerate_sig_fields(reader, filled_status=True) if value)


def inspect_pdf(source: bytes | BinaryIO, *, max_size: int, max_pages: int = MAX_PAGES) -> PdfInfo:
    """Check that ``source`` is a PDF we can sign and describe it.

    A file object is read from its start and left at the position it had. The time and
    memory this takes are bounded by the file's size, whatever the file contains.

    :param source: the file, as bytes or a seekable binary file object.
    :param max_size: the largest accepted size in bytes.
    :param max_pages: the most pages accepted.
    :returns: page count, size, existing signature count and SHA-256.
    :raises DocumentTooLarge: when the file is bigger than ``max_size`` (checked before reading it).
    :raises NotAPdf: when the file does not start like a PDF.
    :raises EncryptedPdf: when the PDF is encrypted (signing would need its password).
    :raises CorruptPdf: when the PDF is truncated, cannot be parsed, or is built to exhaust a
        reader (a compression bomb, nesting thousands of levels deep, a page tree that loops
        or lies about its size, cross-reference data declaring millions of objects).
    :raises InvalidDocument: when the PDF has more than ``max_pages`` pages.
    :raises EmptyPdf: when the PDF has no pages.
    """
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    start = stream.tell()
    try:
        return _inspect(stream, max_size=max_size, max_pages=max_pages)
    finally:
        stream.seek(start)


def _inspect(stream: BinaryIO, *, max_size: int, max_pages: int) -> PdfInfo:
    size = stream_size(stream)
    if size > max_size:
        raise DocumentTooLarge(
            f"The file is {size / 1e6:.1f} MB; "
            f"the largest document that can be signed is {max_size / 1e6:.1f} MB."
        )
    if size == 0:
        raise NotAPdf("The file is empty.")
    stream.seek(0)
    if b"%PDF-" not in stream.read(_HEADER_WINDOW):
        raise NotAPdf("The file is not a PDF document.")
    _check_end_marker(stream, size)
    sha256 = _hash_and_check_declarations(stream, size)
    stream.seek(0)
    with _reading(_DAMAGED):
        reader = PdfFileReader(stream, strict=False)
    # Checked before anything resolves an object: with /Encrypt present every object would
    # go through the security handler, and a broken encryption dictionary breaks that.
    if "/Encrypt" in reader.trailer:
        raise EncryptedPdf("The PDF is password-protected or encrypted; upload an unprotected copy.")
    with _reading(_DAMAGED):
        _check_streams(reader, stream, size)
    with _reading("The PDF's page tree is damaged; its pages cannot be read."):
        page_count = _count_pages(reader, max_pages=max_pages)
    with _reading("The PDF's form fields are damaged or refer back to themselves."):
        signature_count = count_signatures(reader)
    with _reading("A signature the PDF already carries cannot be read; the file is damaged."):
        has_signatures = bool(reader.embedded_signatures)
    if page_count <= 0:
        raise EmptyPdf("The PDF has no pages.")
    if has_signatures:
        _check_existing_signatures(stream, reader)
    _rehearse_signature(stream, reader, field_name=f"Signature{signature_count + 1}")
    return PdfInfo(page_count=page_count, size=size, signature_count=signature_count, sha256=sha256)


@contextlib.contextmanager
def _reading(damaged: str) -> Iterator[None]:
    """Turn what a parser raises inside into an :class:`ESignError`; ``damaged`` is the fallback text."""
    try:
        yield
    except ESignError:
        raise
    except Exception as exc:
        raise _refusal(exc, damaged) from exc


def _refusal(exc: BaseException, damaged: str) -> ESignError:
    """The error a parser failure is reported as; a few failures have a clearer cause than "damaged"."""
    if isinstance(exc, ESignError):
        return exc
    if _caused_by(exc, RecursionError):
        return CorruptPdf(_TOO_DEEP)
    if _caused_by(exc, PdfDecodeLimitError):
        return CorruptPdf(
            "The PDF contains compressed data that expands far beyond its size (a compression bomb)."
        )
    if _caused_by(exc, MemoryError):
        return CorruptPdf("The PDF's structure needs more memory than a document of its size can.")
    return CorruptPdf(damaged)


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    """Whether ``exc`` or an exception it was raised from or during is a ``kind``.

    pyHanko re-raises many errors as its own (a ``RecursionError`` in a dictionary
    becomes "Failed to read dictionary key"), keeping the original in the chain.
    """
    seen = 0
    while exc is not None and seen < 50:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


# -- what the file declares, before a parser believes it ------------------------------------------


def _check_end_marker(stream: BinaryIO, size: int) -> None:
    """Refuse a file without ``startxref`` and ``%%EOF`` on lines of their own at its end.

    pyHanko finds the cross-reference data by reading the file backwards, line by line,
    a byte at a time: a last line of 50 MB (no line break near the end) keeps it busy for
    a minute before it gives up. Every line it reads there must lie in the tail checked here.
    """
    stream.seek(max(0, size - _TAIL))
    tail = stream.read(_TAIL)
    markers = [m.start() for m in re.finditer(rb"[\r\n]%%EOF", tail) if m.start() >= len(tail) - _EOF_WINDOW]
    if not markers or not _STARTXREF_BEFORE_EOF.search(tail, 0, markers[-1] + 1):
        raise CorruptPdf("The PDF has no end-of-file marker where it belongs; it is incomplete or damaged.")


def _hash_and_check_declarations(stream: BinaryIO, size: int) -> str:
    """SHA-256 of the file; on the way, refuse object counts the file cannot hold.

    A cross-reference stream's ``/Size`` and ``/Index`` say how many entries it has;
    when its data runs short, pyHanko (like most lenient readers) fills in a default
    entry for each missing one, so 400 bytes can declare a billion objects and keep a
    reader busy for hours. The check is lexical, on the raw bytes, because it has to
    come before the reader is built.
    """
    limit = min(MAX_OBJECTS, max(_MIN_OBJECT_ALLOWANCE, size // _BYTES_PER_OBJECT))
    digest = hashlib.sha256()
    stream.seek(0)
    tail = b""
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        window = tail + chunk
        for declared in _declarations(window):
            if declared > limit:
                raise PdfTooComplex(
                    f"The PDF's cross-reference data declares {declared:,} objects, more than a file of "
                    f"{size:,} bytes can hold (at most {limit:,} are accepted); it is damaged or crafted."
                )
        # Carry the end over, so a declaration cut in two by the chunk boundary is still seen.
        tail = window[-600:]
    return digest.hexdigest()


def _declarations(window: bytes) -> Iterator[int]:
    """The object counts ``/Size`` and ``/Index`` declare in ``window``.

    Linear in the window's length whatever it holds: the end of a comment line is looked
    up once, however many names precede it on that line ("/Size%/Size%/Size%...").
    """
    line = [-1, -1]  # the span of the last comment looked up: [start, end of line]
    for match in _DECLARED_NAME.finditer(window):
        name = _NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), match.group()[1:])
        if name not in (b"Size", b"Index"):
            continue
        position = match.end()
        while True:
            position = _SPACE.match(window, position).end()
            if window[position : position + 1] != b"%":
                break
            if not line[0] <= position <= line[1]:
                end = _EOL.search(window, position)
                line = [position, end.start() if end else len(window)]
            position = line[1]
        value = _DECLARED_VALUE.match(window, position)
        if value is None:
            continue
        if name == b"Size" and not value.group().startswith(b"["):
            yield int(value.group())
        elif name == b"Index" and value.group().startswith(b"["):
            numbers = [int(n) for n in re.findall(rb"[+-]?\d+", value.group())]
            yield sum(abs(n) for n in numbers[1::2])


# -- compressed streams ------------------------------------------------------------------------------


class _Expands(Exception):
    pass


def _check_streams(reader: PdfFileReader, stream: BinaryIO, size: int) -> None:
    """Refuse any stream that inflates past the limits, wherever it sits in the file.

    Every object header in the file is looked at, not only the ones the cross-reference
    data lists: a viewer that rebuilds a broken xref finds the others too.
    """
    budget = max(_BUDGET_FLOOR, _BUDGET_RATIO * size)
    # Located (and counted) first, so a file of a million empty streams is refused after a
    # quick scan rather than after parsing fifty thousand of them.
    for offset, reference in list(_stream_candidates(stream, reader)):
        stream.seek(offset)
        try:
            read_non_whitespace(stream, seek_back=True)
            obj = generic.read_object(stream, reference)
        except Exception as exc:
            if _caused_by(exc, RecursionError):
                raise PdfTooComplex(_TOO_DEEP) from exc
            continue  # not a parsable object (bytes inside other data); nothing to decode
        if not isinstance(obj, generic.StreamObject):
            continue
        encoded = obj.encoded_data
        cap = min(MAX_STREAM_OUTPUT, max(_RATIO_FLOOR, _MAX_RATIO * len(encoded)))
        try:
            budget -= _decoded_size(encoded, _filter_names(obj), cap=min(cap, budget))
        except _Expands as exc:
            raise PdfTooComplex(
                f"Object {reference.idnum} of the PDF is a compressed stream of {len(encoded):,} bytes "
                f"that expands to more than {exc.args[0]:,} bytes (a compression bomb)."
            ) from None
        if budget < 0:
            raise PdfTooComplex(
                "The PDF's compressed streams expand to far more data than a document of its size holds."
            )


def _stream_candidates(stream: BinaryIO, reader: PdfFileReader) -> Iterator[tuple[int, generic.Reference]]:
    """Offsets (just after ``N G obj``) of the objects whose first keyword is ``stream``.

    One pass over the file: object headers and keywords are both found in increasing
    order, so each header is paired with the next keyword without searching again.
    """
    stream.seek(0)
    position = 0
    tail = b""
    headers = streams = 0
    while chunk := stream.read(_CHUNK):
        window = tail + chunk
        base = position - len(tail)
        keywords = _KEYWORD.finditer(window)
        keyword = next(keywords, None)
        ahead: tuple[int, bytes] | None = None  # the first keyword at the window's end, read once
        # Find the keyword first (a plain substring search, fast over megabytes of image data),
        # then look back for the numbers of a header.
        for found in _OBJ.finditer(window):
            if found.end() <= len(tail):
                continue  # seen with the previous chunk
            header = _HEADER_BEFORE.search(window, max(0, found.start() - 32), found.start())
            if header is None:
                continue
            headers += 1
            if headers > MAX_OBJECTS:
                raise PdfTooComplex(
                    f"The PDF has more than {MAX_OBJECTS:,} objects; it cannot be checked safely."
                )
            while keyword is not None and keyword.start() < found.end():
                keyword = next(keywords, None)
            if keyword is not None:
                following = keyword.group()
            else:
                # The object runs past this window, its keyword maybe cut in two by the edge.
                if ahead is None or ahead[0] < base + found.end():
                    ahead = _keyword_at(stream, max(position + len(chunk) - 16, base + found.end()))
                following = ahead[1]
            if following.startswith(b"stream"):
                streams += 1
                if streams > _MAX_STREAMS:
                    raise PdfTooComplex(
                        f"The PDF has more than {_MAX_STREAMS:,} streams; it cannot be checked safely."
                    )
                yield (
                    base + found.end(),
                    generic.Reference(int(header.group(1)), int(header.group(2)), reader),
                )
        position += len(chunk)
        tail = window[-40:]
        stream.seek(position)


def _keyword_at(stream: BinaryIO, offset: int) -> tuple[int, bytes]:
    """The first keyword at or after ``offset`` in the next megabyte: its offset and text."""
    here = stream.tell()
    stream.seek(offset)
    data = stream.read(_CHUNK)
    stream.seek(here)
    match = _KEYWORD.search(data)
    return (offset + match.start(), match.group()) if match else (offset, b"")


def _filter_names(obj: generic.StreamObject) -> list[str]:
    value = obj.get("/Filter")
    if value is None:
        return []
    items = value if isinstance(value, generic.ArrayObject) else [value]
    return [str(item.get_object()) for item in items]


def _decoded_size(encoded: bytes, filters: list[str], *, cap: int) -> int:
    """Bytes the filter chain decodes ``encoded`` to; raises :class:`_Expands` past ``cap``.

    Flate stages inflate chunk by chunk and only count; filters pyHanko cannot decode
    (images, LZW) end the chain, as nothing in the service expands them. Broken data
    counts as what decoded before the break.
    """
    chunks: Iterable[bytes] = (encoded,)
    for name in filters:
        if name in _FLATE:
            chunks = _inflate(chunks, cap)
        elif name in _SHRINKING:
            data = _joined(chunks, limit=min(cap, _MAX_INTERMEDIATE))
            try:
                chunks = (_SHRINKING[name]().decode(data, {}),)
            except Exception:
                return len(data)
        else:
            break
    total = 0
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > cap:
                raise _Expands(cap)
    except zlib.error:
        pass
    return total


def _joined(chunks: Iterable[bytes], *, limit: int) -> bytes:
    buffer = bytearray()
    try:
        for chunk in chunks:
            buffer += chunk
            if len(buffer) > limit:
                raise _Expands(limit)
    except zlib.error:
        pass
    return bytes(buffer)


def _inflate(chunks: Iterable[bytes], cap: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj()
    produced = 0
    for chunk in chunks:
        pending = chunk
        while not inflater.eof:
            out = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            produced += len(out)
            if produced > cap:
                raise _Expands(cap)
            yield out
            # Input used up and output not capped: zlib holds nothing more for this chunk.
            if not pending and len(out) < _CHUNK:
                break
        if inflater.eof:
            return


# -- the page tree -----------------------------------------------------------------------------------


def _count_pages(reader: PdfFileReader, *, max_pages: int) -> int:
    """The number of pages, counted leaf by leaf, with the tree's own counts checked against it.

    Viewers disagree about a page tree that loops, shares a page, hides pages beyond its
    ``/Count`` or claims pages it does not have, so a signer could see something else than
    the officer did; such a tree is refused rather than guessed at.
    """
    root_ref = reader.root.raw_get("/Pages")
    if not isinstance(root_ref, generic.IndirectObject):
        raise CorruptPdf("The PDF has no page tree.")
    declared = _node_count(root_ref.get_object())
    if declared > max_pages:
        raise PdfTooComplex(
            f"The document claims to have {declared:,} pages; at most {max_pages:,} pages can be signed."
        )
    seen = {root_ref.reference}
    # Each frame: the node's declared count, its kids still to visit, the leaves counted before it.
    frames: list[tuple[int, Iterator[Any], int]] = [(declared, iter(_kids(root_ref.get_object())), 0)]
    leaves = 0
    while frames:
        node_count, kids, leaves_before = frames[-1]
        kid_ref = next(kids, None)
        if kid_ref is None:
            frames.pop()
            if leaves - leaves_before != node_count:
                raise CorruptPdf(
                    f"The PDF's page tree claims {max(node_count, 0):,} pages where it has "
                    f"{leaves - leaves_before:,}; viewers would disagree about its pages."
                )
            continue
        if not isinstance(kid_ref, generic.IndirectObject) or kid_ref.reference in seen:
            raise CorruptPdf("The PDF's page tree loops back on itself or lists a page twice.")
        seen.add(kid_ref.reference)
        kid = kid_ref.get_object()
        kind = kid.get("/Type") if isinstance(kid, generic.DictionaryObject) else None
        if kind == "/Page":
            leaves += 1
            if leaves - leaves_before > node_count or leaves > declared:
                # Stop at the first page too many rather than count all the hidden ones.
                raise CorruptPdf(
                    "The PDF's page tree has more pages than it says; viewers would disagree about its pages."
                )
        elif kind == "/Pages":
            if len(frames) >= _MAX_TREE_DEPTH:
                raise PdfTooComplex(_TOO_DEEP)
            frames.append((_node_count(kid), iter(_kids(kid)), leaves))
        else:
            raise CorruptPdf(
                "The PDF's page tree contains something that is neither a page nor a list of pages."
            )
    return leaves


def _node_count(node: Any) -> int:
    count = node.get("/Count") if isinstance(node, generic.DictionaryObject) else None
    if not isinstance(count, generic.NumberObject):
        raise CorruptPdf("The PDF's page tree does not say how many pages it has.")
    return int(count)


def _kids(node: generic.DictionaryObject) -> list[Any]:
    kids = node.raw_get("/Kids") if "/Kids" in node else None
    if isinstance(kids, generic.IndirectObject):
        kids = kids.get_object()
    if not isinstance(kids, generic.ArrayObject):
        raise CorruptPdf("The PDF's page tree has a node without a list of pages.")
    return list(kids)


# -- signatures ------------------------------------------------------------------------------------------


def _check_existing_signatures(stream: BinaryIO, reader: PdfFileReader) -> None:
    """Refuse a PDF whose earlier signatures the validation report could not examine.

    The report of the signed document validates every signature in it; one that cannot
    even be examined would leave the signer's own signature without a report. Examining
    an earlier signature means comparing its revision with every later one, object by
    object, which reads objects nothing else reads; so the check runs on a copy with an
    (empty) update on top, as the signed document will have. Trust does not matter here.
    """
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as copy:
        with _reading("The PDF cannot take an update; the file is damaged."):
            writer = IncrementalPdfFileWriter(stream, prev=reader)
            writer.update_root()
            writer.write(copy)
        copy.seek(0)
        try:
            validate_pdf(copy, trust_roots=[])
        except ESignError as exc:
            raise CorruptPdf(
                "A signature the PDF already carries cannot be checked; the file is damaged."
            ) from exc


# -- the signature, rehearsed --------------------------------------------------------------------------


class _RehearsalSigner(signers.Signer):
    """Stands in for the one-time signer while the signature's update is rehearsed; never signs."""

    def __init__(self) -> None:
        certificate = _rehearsal_certificate()
        super().__init__(signing_cert=certificate, embed_roots=False)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        raise AssertionError("a rehearsal never signs")


@functools.cache
def _rehearsal_certificate() -> asn1_x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "esign.plone upload check")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


class _Discard(io.RawIOBase):
    """An output that counts what is written to it and keeps none of it."""

    def __init__(self) -> None:
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = memoryview(data).nbytes
        self.position += written
        return written

    def tell(self) -> int:
        return self.position


def _rehearse_signature(stream: BinaryIO, reader: PdfFileReader, *, field_name: str) -> None:
    """Make the incremental update of a signature (as :func:`.pades.sign_pdf` would) and throw it away.

    The field, its widget on the first page, the form, the document metadata and the
    signature dictionary are created and every changed object is serialised; only the
    hashing and the signature itself are left out. Whatever in the document would stop
    a signature shows here, at upload, instead of when the signer has already logged in.
    """
    try:
        writer = IncrementalPdfFileWriter(stream, prev=reader)
        metadata = signers.PdfSignatureMetadata(
            field_name=field_name, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES, name="-"
        )
        session = signers.PdfSigner(metadata, signer=_RehearsalSigner()).init_signing_session(writer)
        session.prepare_tbs_document(validation_info=None, bytes_reserved=_RESERVED_HEX_DIGITS)
        writer.write(_Discard())
    except PyHankoSigningError as exc:
        raise CorruptPdf(f"A signature cannot be added to this PDF: {exc}") from exc
    except Exception as exc:
        raise _refusal(
            exc, "The PDF's pages or form are damaged; a signature cannot be added to it."
        ) from exc

"""Checks an uploaded file before anyone is asked to sign it."""

from __future__ import annotations

import hashlib
import io
import os
from typing import BinaryIO

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from esign.plone.errors import CorruptPdf, DocumentTooLarge, EmptyPdf, EncryptedPdf, NotAPdf
from esign.plone.signing.values import PdfInfo

__all__ = ["count_signatures", "inspect_pdf", "stream_size"]

# ISO 32000 lets a PDF header sit anywhere in the first 1024 bytes; readers accept that.
_HEADER_WINDOW = 1024
_CHUNK = 1024 * 1024


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


def inspect_pdf(source: bytes | BinaryIO, *, max_size: int) -> PdfInfo:
    """Check that ``source`` is a PDF we can sign and describe it.

    A file object is read from its start and left at the position it had.

    :param source: the file, as bytes or a seekable binary file object.
    :param max_size: the largest accepted size in bytes.
    :returns: page count, size, existing signature count and SHA-256.
    :raises DocumentTooLarge: when the file is bigger than ``max_size`` (checked before reading it).
    :raises NotAPdf: when the file does not start like a PDF.
    :raises EncryptedPdf: when the PDF is encrypted (signing would need its password).
    :raises CorruptPdf: when the PDF is truncated or cannot be parsed.
    :raises EmptyPdf: when the PDF has no pages.
    """
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    start = stream.tell()
    try:
        return _inspect(stream, max_size=max_size)
    finally:
        stream.seek(start)


def _inspect(stream: BinaryIO, *, max_size: int) -> PdfInfo:
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

    digest = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)

    stream.seek(0)
    try:
        reader = PdfFileReader(stream, strict=False)
    except Exception as exc:
        raise CorruptPdf("The PDF file is damaged or incomplete and cannot be read.") from exc
    if reader.encrypted or "/Encrypt" in reader.trailer:
        raise EncryptedPdf("The PDF is password-protected or encrypted; upload an unprotected copy.")
    try:
        page_count = int(reader.root["/Pages"]["/Count"])
        # Touch the page tree and the form so a broken object graph shows here, not at signing.
        if page_count > 0:
            reader.find_page_for_modification(0)
        signature_count = count_signatures(reader)
    except Exception as exc:
        raise CorruptPdf("The PDF file is damaged and its pages cannot be read.") from exc
    if page_count <= 0:
        raise EmptyPdf("The PDF has no pages.")
    return PdfInfo(
        page_count=page_count, size=size, signature_count=signature_count, sha256=digest.hexdigest()
    )

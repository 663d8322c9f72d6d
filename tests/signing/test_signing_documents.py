"""An uploaded file is checked before anyone is asked to sign it."""

from __future__ import annotations

import hashlib
import io

import pytest

from esign.plone.errors import CorruptPdf, DocumentTooLarge, EmptyPdf, EncryptedPdf, InvalidDocument, NotAPdf
from esign.plone.signing import inspect_pdf
from helpers.pdfs import TestDocuments

MB = 1_000_000


@pytest.mark.parametrize(
    ("kind", "pages", "signatures"),
    [("reportlab", 1, 0), ("fpdf2", 5, 0), ("form", 1, 0), ("xref-streams", 5, 0), ("presigned", 1, 1)],
)
def test_a_good_pdf_is_described_by_pages_signatures_and_checksum(
    documents: TestDocuments, kind: str, pages: int, signatures: int
) -> None:
    data = documents.data(kind)
    info = inspect_pdf(data, max_size=MB)
    assert (info.page_count, info.signature_count, info.size) == (pages, signatures, len(data))
    assert info.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("not-a-pdf", NotAPdf),
        ("encrypted", EncryptedPdf),
        ("truncated", CorruptPdf),
        ("zero-pages", EmptyPdf),
    ],
)
def test_each_bad_document_is_refused_with_its_own_error(
    documents: TestDocuments, kind: str, error: type
) -> None:
    with pytest.raises(error) as caught:
        inspect_pdf(documents.data(kind), max_size=MB)
    assert caught.value.kind == error.__name__
    assert isinstance(caught.value, InvalidDocument) and caught.value.http_status == 400


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.7\n", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"],
    ids=["empty", "header-only", "no-xref"],
)
def test_fragments_that_merely_look_like_a_pdf_are_refused_without_a_traceback(data: bytes) -> None:
    with pytest.raises(InvalidDocument):
        inspect_pdf(data, max_size=MB)


class _CountingReader(io.BytesIO):
    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_a_too_large_file_is_refused_before_it_is_read(documents: TestDocuments) -> None:
    stream = _CountingReader(documents.data("fpdf2"))
    with pytest.raises(DocumentTooLarge) as caught:
        inspect_pdf(stream, max_size=1000)
    assert stream.bytes_read == 0
    assert caught.value.http_status == 413


def test_an_open_file_is_checked_and_left_where_it_was(documents: TestDocuments) -> None:
    with documents.big(2 * MB).open("rb") as handle:
        handle.seek(5)
        info = inspect_pdf(handle, max_size=3 * MB)
        assert handle.tell() == 5
    assert info.page_count == 1 and info.size > 2 * MB

"""The document check an uploaded file goes through before it is stored."""

from __future__ import annotations

from esign.plone.errors import (
    CorruptPdf,
    DocumentTooLarge,
    EmptyPdf,
    EncryptedPdf,
    InvalidDocument,
    NotAPdf,
    PdfTooComplex,
)
from esign.plone.signing import inspect_pdf
from esign.plone.signing.values import PdfInfo

#: What the officer reads, by kind of refusal (the engine's own texts are English).
MESSAGES = {
    NotAPdf: "Filen är inte ett PDF-dokument. Ladda upp handlingen som PDF.",
    EncryptedPdf: "PDF-filen är lösenordsskyddad eller krypterad. Ladda upp en oskyddad kopia.",
    # PdfTooComplex is a CorruptPdf: the more precise message comes first.
    PdfTooComplex: "PDF-filen är för stor eller för komplex för att kunna hanteras säkert (till exempel "
    "komprimerade data som växer till gigabyte, extremt djup nästling eller fler än 10 000 sidor).",
    CorruptPdf: "PDF-filen är skadad eller ofullständig och kan inte läsas.",
    EmptyPdf: "PDF-filen saknar sidor.",
}


def check_pdf_file(value) -> PdfInfo:
    """Check a NamedBlobFile (or anything with ``open()`` or ``data``) against the site's limit.

    :raises esign.plone.errors.InvalidDocument: with a Swedish message for the officer.
    """
    from esign.plone.content.schema import max_document_size

    limit = max_document_size()
    try:
        opener = getattr(value, "open", None)
        if opener is not None:
            with opener() as stream:
                return inspect_pdf(stream, max_size=limit)
        return inspect_pdf(value.data, max_size=limit)
    except DocumentTooLarge as exc:
        raise DocumentTooLarge(
            f"Filen är för stor. Största tillåtna storlek är {limit // (1024 * 1024)} MB."
        ) from exc
    except InvalidDocument as exc:
        message = next((m for kind, m in MESSAGES.items() if isinstance(exc, kind)), exc.message)
        raise type(exc)(message) from exc

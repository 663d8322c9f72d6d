"""The document check an uploaded file goes through before it is stored."""

from __future__ import annotations

from esign.plone.signing import inspect_pdf
from esign.plone.signing.values import PdfInfo


def check_pdf_file(value) -> PdfInfo:
    """Check a NamedBlobFile (or anything with ``open()`` or ``data``) against the site's limit.

    :raises esign.plone.errors.InvalidDocument: with the reason.
    """
    from esign.plone.content.schema import max_document_size

    opener = getattr(value, "open", None)
    if opener is not None:
        with opener() as stream:
            return inspect_pdf(stream, max_size=max_document_size())
    return inspect_pdf(value.data, max_size=max_document_size())

"""The one exception tree of esign.plone.

Views and REST services map these to a message for a person and an HTTP status;
nothing below them formats a response. ``http_status`` is the status a REST
service answers with, ``kind`` the ``type`` in ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations


class ESignError(Exception):
    """Base of every error esign.plone raises on purpose."""

    http_status = 500
    kind = "ESignError"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ESignError):
    """A value a person entered is wrong; the message says how."""

    http_status = 400
    kind = "InvalidInput"


class InvalidDocument(InvalidInput):
    """The uploaded file is not a PDF we can sign."""

    kind = "InvalidDocument"


class NotAPdf(InvalidDocument):
    kind = "NotAPdf"


class EncryptedPdf(InvalidDocument):
    kind = "EncryptedPdf"


class CorruptPdf(InvalidDocument):
    kind = "CorruptPdf"


class PdfTooComplex(CorruptPdf):
    """The PDF is too large or too complex to handle safely (a bomb, deep nesting, huge counts)."""

    kind = "PdfTooComplex"


class EmptyPdf(InvalidDocument):
    kind = "EmptyPdf"


class DocumentTooLarge(InvalidDocument):
    http_status = 413
    kind = "DocumentTooLarge"


class ClassificationRefused(InvalidInput):
    """K4 information must not be handled by the service."""

    kind = "ClassificationRefused"


class Forbidden(ESignError):
    http_status = 403
    kind = "Forbidden"


class IdentityMismatch(Forbidden):
    """The authenticated person is not the signer the case expects."""

    kind = "IdentityMismatch"


class NotFound(ESignError):
    http_status = 404
    kind = "NotFound"


class WrongState(ESignError):
    """The case is not in a state that allows the action (e.g. signing a draft)."""

    http_status = 409
    kind = "WrongState"


class CaseLocked(WrongState):
    """The case is signed (or frozen) and cannot be changed."""

    kind = "CaseLocked"


class AlreadySigned(WrongState):
    kind = "AlreadySigned"


class SigningError(ESignError):
    """The signing engine could not produce a signature."""

    kind = "SigningError"


class PKIError(SigningError):
    """The site PKI is missing, unreadable or misconfigured."""

    kind = "PKIError"


class ValidationFailed(SigningError):
    kind = "ValidationFailed"


class IdentityError(ESignError):
    """An identity provider refused, failed or could not be reached."""

    http_status = 502
    kind = "IdentityError"


class BankIDError(IdentityError):
    """The BankID RP API answered an error (``errorCode``/``details``) or was unreachable."""

    kind = "BankIDError"

    def __init__(self, message: str, *, error_code: str = "", details: str = "", field: str | None = None):
        super().__init__(message, field=field)
        self.error_code = error_code
        self.details = details


class OIDCError(IdentityError):
    """The OpenID Connect provider refused or sent something we cannot trust."""

    kind = "OIDCError"


class NotAuthenticated(ESignError):
    """No (or an expired) signer session."""

    http_status = 401
    kind = "NotAuthenticated"

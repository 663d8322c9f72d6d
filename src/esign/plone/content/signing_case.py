"""The signing case ("Underskriftsärende") and what it records about its signers."""

from __future__ import annotations

import datetime as dt

from persistent import Persistent
from plone.dexterity.content import Item
from plone.indexer import indexer
from zope.interface import implementer

from esign.plone.interfaces import ISigningCase

PENDING = "pending"
SIGNED = "signed"
DECLINED = "declined"


class SignerRecord(Persistent):
    """A signer as frozen when the case was sent, and what became of them.

    The record is the case's memory of the signature: it outlives edits of the
    (then frozen) signer list and holds the evidence of the authentication.
    """

    def __init__(
        self,
        *,
        signer_id: str,
        position: int,
        name: str,
        email: str,
        identity_key: str,
        personal_number: str | None = None,
        hsa_id: str | None = None,
    ) -> None:
        self.signer_id = signer_id
        self.position = position
        self.name = name
        self.email = email
        self.identity_key = identity_key
        self.personal_number = personal_number
        self.hsa_id = hsa_id
        self.status = PENDING
        self.signed_at: dt.datetime | None = None
        self.declined_at: dt.datetime | None = None
        self.decline_reason: str = ""
        self.field_name: str = ""
        self.certificate_serial: str = ""
        self.certificate_subject: str = ""
        self.document_sha256: str = ""
        #: method, identity_provider, authenticated_at (ISO), level_of_assurance, transaction_ref
        self.authentication: dict = {}

    @property
    def kind(self) -> str:
        return "staff" if self.hsa_id else "citizen"

    @property
    def principal_id(self) -> str:
        """The principal that holds the Signer local role on the case."""
        return f"esign-signer-{self.identity_key}"


@implementer(ISigningCase)
class SigningCase(Item):
    """Underskriftsärende."""

    # No type hints on these class attributes: a class-level ``__annotations__``
    # dict would become every case's zope.annotation store (shared, never saved).
    #: Filled when the case is sent (a PersistentList); ``None`` while it is a draft.
    signer_records = None
    #: The document with the signatures made so far (a NamedBlobFile), or ``None``.
    signed_document = None
    #: The sealed "Signeringsbevis" (a NamedBlobFile), made on completion.
    evidence_document = None
    #: The document as sent: the original plus the signature page (a NamedBlobFile), or
    #: ``None`` when the site adds no signature page.
    prepared_document = None
    #: Signature field names on the signature page, in signer order (a tuple), or ``None``.
    signature_fields = None
    #: When the TSA certificate of the last document timestamp expires (aware datetime).
    archive_timestamp_expiry = None
    #: When the archive timestamp was last renewed (aware datetime), ``None`` before that.
    archive_renewed_at = None

    def esign_ready_to_send(self) -> bool:
        """Guard of the "send" transition: a PDF and at least one signer."""
        from esign.plone.workflow.cases import ready_to_send

        return ready_to_send(self)

    def esign_can_withdraw(self) -> bool:
        """Guard of "withdraw": only while nobody has signed."""
        return not any(r.status == SIGNED for r in (self.signer_records or ()))

    def esign_all_signed(self) -> bool:
        """Guard of "complete", the system transition after the last signature."""
        records = self.signer_records or ()
        return bool(records) and all(r.status == SIGNED for r in records)

    def esign_has_declined(self) -> bool:
        """Guard of "decline", the system transition when a signer declines."""
        return any(r.status == DECLINED for r in (self.signer_records or ()))

    def esign_past_deadline(self) -> bool:
        """Guard of "expire", the system transition once the last day to sign has passed."""
        from esign.plone.workflow.lifecycle import deadline_passed

        return deadline_passed(self)

    # Guard expressions run as restricted Python; these guards reveal nothing.
    esign_ready_to_send__roles__ = None
    esign_can_withdraw__roles__ = None
    esign_all_signed__roles__ = None
    esign_has_declined__roles__ = None
    esign_past_deadline__roles__ = None


@indexer(ISigningCase)
def signer_identity_keys(obj) -> list[str]:
    """Salted identity keys of the case's signers, for "my pending cases" lookups."""
    from esign.plone.workflow.cases import identity_keys_of

    return identity_keys_of(obj)

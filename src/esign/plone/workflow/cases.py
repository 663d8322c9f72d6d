"""What happens to a signing case: send, withdraw, sign, decline, lock.

Views, REST services, event subscribers and scripts all come through here
(``esign.plone.api`` re-exports the public functions).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable

import transaction
from persistent.list import PersistentList
from plone import api
from plone.locking.interfaces import MAX_TIMEOUT, ILockable, LockType
from plone.namedfile.file import NamedBlobFile
from zope.event import notify

from esign.plone import audit, logger
from esign.plone.content.identifiers import identity_key
from esign.plone.content.schema import normalize_signer_row
from esign.plone.content.signing_case import DECLINED, PENDING, SIGNED, SignerRecord
from esign.plone.errors import (
    AlreadySigned,
    ESignError,
    IdentityMismatch,
    InvalidInput,
    NotFound,
    PKIError,
    SigningError,
    WrongState,
)
from esign.plone.events import SignatureAdded
from esign.plone.signing import sign_pdf, validate_pdf
from esign.plone.signing.values import SignatureResult, SigningProfile, ValidationReport, VerifiedIdentity
from esign.plone.sitepki import site_pki, site_timestamper, tsa_trust_roots, uses_external_tsa

DRAFT = "draft"
AWAITING = "awaiting_signature"
SIGNED_STATE = "signed"
DECLINED_STATE = "declined"

#: A signed case carries this lock: nobody can steal or lift it, so no editor,
#: WebDAV client or script that respects locks changes the document.
SIGNED_LOCK = LockType("esign.plone.signed", stealable=False, user_unlockable=False, timeout=MAX_TIMEOUT)

MAX_REASON_LENGTH = 2000


def state_of(case) -> str:
    return api.content.get_state(obj=case)


def hash_salt() -> str:
    salt = api.portal.get_registry_record("esign.internal.hash_salt", default=None)
    if not salt:
        raise ESignError("esign.plone är inte installerat på webbplatsen.")
    return salt


def ready_to_send(case) -> bool:
    """A PDF and at least one signer: what the "send" transition requires."""
    return bool(getattr(case, "document", None)) and bool(getattr(case, "signers", None))


def identity_keys_of(case) -> list[str]:
    records = case.signer_records
    if records is not None:
        return [r.identity_key for r in records]
    salt = hash_salt()
    return [
        identity_key(salt=salt, personal_number=row.get("personal_number"), hsa_id=row.get("hsa_id"))
        for row in case.signers or ()
    ]


def signer_records(case) -> list[SignerRecord]:
    return list(case.signer_records or ())


def get_signer(case, signer_id: str) -> SignerRecord:
    for record in case.signer_records or ():
        if record.signer_id == signer_id:
            return record
    raise NotFound("Undertecknaren finns inte i ärendet.")


# -- transitions ---------------------------------------------------------------


def send_case(case) -> None:
    """Send a draft to its signers (the "send" transition).

    :raises WrongState: if the case is not a draft.
    :raises InvalidInput: if it lacks a PDF or signers.
    """
    if state_of(case) != DRAFT:
        raise WrongState("Bara ett utkast kan skickas.")
    if not ready_to_send(case):
        raise InvalidInput("Ärendet behöver ett PDF-dokument och minst en undertecknare innan det skickas.")
    # Scripts can create cases without the form's checks; nothing unchecked goes out.
    for number, row in enumerate(case.signers, start=1):
        try:
            normalize_signer_row(dict(row))
        except InvalidInput as exc:
            raise InvalidInput(f"Undertecknare {number}: {exc.message}", field="signers") from exc
    api.content.transition(obj=case, transition="send")


def withdraw_case(case) -> None:
    """Take a sent case back to draft, as long as nobody has signed it."""
    if state_of(case) != AWAITING:
        raise WrongState("Bara ett ärende som väntar på underskrift kan dras tillbaka.")
    if not case.esign_can_withdraw():
        raise WrongState("Ärendet har redan undertecknats av någon och kan inte dras tillbaka.")
    api.content.transition(obj=case, transition="withdraw")


def freeze(case) -> None:
    """On "send": fix the signer list as records and give each signer the Signer role."""
    salt = hash_salt()
    records = PersistentList()
    for position, row in enumerate(case.signers or (), start=1):
        record = SignerRecord(
            signer_id=uuid.uuid4().hex,
            position=position,
            name=row["name"],
            email=row["email"],
            personal_number=row.get("personal_number"),
            hsa_id=row.get("hsa_id"),
            identity_key=identity_key(
                salt=salt, personal_number=row.get("personal_number"), hsa_id=row.get("hsa_id")
            ),
        )
        records.append(record)
        case.manage_setLocalRoles(record.principal_id, ["Signer"])
    case.signer_records = records
    case.signed_document = None
    prepare_document(case)
    case.reindexObjectSecurity()
    case.reindexObject(idxs=["esign_signer_keys"])


def prepare_document(case) -> None:
    """Append the signature page ("Underskriftssida") with one empty field per signer.

    Made once, on "send", before any signature; every signer then signs into their own
    field. Without a signature page (site setting) the original is signed as it is.
    """
    from esign.plone.signing.sigpage import PageSigner, SignaturePage, add_signature_page, field_names

    case.prepared_document = None
    case.signature_fields = None
    if not api.portal.get_registry_record("esign.signature_page", default=True):
        return
    if _already_signed(case):
        # A page added after someone else's signature shows, in pyHanko's eyes, as a change
        # to the page tree after that signature: such documents are signed as they are.
        logger.info("Case %s: the document already carries signatures; no signature page", case.UID())
        return
    records = list(case.signer_records or ())
    names = field_names(len(records))
    page = SignaturePage(
        case_number=case.case_number or case.getId(),
        title=case.title,
        document_sha256=original_sha256(case),
        signers=tuple(PageSigner(field_name=n, name=r.name) for n, r in zip(names, records, strict=True)),
        organisation=api.portal.get_registry_record("esign.organisation_name", default="") or "",
        invisible_signatures=not api.portal.get_registry_record("esign.visible_signatures", default=True),
    )
    prepared = NamedBlobFile(contentType="application/pdf", filename=getattr(case.document, "filename", None))
    with case.document.open() as reader, prepared.open("r+") as writer:
        fields = add_signature_page(reader, writer, page=page)
    case.prepared_document = prepared
    case.signature_fields = tuple(fields)


def _already_signed(case) -> bool:
    from esign.plone.signing.sigpage import carries_signatures

    with case.document.open() as reader:
        return carries_signatures(reader)


def original_sha256(case) -> str:
    """SHA-256 (hex) of the document the officer uploaded."""
    digest = hashlib.sha256()
    with case.document.open() as reader:
        for chunk in iter(lambda: reader.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def working_document(case):
    """The document as it stands: with the signatures so far, else as sent, else the original."""
    return case.signed_document or case.prepared_document or case.document


def unfreeze(case) -> None:
    """On "withdraw": the case is a draft again; signers lose access."""
    principals = [r.principal_id for r in case.signer_records or ()]
    if principals:
        case.manage_delLocalRoles(principals)
    case.signer_records = None
    case.signed_document = None
    case.prepared_document = None
    case.signature_fields = None
    case.reindexObjectSecurity()
    case.reindexObject(idxs=["esign_signer_keys"])


def lock_signed(case) -> None:
    """Put the non-stealable "signed" lock on the case, replacing any edit lock."""
    lockable = ILockable(case)
    if is_locked_signed(case):
        return
    lockable.clear_locks()
    lockable.lock(SIGNED_LOCK)


def is_locked_signed(case) -> bool:
    info = ILockable(case).lock_info()
    return any(getattr(i.get("type"), "__name__", None) == SIGNED_LOCK.__name__ for i in info)


# -- signing -------------------------------------------------------------------


def pades_level() -> str:
    return api.portal.get_registry_record("esign.pades_level", default="B-LTA") or "B-LTA"


def signing_profile(*, field_name: str | None = None) -> SigningProfile:
    return SigningProfile(
        level=pades_level(),
        fetch_revocation=uses_external_tsa(),
        tsa_trust_roots=tsa_trust_roots(),
        key_algorithm=api.portal.get_registry_record("esign.key_algorithm", default="ec-p256"),
        certificate_validity=dt.timedelta(
            minutes=api.portal.get_registry_record("esign.certificate_validity_minutes", default=10)
        ),
        organisation=api.portal.get_registry_record("esign.organisation_name", default=""),
        field_name=field_name,
        reason="Underskrift",
    )


def _identity_matches(record: SignerRecord, identity: VerifiedIdentity) -> bool:
    if record.personal_number:
        return identity.personal_number == record.personal_number
    return bool(identity.hsa_id) and identity.hsa_id.upper() == (record.hsa_id or "").upper()


def check_may_sign(case, record: SignerRecord) -> None:
    """The case must await signatures, the signer must be pending and, in sequence, next."""
    if state_of(case) != AWAITING:
        raise WrongState("Ärendet väntar inte på underskrift.")
    if record.status == SIGNED:
        raise AlreadySigned("Du har redan skrivit under dokumentet.")
    if record.status != PENDING:
        raise WrongState("Underskriften kan inte längre göras.")
    if case.signing_order == "sequential":
        earlier = [r for r in case.signer_records if r.position < record.position]
        if any(r.status != SIGNED for r in earlier):
            raise WrongState("Det är inte din tur ännu: tidigare undertecknare har inte skrivit under.")


def sign_case(
    case, *, signer_id: str, identity: VerifiedIdentity, evidence: dict | None = None
) -> SignatureResult:
    """Sign the case's document as one of its signers.

    ``identity`` must come from a fresh authentication (BankID sign order, forced
    SITHS login) and must be the signer's own: the personnummer or HSA-id has to
    equal the signer entry. The engine makes a one-time key pair and certificate,
    embeds a PAdES signature as an incremental update and forgets the key. The
    last signature moves the case to ``signed`` and locks it.

    :raises IdentityMismatch: the authenticated person is someone else.
    :raises WrongState, AlreadySigned, NotFound: the case does not allow it.
    :raises SigningError: the engine failed; nothing was changed.

    ``evidence`` is what the identity provider gave as proof (BankID orderRef,
    signature and OCSP response; OIDC token claims); it is kept on the record.
    """
    record = get_signer(case, signer_id)
    check_may_sign(case, record)
    if not _identity_matches(record, identity):
        # Log the case and signer position, never the identity numbers themselves.
        logger.warning(
            "Refused signature on %s: authenticated identity does not match signer %s",
            case.UID(),
            record.position,
        )
        raise IdentityMismatch(
            "Du är inloggad som en annan person än den som ska skriva under. Ingen underskrift gjordes."
        )

    if record.hsa_id and identity.personal_number:
        # Staff are named by HSA-id on the case; their certificate's serialNumber is
        # that HSA-id, even when the IdP also vouched for a personnummer.
        identity = dataclasses.replace(identity, personal_number=None)
    # The views answer an ESignError with a page and let the request commit: whatever the
    # engine wrote before it failed (the one-time certificate in the registry) must go.
    savepoint = transaction.savepoint(optimistic=True)
    try:
        return _sign(case, record, identity=identity, evidence=evidence)
    except SigningError as exc:
        _undo(savepoint)
        logger.warning(
            "Case %s: the signature of signer %s failed, nothing was kept: %s",
            case.UID(),
            record.position,
            exc,
        )
        if isinstance(exc, PKIError):
            raise
        failure = SigningError(SIGNING_FAILED)
        # The engine's own inputs were checked above; what fails here is a service it
        # depends on (the TSA, an HSM): the signer may try again later.
        failure.http_status = 503
        raise failure from exc
    except Exception:
        _undo(savepoint)
        raise


def _undo(savepoint) -> None:
    try:
        savepoint.rollback()
    except TypeError:
        # Some data manager in this transaction cannot roll back to a savepoint: then
        # nothing of the request may be kept.
        logger.warning("A failed signature could not be rolled back alone; the request keeps nothing")
        transaction.doom()


#: What a signer reads when the signature could not be made (the engine's reason goes to the log).
SIGNING_FAILED = (
    "Underskriften kunde inte göras just nu på grund av ett tekniskt fel. Ingen underskrift gjordes. "
    "Försök igen om en stund."
)


def _sign(
    case, record: SignerRecord, *, identity: VerifiedIdentity, evidence: dict | None
) -> SignatureResult:
    # Every call to a service that can fail (the TSA) comes before the first change to the
    # case, and every mail after the last one: a failure leaves the case as it was.
    source = working_document(case)
    signed = NamedBlobFile(contentType="application/pdf", filename=_signed_filename(case))
    field_name, stamp = _field_and_stamp(case, record, identity)
    profile = signing_profile(field_name=field_name)
    timestamper = site_timestamper() if profile.level != "B-B" else None
    # "r+", not "w": the engine reads back what it wrote (the new revision's
    # cross-references), and a write-only blob would make it build the whole
    # signed file in memory first.
    with source.open() as reader, signed.open("r+") as writer:
        result = sign_pdf(
            reader,
            writer,
            identity=identity,
            pki=site_pki(),
            profile=profile,
            timestamper=timestamper,
            stamp=stamp,
        )
    last = all(r.status == SIGNED for r in case.signer_records if r is not record)
    archived = None
    if last and profile.level == "B-LTA":
        archived = _archive_timestamped(case, signed)

    case.signed_document = signed
    record.status = SIGNED
    record.signed_at = result.signed_at
    record.field_name = result.field_name
    record.certificate_serial = result.certificate_serial
    record.certificate_subject = result.certificate_subject
    record.document_sha256 = result.document_sha256
    ctx = identity.context
    record.authentication = {
        "method": ctx.method,
        "identity_provider": ctx.identity_provider,
        "authenticated_at": ctx.authenticated_at.isoformat(),
        "level_of_assurance": ctx.level_of_assurance,
        "transaction_ref": ctx.transaction_ref,
    }
    record.evidence = dict(evidence or {})
    record._p_changed = True
    case.reindexObject(idxs=["modified"])
    logger.info(
        "Case %s signed by signer %s (certificate %s)", case.UID(), record.position, result.certificate_serial
    )
    audit.record(
        case,
        "signed",
        actor=audit.actor_for_signer(record),
        certificate_serial=result.certificate_serial,
        field_name=result.field_name,
        document_sha256=result.document_sha256,
        order_ref=record.evidence.get("order_ref", ""),
        **audit.authentication_details(identity, record=record),
    )
    if archived is not None:
        _keep_archive_timestamp(case, *archived, event="archive_timestamped")
    notify(SignatureAdded(case, record))

    if last:
        with api.env.adopt_roles(["Manager"]):
            api.content.transition(obj=case, transition="complete")
    else:
        from esign.plone.workflow.notifications import invite_due_signers

        invite_due_signers(case)
    return result


def _field_and_stamp(case, record: SignerRecord, identity: VerifiedIdentity):
    """The signer's own field on the signature page and what its stamp says (or a new invisible field)."""
    fields = case.signature_fields
    if not fields:
        return f"Signature{len(signatures_made(case)) + 1}", None
    field_name = fields[list(case.signer_records).index(record)]
    if not api.portal.get_registry_record("esign.visible_signatures", default=True):
        return field_name, None
    from esign.plone.signing.sigpage import StampText

    stamp = StampText(
        signer_name=record.name,
        signed_at=dt.datetime.now(dt.UTC),
        case_number=case.case_number or case.getId(),
        method=identity.context.method,
    )
    return field_name, stamp


def add_archive_timestamp(case, *, moment: dt.datetime | None = None) -> None:
    """B-LTA: a document timestamp over the finished document (and its DSS).

    Also used to renew it (:func:`renew_archive_timestamp`) before its TSA certificate expires.
    """
    stamped, expiry = _archive_timestamped(case, case.signed_document, moment=moment)
    _keep_archive_timestamp(case, stamped, expiry, event="archive_timestamped")


def _archive_timestamped(case, source, *, moment: dt.datetime | None = None) -> tuple:
    """``source`` with a document timestamp on top, and when its TSA certificate expires; changes nothing."""
    from esign.plone.signing.ltv import add_document_timestamp

    stamped = NamedBlobFile(contentType="application/pdf", filename=_signed_filename(case))
    with source.open() as reader, stamped.open("r+") as writer:
        expiry = add_document_timestamp(
            reader,
            writer,
            pki=site_pki(),
            timestamper=site_timestamper(),
            moment=moment,
            allow_fetching=uses_external_tsa(),
            extra_trust_roots=tsa_trust_roots(),
        )
    return stamped, expiry


def _keep_archive_timestamp(case, stamped, expiry: dt.datetime | None, *, event: str) -> None:
    case.signed_document = stamped
    case.archive_timestamp_expiry = expiry
    audit.record(case, event, actor="system", tsa_expires=_iso(expiry))


def renew_archive_timestamp(case, *, moment: dt.datetime | None = None) -> None:
    """Archival renewal: the last timestamp's revocation data plus a new document timestamp on top."""
    from esign.plone.signing.ltv import archive_timestamp_expiry
    from esign.plone.signing.ltv import renew_archive_timestamp as renew

    renewed = NamedBlobFile(contentType="application/pdf", filename=_signed_filename(case))
    with case.signed_document.open() as reader, renewed.open("r+") as writer:
        renew(
            reader,
            writer,
            pki=site_pki(),
            timestamper=site_timestamper(),
            moment=moment,
            allow_fetching=uses_external_tsa(),
            extra_trust_roots=tsa_trust_roots(),
        )
    with renewed.open() as reader:
        expiry = archive_timestamp_expiry(reader)
    _keep_archive_timestamp(case, renewed, expiry, event="archive_timestamp_renewed")


def _iso(moment: dt.datetime | None) -> str:
    return moment.isoformat() if moment else ""


def decline_case(case, *, signer_id: str, reason: str = "") -> None:
    """A signer declines ("Ta bort ärendet"): the case becomes ``declined``, the reason is kept."""
    record = get_signer(case, signer_id)
    check_may_sign(case, record)
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"Anledningen får vara högst {MAX_REASON_LENGTH} tecken.", field="reason")
    record.status = DECLINED
    record.declined_at = dt.datetime.now(dt.UTC)
    record.decline_reason = reason
    record._p_changed = True
    audit.record(case, "declined", actor=audit.actor_for_signer(record), reason=reason)
    with api.env.adopt_roles(["Manager"]):
        api.content.transition(obj=case, transition="decline", comment=reason[:200])


def signatures_made(case) -> list[SignerRecord]:
    """Signer records with a signature, in the order the signatures were made."""
    done = [r for r in case.signer_records or () if r.status == SIGNED]
    return sorted(done, key=lambda r: r.signed_at)


def validate_case(case) -> ValidationReport | None:
    """Validate the signed document against the site's root; ``None`` before any signature."""
    if case.signed_document is None:
        return None
    pki = site_pki()
    with case.signed_document.open() as reader:
        return validate_pdf(
            reader, trust_roots=[pki.root_certificate], timestamp_trust_roots=tsa_trust_roots()
        )


def _signed_filename(case) -> str:
    original = getattr(case.document, "filename", None) or f"{case.getId()}.pdf"
    stem = original[:-4] if original.lower().endswith(".pdf") else original
    return f"{stem}-signerad.pdf"


def cases_for_identity(
    *, personal_number: str | None = None, hsa_id: str | None = None, states: Iterable[str] = (AWAITING,)
) -> list:
    """Cases where the person is a signer, found through the salted identity key."""
    key = identity_key(salt=hash_salt(), personal_number=personal_number, hsa_id=hsa_id)
    with api.env.adopt_roles(["Manager"]):
        brains = api.content.find(
            portal_type="SigningCase", esign_signer_keys=key, review_state=list(states), unrestricted=True
        )
        return [b._unrestrictedGetObject() for b in brains]

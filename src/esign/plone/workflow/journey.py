"""The signer's journey: log in, see pending cases, sign with a fresh identity, decline.

One function per step; the signer views in ``browser/signer.py`` only read the
request, call one of these and render. No signature is made here without a
fresh BankID *sign* order or a forced SITHS login whose identity equals the
signer entry.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time

import segno
import transaction
from plone import api
from plone.protect.interfaces import IDisableCSRFProtection
from ZODB.POSException import ConflictError
from zope.interface import alsoProvides

from esign.plone import audit, logger
from esign.plone.content.signing_case import PENDING
from esign.plone.errors import (
    BankIDError,
    Forbidden,
    IdentityError,
    IdentityMismatch,
    NotAuthenticated,
    NotFound,
)
from esign.plone.identity import bankid, ratelimit, rfa
from esign.plone.identity import oidc as oidc_module
from esign.plone.identity.sessions import (
    SignerSession,
    create_session,
    current_flow,
    current_session,
    end_flow,
    start_flow,
)
from esign.plone.signing.values import VerifiedIdentity
from esign.plone.workflow import cases

CASE_COOKIE = "__esign_case"


# -- configuration -----------------------------------------------------------------


def _registry(name: str) -> str | None:
    return api.portal.get_registry_record(f"esign.{name}", default=None) or None


def bankid_config() -> bankid.BankIDConfig:
    config = bankid.BankIDConfig.from_env(
        {
            "url": _registry("bankid_url"),
            "cert_path": _registry("bankid_cert"),
            "key_path": _registry("bankid_key"),
            "ca_path": _registry("bankid_ca"),
        }
    )
    if config is None:
        raise IdentityError("BankID är inte inställt på den här webbplatsen. Kontakta handläggaren.")
    return config


#: How long a worker thread keeps its BankID connection between calls. Reusing it spares a
#: mutual-TLS handshake (~50 ms of CPU on each side) on every collect, which a waiting signer's
#: page makes every 2 s; dropping it after a short pause keeps us clear of firewalls and servers
#: that forget idle connections without saying so.
BANKID_IDLE_SECONDS = 20.0
_bankid_kept = threading.local()


def bankid_client() -> bankid.BankIDClient:
    """This worker thread's BankID client for the current configuration."""
    config = bankid_config()
    now = time.monotonic()
    kept = getattr(_bankid_kept, "client", None)
    if kept is not None and kept[0] == config and now - kept[2] < BANKID_IDLE_SECONDS:
        client = kept[1]
    else:
        if kept is not None:
            kept[1].close()
        client = bankid.BankIDClient(config)
    _bankid_kept.client = (config, client, now)
    return client


_oidc_clients: dict[tuple, oidc_module.OIDCClient] = {}


def oidc_client() -> oidc_module.OIDCClient:
    config = oidc_module.OIDCConfig.from_env(
        {
            "issuer": _registry("oidc_issuer"),
            "client_id": _registry("oidc_client_id"),
            "client_secret": _registry("oidc_client_secret"),
        }
    )
    if config is None:
        raise IdentityError("Inloggning med eTjänstekort är inte inställd på den här webbplatsen.")
    key = (config.issuer, config.client_id, config.client_secret)
    # The provider's discovery document and keys are public and the same for every
    # instance: caching the client per process holds no state another instance needs.
    client = _oidc_clients.get(key)
    if client is None:
        client = _oidc_clients[key] = oidc_module.OIDCClient(config)
    return client


def portal_url() -> str:
    return api.portal.get().absolute_url()


def end_user_ip(request) -> str:
    return request.getClientAddr() or "127.0.0.1"


# -- finding the signer's cases ------------------------------------------------------


def _case_by_uid(uid: str):
    catalog = api.portal.get_tool("portal_catalog")
    brains = catalog.unrestrictedSearchResults(UID=uid, portal_type="SigningCase")
    return brains[0]._unrestrictedGetObject() if brains else None


def _record_for(case, identity: VerifiedIdentity):
    for record in case.signer_records or ():
        if record.personal_number and record.personal_number == identity.personal_number:
            return record
        if record.hsa_id and identity.hsa_id and record.hsa_id.upper() == identity.hsa_id.upper():
            return record
    return None


def signer_case(session: SignerSession, uid: str | None):
    """The case and this person's signer record, or NotFound for anything else.

    The same answer for "no such case" and "not your case", so a guessed UID tells nothing.
    """
    case = _case_by_uid(uid) if uid else None
    record = _record_for(case, session.identity) if case is not None else None
    if record is None:
        raise NotFound("Ärendet finns inte, eller så är du inte undertecknare i det.")
    return case, record


def link_opened(uid: str, signer_id: str) -> None:
    """Note on the case that a signer's "Hantera ärendet" link was followed."""
    case = _case_by_uid(uid)
    records = case.signer_records or () if case is not None else ()
    record = next((r for r in records if r.signer_id == signer_id), None)
    if record is not None:
        audit.record(case, "link_opened", actor=audit.actor_for_signer(record))


def officer_case(uid: str | None):
    """The case if the logged-in Plone user (the officer, a manager) may view it, else None."""
    if not uid:
        return None
    case = _case_by_uid(uid)
    if case is None or not api.user.has_permission("View", obj=case) or api.user.is_anonymous():
        return None
    return case


def downloadable_case(session: SignerSession | None, uid: str | None) -> tuple:
    """The signed case behind a download link, for a signer of it or a Plone user who may view it.

    :returns: ``(case, actor)`` — the actor as the audit trail names the downloader.
    :raises NotAuthenticated: nobody is logged in (the caller may offer the login).
    :raises NotFound: not this person's case, or not signed yet.
    """
    case, actor = None, audit.current_actor()
    if session is not None:
        try:
            case, record = signer_case(session, uid)
            actor = audit.actor_for_signer(record)
        except NotFound:
            case = None
    if case is None:
        case = officer_case(uid)
    if case is None:
        if session is None:
            raise NotAuthenticated("Logga in för att ladda ned det undertecknade dokumentet.")
        raise NotFound("Ärendet finns inte, eller så är du inte part i det.")
    if case.signed_document is None or cases.state_of(case) != "signed":
        raise NotFound("Dokumentet är inte färdigt undertecknat ännu.")
    return case, actor


def note_download(request, case, *, actor: str, **data) -> None:
    """Note a download in the audit trail.

    A GET that writes: the note is a log entry, not a change someone could be tricked
    into, so plone.protect must not abort it for a logged-in officer.
    """
    alsoProvides(request, IDisableCSRFProtection)
    audit.record(case, "downloaded", actor=actor, **data)


def pending_cases(session: SignerSession) -> list[tuple]:
    """Every case awaiting this person's signature, oldest first ("Hantera väntande underskrifter")."""
    found = cases.cases_for_identity(
        personal_number=session.personal_number if not session.hsa_id else None,
        hsa_id=session.hsa_id,
    )
    if session.personal_number and session.hsa_id:
        found += cases.cases_for_identity(personal_number=session.personal_number)
    result = []
    for case in found:
        record = _record_for(case, session.identity)
        if record is not None and record.status == PENDING and (case, record) not in result:
            result.append((case, record))
    return sorted(result, key=lambda pair: pair[0].created())


def document_sha256(case) -> str:
    """SHA-256 of the document the signer is about to sign (as it stands now)."""
    with cases.working_document(case).open() as reader:
        digest = hashlib.sha256()
        for chunk in iter(lambda: reader.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- BankID ------------------------------------------------------------------------------


def sign_texts(case, record) -> tuple[str, bytes]:
    """What BankID shows the signer (simpleMarkdownV1), and what it binds invisibly."""
    sha = document_sha256(case)
    filename = getattr(case.document, "filename", "") or "dokument.pdf"
    number = f", diarienummer {case.case_number}" if case.case_number else ""
    lines = [
        "# Underskrift",
        "",
        f"Jag skriver under *{case.title}*{number}.",
        "",
        f"Dokument: {filename}",
        f"SHA-256: {sha[:16]}…",
    ]
    hidden = json.dumps(
        {"case": case.UID(), "signer": record.signer_id, "sha256": sha}, separators=(",", ":")
    ).encode()
    return "\n".join(lines), hidden


def start_bankid(request, *, purpose: str, mode: str, case=None, record=None) -> None:
    """Start a BankID order: ``auth`` to log in, ``sign`` (locked to the signer's personnummer) to sign."""
    client = bankid_client()
    if purpose == "sign":
        cases.check_may_sign(case, record)
        if not record.personal_number:
            raise Forbidden("Den här undertecknaren skriver under med eTjänstekort.")
        visible, hidden = sign_texts(case, record)
        ratelimit.check_bankid_start(end_user_ip(request), response=request.response)
        order = client.sign(
            end_user_ip=end_user_ip(request),
            user_visible_data=visible,
            user_non_visible_data=hidden,
            personal_number=record.personal_number,
        )
    else:
        ratelimit.check_bankid_start(end_user_ip(request), response=request.response)
        order = client.auth(end_user_ip=end_user_ip(request))
    _cancel_unless_committed(client, order.order_ref)
    start_flow(
        request,
        {
            "kind": "bankid",
            "purpose": purpose,
            "mode": "qr" if mode == "qr" else "same_device",
            "order_ref": order.order_ref,
            "auto_start_token": order.auto_start_token,
            "qr_start_token": order.qr_start_token,
            "qr_start_secret": order.qr_start_secret,
            "started_at": order.started_at,
            **_flow_target(request, case, record),
        },
    )
    if purpose == "sign":
        actor = audit.actor_for_signer(record)
        audit.record(case, "sign_started", actor=actor, method="bankid", order_ref=order.order_ref)


def _cancel_unless_committed(client: bankid.BankIDClient, order_ref: str) -> None:
    """Cancel the order at BankID if the transaction that records its flow does not commit.

    The order is started before its flow is committed. When the commit fails (a
    ConflictError: another signer's request changed the case or the rate count at the same
    moment) Zope runs the whole request again, which starts a second order for the same
    personnummer while the first is still pending: BankID answers ``alreadyInProgress`` and
    cancels both, and the signer gets an error page for pressing "Skriv under" once. The
    same happens after any other failure: an order whose flow was thrown away is one nobody
    will collect, and it would block the person's next attempt until it expires. Cancelled
    here, the retry (or the next attempt) starts afresh.
    """
    done: list[bool] = []

    def cancel(*status: bool) -> None:
        if done or (status and status[0]):  # after-commit hooks get True when it committed
            return
        done.append(True)
        try:
            client.cancel(order_ref)
        except IdentityError:
            logger.info("BankID order %s of an aborted request not cancelled; it expires", order_ref)

    txn = transaction.get()
    txn.addAfterCommitHook(cancel)
    txn.addAfterAbortHook(cancel)


def _flow_target(request, case, record) -> dict:
    """Which case a flow leads to: the one being signed, or for a login the one the mail linked."""
    return {
        "case": case.UID() if case is not None else request.cookies.get(CASE_COOKIE),
        "signer": record.signer_id if record is not None else None,
    }


def bankid_qr_svg(flow) -> str:
    """The animated QR code's current frame; the secret never leaves the server."""
    seconds = max(0, int(time.time() - flow["started_at"]))
    data = bankid.qr_data(flow["qr_start_token"], flow["qr_start_secret"], seconds)
    return segno.make_qr(data, error="l").svg_inline(scale=5, border=2)


def autostart_url(flow) -> str:
    return bankid.autostart_url(flow["auto_start_token"])


def poll_bankid(request) -> dict:
    """One ``collect``: the status, BankID's recommended message, and where to go when done."""
    flow = current_flow(request)
    if flow is None or flow.get("kind") != "bankid":
        return {"status": "failed", "message": "Inloggningen har avbrutits eller gått ut. Försök igen."}
    client = bankid_client()
    try:
        result = client.collect(flow["order_ref"])
    except BankIDError as exc:
        # We give the order up: cancel it too, or the person's app still asks them to
        # approve it and their next attempt meets "alreadyInProgress" (RFA4). Not when
        # BankID did not answer at all: a second wait as long would only hold the page.
        if exc.error_code != "unreachable":
            _cancel_quietly(client, flow["order_ref"])
        end_flow(request)
        return {"status": "failed", "message": rfa.error_message(exc.error_code)}
    message = rfa.user_message(result.status, result.hint_code, flow=flow["mode"])
    if result.status == "pending":
        return {"status": "pending", "hint": result.hint_code, "message": message}
    purpose, case_uid, signer_id, order_ref = (
        flow["purpose"],
        flow.get("case"),
        flow.get("signer"),
        flow["order_ref"],
    )
    end_flow(request)
    if result.status != "complete":
        return {"status": "failed", "hint": result.hint_code, "message": message}
    identity = bankid.verified_identity(result.completion, order_ref=order_ref, provider=bankid_config().url)
    evidence = {
        "method": "bankid",
        "order_ref": order_ref,
        "signature": result.completion.signature,
        "ocsp_response": result.completion.ocsp_response,
        "bankid_issue_date": result.completion.bankid_issue_date,
    }
    return _finish(
        request, purpose=purpose, identity=identity, case_uid=case_uid, signer_id=signer_id, evidence=evidence
    )


def cancel_bankid(request) -> None:
    flow = current_flow(request)
    if flow is not None and flow.get("kind") == "bankid":
        try:
            _cancel_quietly(bankid_client(), flow["order_ref"])
        except IdentityError:
            logger.info("BankID is not configured; order %s expires by itself", flow["order_ref"])
    end_flow(request)


def _cancel_quietly(client: bankid.BankIDClient, order_ref: str) -> None:
    try:
        client.cancel(order_ref)
    except IdentityError:
        logger.info("BankID cancel of order %s failed; it expires by itself", order_ref)


# -- SITHS over OpenID Connect ------------------------------------------------------------


def callback_url() -> str:
    return f"{portal_url()}/@@esign-oidc-callback"


def start_oidc(request, *, purpose: str, case=None, record=None) -> str:
    """Send staff to the identity provider; for signing, with a forced fresh login."""
    if purpose == "sign":
        cases.check_may_sign(case, record)
    client = oidc_client()
    auth = client.authorization_request(redirect_uri=callback_url(), force_login=True)
    start_flow(
        request,
        {
            "kind": "oidc",
            "purpose": purpose,
            "state": auth.state,
            "nonce": auth.nonce,
            "code_verifier": auth.code_verifier,
            "created_at": auth.created_at,
            "auth_url": auth.url,
            **_flow_target(request, case, record),
        },
    )
    if purpose == "sign":
        audit.record(case, "sign_started", actor=audit.actor_for_signer(record), method="siths")
    return auth.url


def finish_oidc(request, params) -> dict:
    """The provider's callback: check state, trade the code, verify the ID token."""
    flow = current_flow(request)
    if flow is None or flow.get("kind") != "oidc":
        end_flow(request)
        raise Forbidden("Inloggningen kunde inte kopplas till den här webbläsaren. Börja om.")
    purpose, case_uid, signer_id = flow["purpose"], flow.get("case"), flow.get("signer")
    auth = oidc_module.AuthorizationRequest(
        url=flow["auth_url"],
        state=flow["state"],
        nonce=flow["nonce"],
        code_verifier=flow["code_verifier"],
        force_login=True,
        created_at=flow["created_at"],
    )
    end_flow(request)
    client = oidc_client()
    code = client.code_from_callback(params, request=auth)
    claims = client.exchange(code=code, redirect_uri=callback_url(), request=auth)
    identity = oidc_module.verified_identity(claims)
    evidence = {
        "method": "siths",
        "issuer": claims.issuer,
        "subject": claims.subject,
        "auth_time": claims.auth_time,
        "acr": claims.acr,
        "sid": claims.raw.get("sid", ""),
    }
    return _finish(
        request, purpose=purpose, identity=identity, case_uid=case_uid, signer_id=signer_id, evidence=evidence
    )


# -- the end of a login or a signature ----------------------------------------------------


def _finish(request, *, purpose, identity, case_uid, signer_id, evidence) -> dict:
    if purpose == "login":
        session = create_session(request, identity)
        target = f"{portal_url()}/@@esign-pending"
        if case_uid:
            try:
                case, record = signer_case(session, case_uid)
                audit.record(
                    case,
                    "login",
                    actor=audit.actor_for_signer(record),
                    **audit.authentication_details(identity, record=record),
                )
                target = f"{portal_url()}/@@esign-review?case={case_uid}"
            except NotFound:
                pass
        return {"status": "complete", "next": target}

    session = current_session(request)
    if session is None:
        return {"status": "failed", "message": "Du har loggats ut. Logga in och skriv under igen."}
    # Signers who finish at the same moment all change the case (its document, its audit
    # trail): all but one conflict and must sign again on top of the new revision. Zope would
    # retry the whole request three times, collecting the BankID order (or trading the OIDC
    # code, which works once) again each time, and a burst uses that up: the progress page
    # then gets a 500 and stops. So the signature is retried here, with the proof in hand.
    case, record = signer_case(session, case_uid)
    if record.signer_id != signer_id or not _same_person(session.identity, identity):
        logger.warning("Refused signature on %s: the signing identity is not the logged-in signer", case_uid)
        raise IdentityMismatch(
            "Du skrev under som en annan person än den som är inloggad. Ingen underskrift gjordes."
        )
    for attempt in range(1, SIGN_ATTEMPTS + 1):
        if attempt > 1:
            end_flow(request)  # undone with the attempt before
            case, record = signer_case(session, case_uid)  # as the other signature left it
        sign(case, record, identity=identity, evidence=evidence)
        try:
            transaction.commit()
            break
        except ConflictError as exc:
            transaction.abort()
            if attempt == SIGN_ATTEMPTS:
                raise
            # The error names the object both changed (an oid and its class), nothing personal.
            logger.info(
                "Signature on case %s collided with another (%s); attempt %s", case_uid, exc, attempt + 1
            )
            time.sleep(random.uniform(0, min(2.0, 0.1 * 2**attempt)))  # noqa: S311 - jitter, not a secret
    return {"status": "complete", "next": f"{portal_url()}/@@esign-done?case={case_uid}"}


#: Attempts at one signature inside one request, when it conflicts with other signers' (each
#: then waits up to 0.2, 0.4, ... 2 s): beyond this, Zope's own retries of the request follow.
SIGN_ATTEMPTS = 8


def _same_person(a: VerifiedIdentity, b: VerifiedIdentity) -> bool:
    if a.hsa_id and b.hsa_id:
        return a.hsa_id.upper() == b.hsa_id.upper()
    return bool(a.personal_number) and a.personal_number == b.personal_number


def sign(case, record, *, identity: VerifiedIdentity, evidence: dict) -> None:
    """Sign as the system: the signer has no Plone account, their proof is ``identity``."""
    with api.env.adopt_roles(["Manager"]):
        cases.sign_case(case, signer_id=record.signer_id, identity=identity, evidence=evidence)


def decline(request, session: SignerSession, uid: str, *, reason: str) -> None:
    case, record = signer_case(session, uid)
    with api.env.adopt_roles(["Manager"]):
        cases.decline_case(case, signer_id=record.signer_id, reason=reason)


def seconds_left(session: SignerSession) -> int:
    return max(0, int(session.expires - time.time()))

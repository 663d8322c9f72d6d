"""Verified test people and the site PKI settings the signing tests share."""

from __future__ import annotations

import datetime as dt

from esign.plone.content.identifiers import luhn_ok, normalize_personal_number
from esign.plone.signing import AuthenticationContext, VerifiedIdentity

PASSPHRASE = b"correct horse battery staple"
ORGANISATION = "Exempelkommunen"


def make_identity(
    given_name: str,
    surname: str,
    personal_number: str | None,
    *,
    method: str = "bankid",
    hsa_id: str | None = None,
    email: str | None = None,
    transaction_ref: str = "order-ref-1",
) -> VerifiedIdentity:
    return VerifiedIdentity(
        given_name=given_name,
        surname=surname,
        personal_number=personal_number,
        hsa_id=hsa_id,
        email=email,
        context=AuthenticationContext(
            method=method,
            identity_provider="http://id.example.se/bankid",
            authenticated_at=dt.datetime(2026, 3, 1, 9, 30, 15, tzinfo=dt.UTC),
            transaction_ref=transaction_ref,
        ),
    )


def personnummer(born: dt.date, serial: int) -> str:
    """A 12-digit personnummer for ``born`` with the Luhn check digit of its last ten digits."""
    body = f"{born:%Y%m%d}{serial:03d}"
    check = next(d for d in "0123456789" if luhn_ok(body[2:] + d))
    return normalize_personal_number(body + check)  # and the date is one that exists

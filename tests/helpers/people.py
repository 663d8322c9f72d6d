"""Verified test people and the site PKI settings the signing tests share."""

from __future__ import annotations

import datetime as dt

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

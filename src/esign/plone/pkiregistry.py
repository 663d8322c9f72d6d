"""The registry of every certificate the site CA issued, in the ZODB.

The OCSP responder and the CRLs answer from it: a one-time certificate issued
minutes ago on another Zope instance is known as soon as that transaction is
committed, and an expired one is still answered for (the registry is never
pruned; a certificate is about 1 KB). Revocation is recorded here and shows in
both the OCSP answers and the next CRL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

from BTrees.OOBTree import OOBTree
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from persistent.mapping import PersistentMapping
from plone import api
from zope.annotation.interfaces import IAnnotations

from esign.plone.errors import PKIError
from esign.plone.signing.revocation import REVOCATION_REASONS, IssuedCertificate

KEY = "esign.plone.issued-certificates"


class SiteCertificateRegistry:
    """:class:`esign.plone.signing.revocation.CertificateRegistry` over the portal's annotations.

    Serial numbers are random 127-bit integers; they are keyed by their hex string in an
    OOBTree (an LOBTree cannot hold them). Revoked serials are also kept in a small tree
    of their own so a CRL does not walk every certificate.
    """

    def __init__(self, portal=None) -> None:
        self._portal = portal

    def _root(self, *, create: bool) -> PersistentMapping | None:
        annotations = IAnnotations(self._portal or api.portal.get())
        root = annotations.get(KEY)
        if root is None and create:
            root = annotations[KEY] = PersistentMapping({"certificates": OOBTree(), "revoked": OOBTree()})
        return root

    def add(self, certificate: x509.Certificate, *, kind: str) -> None:
        root = self._root(create=True)
        key = f"{certificate.serial_number:x}"
        if key in root["certificates"]:
            return
        root["certificates"][key] = PersistentMapping(
            {
                "der": certificate.public_bytes(serialization.Encoding.DER),
                "kind": kind,
                "revoked_at": None,
                "reason": None,
            }
        )

    def _entry(self, serial: int):
        root = self._root(create=False)
        if root is None:
            return None
        return root["certificates"].get(f"{serial:x}")

    def get(self, serial: int) -> IssuedCertificate | None:
        entry = self._entry(serial)
        return None if entry is None else _issued(entry)

    def certificate(self, serial: int) -> x509.Certificate | None:
        """The issued certificate itself."""
        entry = self._entry(serial)
        return None if entry is None else x509.load_der_x509_certificate(entry["der"])

    def revoke(
        self, serial: int, *, reason: str = "unspecified", at: dt.datetime | None = None
    ) -> IssuedCertificate:
        if reason not in REVOCATION_REASONS:
            raise PKIError(f"Unknown revocation reason {reason!r}.")
        entry = self._entry(serial)
        if entry is None:
            raise PKIError(f"The site CA has not issued a certificate with serial {serial:x}.")
        if entry["revoked_at"] is None:
            revoked = _issued(entry).with_revocation(reason=reason, at=at or dt.datetime.now(dt.UTC))
            entry["revoked_at"] = revoked.revoked_at
            entry["reason"] = reason
            self._root(create=True)["revoked"][f"{serial:x}"] = True
        return _issued(entry)

    def revoked(self) -> Iterator[IssuedCertificate]:
        root = self._root(create=False)
        if root is None:
            return
        for key in root["revoked"]:
            yield _issued(root["certificates"][key])

    def __len__(self) -> int:
        root = self._root(create=False)
        return 0 if root is None else len(root["certificates"])


def _issued(entry) -> IssuedCertificate:
    certificate = x509.load_der_x509_certificate(entry["der"])
    issued = IssuedCertificate.from_certificate(certificate, kind=entry["kind"])
    if entry["revoked_at"] is None:
        return issued
    return dataclasses.replace(issued, revoked_at=entry["revoked_at"], revocation_reason=entry["reason"])

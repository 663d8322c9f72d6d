"""The one door to esign.plone for views, REST services, subscribers and scripts.

>>> from esign.plone import api as esign
>>> esign.send_case(case)
>>> esign.sign_case(case, signer_id=record.signer_id, identity=identity)
"""

from esign.plone.sitepki import site_pki
from esign.plone.workflow.cases import (
    cases_for_identity,
    decline_case,
    get_signer,
    send_case,
    sign_case,
    signatures_made,
    signer_records,
    state_of,
    validate_case,
    withdraw_case,
)


def revoke_certificate(serial: int, *, reason: str = "unspecified") -> None:
    """Revoke a certificate the site CA issued.

    The OCSP responder answers "revoked" at once and the next CRL lists it.

    :param serial: the certificate's serial number (``int(hex, 16)`` of the signatures page's hex).
    :param reason: an RFC 5280 reason name, e.g. ``"key_compromise"``.
    :raises PKIError: for a serial the site CA never issued or an unknown reason.
    """
    from esign.plone import logger

    site_pki().registry.revoke(serial, reason=reason)
    logger.warning("Certificate %x revoked (%s)", serial, reason)


__all__ = [
    "cases_for_identity",
    "decline_case",
    "get_signer",
    "revoke_certificate",
    "send_case",
    "sign_case",
    "signatures_made",
    "signer_records",
    "site_pki",
    "state_of",
    "validate_case",
    "withdraw_case",
]

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

__all__ = [
    "cases_for_identity",
    "decline_case",
    "get_signer",
    "send_case",
    "sign_case",
    "signatures_made",
    "signer_records",
    "site_pki",
    "state_of",
    "validate_case",
    "withdraw_case",
]

"""A signing case as ``ISignable``: the door other add-ons and scripts can use."""

from __future__ import annotations

from plone.locking.interfaces import ILockSettings
from zope.component import adapter
from zope.interface import implementer

from esign.plone.interfaces import ISignable, ISigningCase
from esign.plone.signing.values import SignatureResult, ValidationReport, VerifiedIdentity
from esign.plone.workflow import cases


@implementer(ISignable)
@adapter(ISigningCase)
class SigningCaseSignable:
    def __init__(self, context) -> None:
        self.context = context

    def sign(self, signer_id: str, identity: VerifiedIdentity) -> SignatureResult:
        return cases.sign_case(self.context, signer_id=signer_id, identity=identity)

    def signatures(self) -> list:
        return cases.signatures_made(self.context)

    def validate(self) -> ValidationReport | None:
        return cases.validate_case(self.context)


@implementer(ILockSettings)
@adapter(ISigningCase)
class SigningCaseLockSettings:
    """A signed case is always locked, whatever the site's through-the-web lock setting."""

    lock_on_ttw_edit = True

    def __init__(self, context) -> None:
        self.context = context

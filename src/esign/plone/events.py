"""What happens to a signing case, as zope events an administrator can hang content rules on.

Each event is also a content-rule trigger (``events.zcml``): in Plone's
content-rules control panel an administrator picks, say, "Underskriftsärende
undertecknat" and adds actions (move the case to an archive folder, mail the
registry office). The events fire after the add-on has done its own work for
the step, so a rule sees the case as it will stay: a signed case is already
locked, a withdrawn one already a draft again.

Fired by :func:`case_transitioned` (every workflow step) and by
``esign.plone.workflow.cases.sign_case`` (each signature).
"""

from __future__ import annotations

from zope.event import notify
from zope.interface import Attribute, implementer
from zope.interface.interfaces import IObjectEvent, ObjectEvent

__all__ = [
    "CaseDeclined",
    "CaseExpired",
    "CaseSent",
    "CaseSigned",
    "CaseWithdrawn",
    "ICaseDeclined",
    "ICaseEvent",
    "ICaseExpired",
    "ICaseSent",
    "ICaseSigned",
    "ICaseWithdrawn",
    "ISignatureAdded",
    "SignatureAdded",
    "case_transitioned",
]


class ICaseEvent(IObjectEvent):
    """Something happened to a signing case; ``object`` is the case."""


class ICaseSent(ICaseEvent):
    """The case went out to its signers ("send")."""


class ISignatureAdded(ICaseEvent):
    """One signer signed; the case may still wait for others."""

    record = Attribute("The signer's SignerRecord, with the signature's details.")


class ICaseSigned(ICaseEvent):
    """Everybody signed: the case is ``signed`` and locked ("complete")."""


class ICaseDeclined(ICaseEvent):
    """A signer declined: the case is ``declined`` ("decline")."""


class ICaseExpired(ICaseEvent):
    """The last day to sign passed: the case is ``expired`` ("expire")."""


class ICaseWithdrawn(ICaseEvent):
    """The officer took the case back: it is a draft again ("withdraw")."""


@implementer(ICaseSent)
class CaseSent(ObjectEvent):
    pass


@implementer(ISignatureAdded)
class SignatureAdded(ObjectEvent):
    def __init__(self, object, record) -> None:
        super().__init__(object)
        self.record = record


@implementer(ICaseSigned)
class CaseSigned(ObjectEvent):
    pass


@implementer(ICaseDeclined)
class CaseDeclined(ObjectEvent):
    pass


@implementer(ICaseExpired)
class CaseExpired(ObjectEvent):
    pass


@implementer(ICaseWithdrawn)
class CaseWithdrawn(ObjectEvent):
    pass


#: Workflow transition id → the event it means.
TRANSITION_EVENTS: dict[str, type[ObjectEvent]] = {
    "send": CaseSent,
    "complete": CaseSigned,
    "decline": CaseDeclined,
    "expire": CaseExpired,
    "withdraw": CaseWithdrawn,
}


def case_transitioned(case, event) -> None:
    """After a workflow step of a case: fire the case event that step means.

    Registered after the workflow package's own subscribers of the same event, so
    the case is frozen, locked or unfrozen before any content rule runs.
    """
    factory = TRANSITION_EVENTS.get(getattr(event, "action", None))
    if factory is not None:
        notify(factory(case))


def no_store_for_cases(event) -> None:
    """Pages and API answers about a signing case carry personal data: never cache them.

    Registered for ``IPubBeforeCommit``: whatever view or REST service answered, if what it
    answered about is a signing case (or the officer's case list), the answer gets
    ``Cache-Control: private, no-store`` and ``X-Content-Type-Options: nosniff``.
    """
    from esign.plone.interfaces import ISigningCase

    request = event.request
    published = request.get("PUBLISHED")
    context = getattr(published, "context", None) or getattr(published, "__parent__", None)
    is_case = ISigningCase.providedBy(context) or ISigningCase.providedBy(published)
    if is_case or getattr(published, "__name__", "") == "esign-my-cases":
        request.response.setHeader("Cache-Control", "private, no-store")
        request.response.setHeader("X-Content-Type-Options", "nosniff")

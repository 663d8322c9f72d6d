"""The schema of a signing case and the checks on what an officer enters."""

from __future__ import annotations

from collective.z3cform.datagridfield.datagridfield import DataGridFieldWidgetFactory, DataGridValidator
from collective.z3cform.datagridfield.row import DictRow
from plone import api
from plone.autoform import directives
from plone.namedfile.field import NamedBlobFile
from plone.supermodel import model
from z3c.form.validator import WidgetValidatorDiscriminators
from zope import schema
from zope.interface import Interface, Invalid, invariant
from zope.schema.interfaces import ValidationError
from zope.schema.vocabulary import SimpleTerm, SimpleVocabulary

from esign.plone import _
from esign.plone.content.identifiers import (
    normalize_email,
    normalize_hsa_id,
    normalize_personal_number,
)
from esign.plone.errors import ESignError, InvalidInput

#: The seed's rule, word for word: "K4-klassad information får inte behandlas i tjänsten."
K4_REFUSAL = _(
    "error_k4_refused",
    default="K4-klassad information får inte behandlas i tjänsten. "
    "Välj K1–K3, eller hantera handlingen utanför E-underskrift.",
)

information_classes = SimpleVocabulary(
    [
        SimpleTerm("K1", "K1", _("K1 – öppen information")),
        SimpleTerm("K2", "K2", _("K2 – intern information")),
        SimpleTerm("K3", "K3", _("K3 – känslig information (personuppgifter, sekretess)")),
        SimpleTerm("K4", "K4", _("K4 – mycket känslig information (får inte behandlas)")),
    ]
)

signing_orders = SimpleVocabulary(
    [
        SimpleTerm("parallel", "parallel", _("Alla samtidigt")),
        SimpleTerm("sequential", "sequential", _("I tur och ordning")),
    ]
)


class ISignerRow(Interface):
    """One signer: a citizen by personnummer, or staff by HSA-id."""

    name = schema.TextLine(title=_("label_signer_name", default="Namn"), required=True)
    personal_number = schema.TextLine(
        title=_("label_signer_pnr", default="Personnummer"),
        description=_("help_signer_pnr", default="ÅÅÅÅMMDD-NNNN"),
        required=False,
    )
    hsa_id = schema.TextLine(
        title=_("label_signer_hsa", default="HSA-id (personal med eTjänstekort)"),
        required=False,
    )
    email = schema.TextLine(title=_("label_signer_email", default="E-post"), required=True)


class InvalidCaseValue(ValidationError):
    """A value of a signing case is wrong; the message says how, in the form and over REST."""

    def __init__(self, message) -> None:
        super().__init__(message)
        self.message = message

    def doc(self):
        return self.message


def check_information_class(value: str) -> bool:
    if value == "K4":
        raise InvalidCaseValue(K4_REFUSAL)
    return True


def check_signers(rows: list[dict]) -> bool:
    """Validate and normalise every row in place; raise ``Invalid`` naming the row."""
    seen: set[str] = set()
    for number, row in enumerate(rows or [], start=1):
        try:
            normalize_signer_row(row)
        except InvalidInput as exc:
            raise InvalidCaseValue(f"Undertecknare {number}: {exc.message}") from exc
        key = row.get("personal_number") or row.get("hsa_id")
        if key in seen:
            raise InvalidCaseValue(f"Undertecknare {number} finns redan med i listan.")
        seen.add(key)
    return True


def normalize_signer_row(row: dict) -> dict:
    """Normalise one signer row in place and return it.

    :raises InvalidInput: when the row is incomplete or a value is wrong.
    """
    if not (row.get("name") or "").strip():
        raise InvalidInput("Namn saknas.", field="name")
    row["name"] = row["name"].strip()
    pnr, hsa = (row.get("personal_number") or "").strip(), (row.get("hsa_id") or "").strip()
    if bool(pnr) == bool(hsa):
        raise InvalidInput(
            "Ange antingen personnummer (medborgare) eller HSA-id (personal), inte båda.",
            field="personal_number",
        )
    row["personal_number"] = normalize_personal_number(pnr) if pnr else None
    row["hsa_id"] = normalize_hsa_id(hsa) if hsa else None
    row["email"] = normalize_email(row.get("email") or "")
    return row


def check_document(value) -> bool:
    """Refuse anything but a readable, unencrypted, non-empty PDF within the size limit."""
    from esign.plone.content.documents import check_pdf_file

    try:
        check_pdf_file(value)
    except ESignError as exc:
        raise InvalidCaseValue(exc.message) from exc
    return True


class ISigningCaseSchema(model.Schema):
    """Underskriftsärende: a PDF and the people who are to sign it."""

    title = schema.TextLine(title=_("label_case_title", default="Rubrik"), required=True)

    case_number = schema.TextLine(
        title=_("label_case_number", default="Diarienummer"),
        required=False,
    )

    information_class = schema.Choice(
        title=_("label_information_class", default="Informationsklass"),
        description=_(
            "help_information_class",
            default="Handlingar med personuppgifter och sekretess (K1–K3) får hanteras. "
            "K4-klassad information får inte behandlas i tjänsten.",
        ),
        vocabulary=information_classes,
        default="K2",
        required=True,
        constraint=check_information_class,
    )

    message = schema.Text(
        title=_("label_message", default="Meddelande till undertecknarna"),
        required=False,
    )

    document = NamedBlobFile(
        title=_("label_document", default="Dokument (PDF)"),
        required=True,
        constraint=check_document,
    )

    directives.widget("signers", DataGridFieldWidgetFactory)
    signers = schema.List(
        title=_("label_signers", default="Undertecknare"),
        description=_(
            "help_signers",
            default="Namn, personnummer och e-post. Personal med eTjänstekort anges med HSA-id "
            "i stället för personnummer.",
        ),
        value_type=DictRow(title="Undertecknare", schema=ISignerRow),
        required=False,
        default=[],
        constraint=check_signers,
    )

    signing_order = schema.Choice(
        title=_("label_signing_order", default="Ordning"),
        vocabulary=signing_orders,
        default="parallel",
        required=True,
    )

    deadline = schema.Date(
        title=_("label_deadline", default="Sista dag för underskrift"),
        required=False,
    )

    @invariant
    def deadline_not_past(data):
        import datetime as dt

        deadline = getattr(data, "deadline", None)
        if deadline and deadline < dt.date.today():
            raise Invalid(_("error_deadline_past", default="Sista dag kan inte ligga i det förflutna."))


def max_document_size() -> int:
    """The configured size limit in bytes (50 MB unless the control panel says otherwise)."""
    try:
        mb = api.portal.get_registry_record("esign.max_document_size_mb", default=50)
    except Exception:  # no site (scripts before install): the documented default
        mb = 50
    return int(mb or 50) * 1024 * 1024


class SignersValidator(DataGridValidator):
    """The data-grid widget skips the list's constraint; the signer rules must still run."""

    def validate(self, value, force=False):
        super().validate(value, force)
        check_signers(value or [])


WidgetValidatorDiscriminators(SignersValidator, field=ISigningCaseSchema["signers"])

"""Marker interfaces, the signing-case contract and the registry settings."""

from __future__ import annotations

from zope import schema
from zope.interface import Interface
from zope.publisher.interfaces.browser import IDefaultBrowserLayer

from esign.plone import _


class IESignLayer(IDefaultBrowserLayer):
    """Browser layer: present while esign.plone is installed on the site."""


class ISigningCase(Interface):
    """Marker of the signing case content type ("Underskriftsärende")."""


class ISignable(Interface):
    """What can be signed, signer by signer (a signing case adapts to this)."""

    def sign(signer_id, identity):
        """Sign as the signer ``signer_id``, whose fresh ``identity`` must match.

        :returns: the signing engine's ``SignatureResult``.
        :raises esign.plone.errors.ESignError: on every refusal.
        """

    def signatures():
        """The signatures made so far, as ``SignatureRecord`` values, in signing order."""

    def validate():
        """Validate the signed document against the site root: a ``ValidationReport``."""


class IESignSettings(Interface):
    """Settings in the esign.plone control panel (registry prefix ``esign``)."""

    organisation_name = schema.TextLine(
        title=_("label_organisation_name", default="Organisation"),
        description=_(
            "help_organisation_name",
            default="Named in the site's CA certificates and in every signature certificate.",
        ),
        default="Plone",
        required=True,
    )

    max_document_size_mb = schema.Int(
        title=_("label_max_document_size", default="Largest document (MB)"),
        default=50,
        min=1,
        max=1024,
        required=True,
    )

    key_algorithm = schema.Choice(
        title=_("label_key_algorithm", default="Key algorithm of the one-time signer keys"),
        values=["ec-p256", "rsa-3072"],
        default="ec-p256",
        required=True,
    )

    certificate_validity_minutes = schema.Int(
        title=_("label_certificate_validity", default="Validity of a signer certificate (minutes)"),
        description=_(
            "help_certificate_validity",
            default="The key is destroyed after the signature, so a short validity is enough.",
        ),
        default=10,
        min=1,
        max=60 * 24 * 365,
        required=True,
    )

    session_idle_minutes = schema.Int(
        title=_("label_session_idle", default="Signer sessions end after (minutes idle)"),
        default=15,
        min=1,
        max=240,
        required=True,
    )

    link_validity_days = schema.Int(
        title=_(
            "label_link_validity",
            default="Links in mails are valid for (days, when the case has no deadline)",
        ),
        default=30,
        min=1,
        max=365,
        required=True,
    )

    bankid_url = schema.TextLine(
        title=_("label_bankid_url", default="BankID RP API v6.0 URL"),
        description=_(
            "help_bankid_url",
            default="https://appapi2.bankid.com/rp/v6.0 in production, "
            "https://appapi2.test.bankid.com/rp/v6.0 for BankID's test environment. "
            "ESIGN_BANKID_URL overrides.",
        ),
        required=False,
    )
    bankid_cert = schema.TextLine(
        title=_("label_bankid_cert", default="RP client certificate (PEM file path)"),
        description=_("help_bankid_cert", default="ESIGN_BANKID_CERT overrides."),
        required=False,
    )
    bankid_key = schema.TextLine(
        title=_("label_bankid_key", default="RP client key (PEM file path)"),
        description=_("help_bankid_key", default="ESIGN_BANKID_KEY overrides."),
        required=False,
    )
    bankid_ca = schema.TextLine(
        title=_("label_bankid_ca", default="BankID server CA (PEM file path)"),
        description=_("help_bankid_ca", default="ESIGN_BANKID_CA overrides."),
        required=False,
    )

    oidc_issuer = schema.TextLine(
        title=_("label_oidc_issuer", default="SITHS identity provider (OpenID Connect issuer)"),
        description=_("help_oidc_issuer", default="E.g. Inera IdP. ESIGN_OIDC_ISSUER overrides."),
        required=False,
    )
    oidc_client_id = schema.TextLine(
        title=_("label_oidc_client_id", default="OIDC client id"),
        description=_("help_oidc_client_id", default="ESIGN_OIDC_CLIENT_ID overrides."),
        required=False,
    )
    oidc_client_secret = schema.Password(
        title=_("label_oidc_client_secret", default="OIDC client secret"),
        description=_("help_oidc_client_secret", default="ESIGN_OIDC_CLIENT_SECRET overrides."),
        required=False,
    )

    reminder_interval_days = schema.Int(
        title=_("label_reminder_interval", default="Remind signers every (days; empty or 0: no reminders)"),
        description=_(
            "help_reminder_interval",
            default="A signer who has not signed gets a reminder when the last mail to them is this old. "
            "Sent by the scheduled esign-tick run.",
        ),
        default=3,
        min=0,
        max=365,
        required=False,
    )

    public_url = schema.TextLine(
        title=_("label_public_url", default="The site's public address"),
        description=_(
            "help_public_url",
            default="E.g. https://e-underskrift.regionen.se. The links in mails that the scheduled "
            "esign-tick run sends (reminders, expiry notices) start with it.",
        ),
        required=False,
    )

    retention_years = schema.Int(
        title=_("label_retention_years", default="Keep signed cases for (years; empty: 10)"),
        description=_(
            "help_retention_years",
            default="A signed case cannot be deleted until this many years after the last signature. "
            "Follow the organisation's document management plan (informationshanteringsplan).",
        ),
        default=10,
        min=0,
        max=100,
        required=False,
    )

    pades_level = schema.Choice(
        title=_("label_pades_level", default="Signature level (PAdES)"),
        description=_(
            "help_pades_level",
            default="B-LTA (recommended) keeps signed documents verifiable for decades: every signature "
            "gets a timestamp and the revocation data of its certificates, and the finished document a "
            "document timestamp that is renewed before it expires. B-B has no timestamp at all.",
        ),
        values=("B-B", "B-T", "B-LT", "B-LTA"),
        default="B-LTA",
        required=True,
    )

    tsa_url = schema.TextLine(
        title=_("label_tsa_url", default="Timestamping authority (TSA) address"),
        description=_(
            "help_tsa_url",
            default="An RFC 3161 TSA, e.g. https://tsa.example.se/tsa. Empty: the site's own TSA "
            "(certified by the site CA, also served at <site>/esign-pki/tsa).",
        ),
        required=False,
    )

    tsa_username = schema.TextLine(
        title=_("label_tsa_username", default="TSA user name (optional)"),
        required=False,
    )

    tsa_password = schema.Password(
        title=_("label_tsa_password", default="TSA password (optional)"),
        description=_("help_tsa_password", default="Or set ESIGN_TSA_PASSWORD in the environment."),
        required=False,
    )

    tsa_trust_roots = schema.Text(
        title=_("label_tsa_trust_roots", default="Rotcertifikat för den externa tidsstämpeltjänsten (PEM)"),
        description=_(
            "help_tsa_trust_roots",
            default="Det eller de certifikat (PEM) som den externa tidsstämpeltjänstens certifikat kedjar "
            "till. Utan dem kan tidsstämplarna inte kontrolleras och underskrifter på nivå B-LT och "
            "B-LTA görs inte. Används även när dokument valideras. ESIGN_TSA_TRUST_ROOTS (sökväg till "
            "en PEM-fil) går före.",
        ),
        required=False,
    )

    tsa_certificate_years = schema.Int(
        title=_("label_tsa_certificate_years", default="Validity of the site TSA's certificate (years)"),
        default=6,
        min=1,
        max=20,
        required=True,
    )

    archive_renewal_days = schema.Int(
        title=_(
            "label_archive_renewal_days",
            default="Renew document timestamps this many days before they expire",
        ),
        description=_(
            "help_archive_renewal_days",
            default="The scheduled esign-tick run adds a new archive timestamp to signed documents whose "
            "last timestamp's certificate expires within this many days.",
        ),
        default=365,
        min=1,
        max=3650,
        required=True,
    )

    signature_page = schema.Bool(
        title=_("label_signature_page", default="Add a signature page (Underskriftssida)"),
        description=_(
            "help_signature_page",
            default="On sending, a page with the case number, the document title, the original's SHA-256 "
            "and one signature field per signer is appended to the document.",
        ),
        default=True,
        required=False,
    )

    visible_signatures = schema.Bool(
        title=_("label_visible_signatures", default="Visible signature stamps"),
        description=_(
            "help_visible_signatures",
            default="Each signer's field on the signature page shows name, time, case number and method. "
            "Off: signatures are invisible (the page still lists the signers).",
        ),
        default=True,
        required=False,
    )


class IESignInternal(Interface):
    """Records the add-on keeps for itself (registry prefix ``esign.internal``)."""

    pki_id = schema.ASCIILine(title="Directory name of this site's PKI", required=False)
    hash_salt = schema.ASCIILine(title="Salt for identity lookups", required=False)

"""The one-time signature certificate: Sweden Connect profile and RFC 7773 extension.

A central signing service issues a fresh certificate for every signature. The
certificate names the person the identity provider vouched for (subject
``serialNumber`` with ETSI EN 319 412-1 semantics) and records *how* that person
was authenticated in the RFC 7773 authentication-context extension, so a
verifier years later can see which provider, when, and at which level of
assurance.
"""

from __future__ import annotations

import datetime as dt
import secrets
import xml.etree.ElementTree as ET
from typing import Any, ClassVar

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from esign.plone.signing.keys import SigningKey, SoftwareKey, sign_certificate
from esign.plone.signing.values import PublicationPoints, VerifiedIdentity

__all__ = [
    "AUTH_CONTEXT_OID",
    "SACI_CONTEXT_TYPE",
    "SERVICE_ID",
    "build_signature_certificate",
    "read_authentication_context",
]

#: RFC 7773 id-ce-authContext.
AUTH_CONTEXT_OID = x509.ObjectIdentifier("1.2.752.201.5.1")
#: contextType of a SAMLAuthContext (ELN-0608 / DIGG "Authentication Context Certificate Extension").
SACI_CONTEXT_TYPE = "http://id.elegnamnden.se/auth-cont/1.0/saci"
SERVICE_ID = "esign.plone"

_SACI_NS = SACI_CONTEXT_TYPE
_SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
# AuthContextInfo allows attributes from other namespaces; the authentication
# method (bankid/siths/direct) has no standard slot, so it lives in our own.
_ESIGN_NS = "urn:x-esign-plone:auth-context"
_URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"

# SAML attribute names of the Swedish eID attribute specification (ELN-0604).
_ATTR_PERSONAL_NUMBER = "urn:oid:1.2.752.29.4.13"
_ATTR_HSA_ID = "urn:oid:1.2.752.29.6.2.1"
_ATTR_GIVEN_NAME = "urn:oid:2.5.4.42"
_ATTR_SURNAME = "urn:oid:2.5.4.4"

ET.register_namespace("saci", _SACI_NS)
ET.register_namespace("saml", _SAML_NS)
ET.register_namespace("esign", _ESIGN_NS)


class _AuthenticationContext(core.Sequence):
    _fields: ClassVar[list[tuple]] = [
        ("context_type", core.UTF8String),
        ("context_info", core.UTF8String, {"optional": True}),
    ]


class _AuthenticationContexts(core.SequenceOf):
    _child_spec = _AuthenticationContext


def _xs_datetime(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _saml_auth_context_xml(identity: VerifiedIdentity) -> str:
    ctx = identity.context
    root = ET.Element(f"{{{_SACI_NS}}}SAMLAuthContext")
    ET.SubElement(
        root,
        f"{{{_SACI_NS}}}AuthContextInfo",
        {
            "IdentityProvider": ctx.identity_provider,
            "AuthenticationInstant": _xs_datetime(ctx.authenticated_at),
            "ServiceID": SERVICE_ID,
            "AuthnContextClassRef": ctx.level_of_assurance,
            "AssertionRef": ctx.transaction_ref,
            f"{{{_ESIGN_NS}}}AuthenticationMethod": ctx.method,
        },
    )
    attributes = ET.SubElement(root, f"{{{_SACI_NS}}}IdAttributes")
    if identity.personal_number:
        serial_attr = (_ATTR_PERSONAL_NUMBER, identity.personal_number)
    else:
        serial_attr = (_ATTR_HSA_ID, identity.hsa_id or "")
    mappings = [
        ("2.5.4.5", *serial_attr),
        ("2.5.4.42", _ATTR_GIVEN_NAME, identity.given_name),
        ("2.5.4.4", _ATTR_SURNAME, identity.surname),
    ]
    for rdn_oid, attr_name, value in mappings:
        mapping = ET.SubElement(
            attributes, f"{{{_SACI_NS}}}AttributeMapping", {"Type": "rdn", "Ref": rdn_oid}
        )
        attribute = ET.SubElement(
            mapping, f"{{{_SAML_NS}}}Attribute", {"Name": attr_name, "NameFormat": _URI_FORMAT}
        )
        ET.SubElement(attribute, f"{{{_SAML_NS}}}AttributeValue").text = value
    return ET.tostring(root, encoding="unicode")


def _authentication_context_extension(identity: VerifiedIdentity) -> x509.UnrecognizedExtension:
    value = _AuthenticationContexts(
        [{"context_type": SACI_CONTEXT_TYPE, "context_info": _saml_auth_context_xml(identity)}]
    )
    return x509.UnrecognizedExtension(AUTH_CONTEXT_OID, value.dump())


def as_signing_key(key: SigningKey | CertificateIssuerPrivateKeyTypes) -> SigningKey:
    """A :class:`.keys.SigningKey` for a key given as such or as a ``cryptography`` private key."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return SoftwareKey(key)
    return key


def with_publication(
    builder: x509.CertificateBuilder, publication: PublicationPoints | None, *, issued_by_root: bool = False
) -> x509.CertificateBuilder:
    """Add where revocation data and the issuer's certificate are published.

    End-entity certificates of the issuing CA point at its OCSP responder and its CRL.
    Certificates the root signs (the TSA's) point at the root's OCSP responder only:
    each TSA certificate then gets its status one by one, so a validator years later
    can be given the current status of the newest TSA certificate without that
    answer also speaking for an older, expired one (which would stop the ETSI
    "time slide" from going back to when the older one was valid).
    """
    if publication is None:
        return builder
    if issued_by_root:
        access = [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(publication.root_ocsp_url)
            ),
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(publication.root_certificate_url),
            ),
        ]
        return builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    builder = builder.add_extension(
        x509.CRLDistributionPoints(
            [
                x509.DistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(publication.crl_url)],
                    relative_name=None,
                    reasons=None,
                    crl_issuer=None,
                )
            ]
        ),
        critical=False,
    )
    access = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(publication.ocsp_url)
        ),
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(publication.ca_issuers_url),
        ),
    ]
    return builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)


def signing_certificate_builder(
    *,
    subject: x509.Name,
    public_key,
    issuer_certificate: x509.Certificate,
    validity: dt.timedelta,
    now: dt.datetime,
) -> x509.CertificateBuilder:
    """What every one-time end-entity certificate of the site CA has: a person's or a seal's.

    Random serial, minutes of validity, not a CA, digitalSignature + contentCommitment, key ids.
    """
    try:
        issuer_ski = issuer_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
    except x509.ExtensionNotFound:
        # An imported CA without SKI: derive the key id from its public key (RFC 5280 method 1).
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_certificate.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_certificate.subject)
        .public_key(public_key)
        # 128 random bits, top bit cleared so the DER INTEGER stays positive and ≤ 20 octets.
        .serial_number(secrets.randbits(127) | 1)
        # A minute of slack absorbs clock skew between this host and a verifier.
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                # contentCommitment (nonRepudiation) marks the key as one for signatures a
                # person (or, for a seal, the organisation: ETSI EN 319 412-3) commits to;
                # validators (pyHanko by default) require it for PAdES.
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_id, critical=False)
    )


def build_signature_certificate(
    identity: VerifiedIdentity,
    public_key: CertificatePublicKeyTypes,
    *,
    issuer_certificate: x509.Certificate,
    issuer_key: SigningKey | CertificateIssuerPrivateKeyTypes,
    validity: dt.timedelta,
    organisation: str = "",
    now: dt.datetime | None = None,
    publication: PublicationPoints | None = None,
) -> x509.Certificate:
    """Issue a one-time signature certificate for ``identity``.

    :param identity: the person an identity provider has just verified.
    :param public_key: public half of the key pair made for this one signature.
    :param issuer_certificate: the site's issuing CA certificate.
    :param issuer_key: the issuing CA's key (a :class:`.keys.SigningKey`, file or token).
    :param validity: how long the certificate is valid from ``now``.
    :param organisation: added as subject ``O`` when not empty.
    :param publication: where the CA's OCSP responder and CRL are (put into the certificate).
    :param now: the issuing moment (timezone-aware); defaults to the current time.
    :returns: the signed certificate.
    :raises ValueError: when the identity has neither a personal number nor an HSA-id.
    """
    now = now or dt.datetime.now(dt.UTC)
    name_attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, identity.subject_serial_number),
        x509.NameAttribute(NameOID.GIVEN_NAME, identity.given_name),
        x509.NameAttribute(NameOID.SURNAME, identity.surname),
        x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name),
    ]
    if organisation:
        name_attributes.insert(1, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    builder = signing_certificate_builder(
        subject=x509.Name(name_attributes),
        public_key=public_key,
        issuer_certificate=issuer_certificate,
        validity=validity,
        now=now,
    ).add_extension(_authentication_context_extension(identity), critical=False)
    if identity.email:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(identity.email)]), critical=False
        )
    return sign_certificate(with_publication(builder, publication), as_signing_key(issuer_key))


def read_authentication_context(certificate: x509.Certificate) -> dict[str, Any] | None:
    """Read back the RFC 7773 authentication context of a signature certificate.

    :param certificate: a certificate, typically a signer's from an embedded signature.
    :returns: ``None`` when the certificate has no such extension (e.g. another tool's
        signature), otherwise a dict with ``identity_provider``, ``authenticated_at``
        (timezone-aware datetime or ``None``), ``level_of_assurance``, ``transaction_ref``,
        ``service_id``, ``method`` and ``attributes`` (SAML attribute name → value).
    """
    try:
        extension = certificate.extensions.get_extension_for_oid(AUTH_CONTEXT_OID)
    except x509.ExtensionNotFound:
        return None
    try:
        contexts = _AuthenticationContexts.load(extension.value.value)
        saci = next(
            (
                c
                for c in contexts
                if c["context_type"].native == SACI_CONTEXT_TYPE and c["context_info"].native
            ),
            None,
        )
        if saci is None:
            return None
        xml = saci["context_info"].native
        # Entity declarations have no place in a SAMLAuthContext; refusing any DTD keeps
        # entity-expansion tricks in a foreign certificate away from the parser.
        if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
            return None
        root = ET.fromstring(xml)  # noqa: S314 - DTDs refused above; expat rejects external entities
    except (ValueError, TypeError, ET.ParseError):
        # A malformed extension from some other issuer is "no readable context", not a crash.
        return None
    info = root.find(f"{{{_SACI_NS}}}AuthContextInfo")
    info_attrs = info.attrib if info is not None else {}
    instant = info_attrs.get("AuthenticationInstant")
    authenticated_at = None
    if instant:
        try:
            authenticated_at = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
        except ValueError:
            authenticated_at = None
    attributes: dict[str, str] = {}
    for attribute in root.iter(f"{{{_SAML_NS}}}Attribute"):
        value = attribute.find(f"{{{_SAML_NS}}}AttributeValue")
        attributes[attribute.get("Name", "")] = (value.text or "") if value is not None else ""
    return {
        "identity_provider": info_attrs.get("IdentityProvider", ""),
        "authenticated_at": authenticated_at,
        "level_of_assurance": info_attrs.get("AuthnContextClassRef", ""),
        "transaction_ref": info_attrs.get("AssertionRef", ""),
        "service_id": info_attrs.get("ServiceID", ""),
        "method": info_attrs.get(f"{{{_ESIGN_NS}}}AuthenticationMethod", ""),
        "attributes": attributes,
    }

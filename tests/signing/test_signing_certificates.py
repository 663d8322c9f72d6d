"""The one-time signature certificate follows the Sweden Connect profile and RFC 7773."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from esign.plone.errors import PKIError
from esign.plone.signing import SitePKI, VerifiedIdentity, read_authentication_context
from esign.plone.signing.certificates import AUTH_CONTEXT_OID, SACI_CONTEXT_TYPE
from helpers.people import make_identity


# RFC 7773's ASN.1, written out again here so the test does not trust the module's own schema.
class _Context(core.Sequence):
    _fields: ClassVar[list[tuple]] = [
        ("type", core.UTF8String),
        ("info", core.UTF8String, {"optional": True}),
    ]


class _Contexts(core.SequenceOf):
    _child_spec = _Context


NOW = dt.datetime(2026, 3, 1, 9, 31, tzinfo=dt.UTC)


def _issue(pki: SitePKI, identity: VerifiedIdentity, **kw) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    kw.setdefault("validity", dt.timedelta(minutes=10))
    return pki.issue_one_time_certificate(identity, key.public_key(), now=NOW, **kw)


def _subject(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [a.value for a in certificate.subject.get_attributes_for_oid(oid)]


def test_the_subject_names_the_person_by_personal_number(pki: SitePKI, tolvan: VerifiedIdentity) -> None:
    certificate = _issue(pki, tolvan, organisation="Exempelkommunen")
    assert _subject(certificate, NameOID.SERIAL_NUMBER) == ["PNOSE-191212121212"]
    assert _subject(certificate, NameOID.GIVEN_NAME) == ["Tolvan"]
    assert _subject(certificate, NameOID.SURNAME) == ["Tolvansson"]
    assert _subject(certificate, NameOID.COMMON_NAME) == ["Tolvan Tolvansson"]
    assert _subject(certificate, NameOID.COUNTRY_NAME) == ["SE"]
    assert _subject(certificate, NameOID.ORGANIZATION_NAME) == ["Exempelkommunen"]
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["tolvan@example.se"]
    certificate.verify_directly_issued_by(pki.issuing_certificate)


def test_staff_without_personal_number_are_named_by_hsa_id(pki: SitePKI) -> None:
    nurse = make_identity("Sara", "Sjuksköterska", None, method="siths", hsa_id="SE2321000016-1003")
    certificate = _issue(pki, nurse)
    assert _subject(certificate, NameOID.SERIAL_NUMBER) == ["SE2321000016-1003"]
    assert _subject(certificate, NameOID.ORGANIZATION_NAME) == []
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    context = read_authentication_context(certificate)
    assert context["method"] == "siths"
    assert context["attributes"]["urn:oid:1.2.752.29.6.2.1"] == "SE2321000016-1003"


def test_an_identity_without_any_person_id_gets_no_certificate(pki: SitePKI) -> None:
    with pytest.raises(PKIError):
        _issue(pki, make_identity("No", "Body", None))


def test_the_key_may_only_make_signatures_a_person_commits_to(pki: SitePKI, tolvan: VerifiedIdentity) -> None:
    usage = _issue(pki, tolvan).extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.content_commitment
    assert not (usage.value.key_cert_sign or usage.value.key_encipherment or usage.value.crl_sign)


def test_the_certificate_lives_for_minutes_from_the_signing_moment(
    pki: SitePKI, tolvan: VerifiedIdentity
) -> None:
    certificate = _issue(pki, tolvan, validity=dt.timedelta(minutes=5))
    assert certificate.not_valid_before_utc == NOW - dt.timedelta(minutes=1)
    assert certificate.not_valid_after_utc == NOW + dt.timedelta(minutes=5)


def test_every_certificate_gets_its_own_random_serial(pki: SitePKI, tolvan: VerifiedIdentity) -> None:
    serials = {_issue(pki, tolvan).serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(96 < s.bit_length() <= 127 for s in serials)


def test_the_authentication_context_records_provider_time_level_and_transaction(
    pki: SitePKI, tolvan: VerifiedIdentity
) -> None:
    context = read_authentication_context(_issue(pki, tolvan))
    assert context == {
        "identity_provider": "http://id.example.se/bankid",
        "authenticated_at": dt.datetime(2026, 3, 1, 9, 30, 15, tzinfo=dt.UTC),
        "level_of_assurance": "http://id.elegnamnden.se/loa/1.0/loa3",
        "transaction_ref": "order-ref-1",
        "service_id": "esign.plone",
        "method": "bankid",
        "attributes": {
            "urn:oid:1.2.752.29.4.13": "191212121212",
            "urn:oid:2.5.4.42": "Tolvan",
            "urn:oid:2.5.4.4": "Tolvansson",
        },
    }


def test_the_authentication_context_is_rfc7773_der_with_saci_xml(pki: SitePKI) -> None:
    odd = make_identity("Åsa", "Öberg <&>", "190101010101", transaction_ref='ref "with" <xml> & quotes')
    extension = _issue(pki, odd).extensions.get_extension_for_oid(AUTH_CONTEXT_OID)
    assert not extension.critical
    (context,) = _Contexts.load(extension.value.value)
    assert context["type"].native == SACI_CONTEXT_TYPE
    xml = context["info"].native
    assert xml.startswith("<saci:SAMLAuthContext") and "&lt;xml&gt;" in xml
    parsed = read_authentication_context(_issue(pki, odd))
    assert parsed["transaction_ref"] == 'ref "with" <xml> & quotes'
    assert parsed["attributes"]["urn:oid:2.5.4.4"] == "Öberg <&>"


def test_a_certificate_from_elsewhere_has_no_authentication_context(pki: SitePKI) -> None:
    assert read_authentication_context(pki.issuing_certificate) is None

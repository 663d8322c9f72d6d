"""An external TSA, certified by a CA the site does not know, at B-LT and B-LTA.

The site's own publication points are a server that answers nothing and records every
request: the site CA's status must come from the process itself, whatever pyHanko
fetches. The external TSA, its OCSP responders and CRLs are real HTTP services
(:class:`helpers.trustserver.TrustServer`) of a throwaway CA.
"""

from __future__ import annotations

import io

import pytest
from asn1crypto import ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import extract_certificate_info
from pyhanko.sign.validation.dss import DocumentSecurityStore

from esign.plone.errors import InvalidInput, SigningError
from esign.plone.signing import SitePKI, ltv, sign_pdf_bytes
from esign.plone.signing.reports import assess_pdf
from esign.plone.signing.revocation import MemoryRegistry
from esign.plone.signing.values import PublicationPoints, SigningProfile
from helpers.people import ORGANISATION, PASSPHRASE
from helpers.trustserver import ThrowawayCA, TrustServer, signature_timestamp_token


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def home():
    """Where the site CA says it publishes (OCSP, CRLs): nothing answers, every request is counted."""
    with TrustServer() as server:
        yield server


@pytest.fixture(scope="module")
def site(home, tmp_path_factory) -> SitePKI:
    directory = tmp_path_factory.mktemp("external-tsa-site") / "pki"
    publication = PublicationPoints.under(home.url)
    pki = SitePKI.create(directory, passphrase=PASSPHRASE, organisation=ORGANISATION, publication=publication)
    pki = pki.bound(registry=MemoryRegistry(), publication=publication)
    return pki.issue_tsa(directory, passphrase=PASSPHRASE, years=12)


@pytest.fixture(scope="module")
def foreign():
    """A TSA of another CA, with that CA's OCSP responders and CRLs, over HTTP."""
    ca, server = TrustServer.of_a_new_ca()
    with server:
        yield ca, server


def _sign(data: bytes, who, *, site: SitePKI, foreign, trust: bool) -> bytes:
    ca, server = foreign
    profile = SigningProfile(level="B-LT", fetch_revocation=True, tsa_trust_roots=(ca.root,) if trust else ())
    timestamper = ltv.http_timestamper(f"{server.url}/esign-pki/tsa")
    return sign_pdf_bytes(data, identity=who, pki=site, profile=profile, timestamper=timestamper)[0]


def _stamp(data: bytes, *, site: SitePKI, foreign) -> bytes:
    ca, server = foreign
    output = io.BytesIO()
    ltv.add_document_timestamp(
        data,
        output,
        pki=site,
        timestamper=ltv.http_timestamper(f"{server.url}/esign-pki/tsa"),
        allow_fetching=True,
        extra_trust_roots=(ca.root,),
    )
    return output.getvalue()


@pytest.fixture(scope="module")
def signed(site, foreign, home, documents, tolvan, agda) -> bytes:
    data = _sign(documents.data("reportlab"), tolvan, site=site, foreign=foreign, trust=True)
    data = _sign(data, agda, site=site, foreign=foreign, trust=True)
    return _stamp(data, site=site, foreign=foreign)


def _dss_ocsp_signers(data: bytes) -> set[str]:
    """Common names of whoever signed the OCSP responses in the document's DSS."""
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(data), strict=False))
    names = set()
    for reference in dss.ocsps:
        response = ocsp.OCSPResponse.load(reference.get_object().data)
        basic = response.basic_ocsp_response
        certs = basic["certs"] or []
        responder = basic["tbs_response_data"]["responder_id"]
        for cert in certs:
            if responder.name == "by_key" and cert.public_key.sha1 == responder.chosen.native:
                names.add(cert.subject.native["common_name"])
    return names


def _dss_crl_issuers(data: bytes) -> set[str]:
    from asn1crypto import crl

    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(data), strict=False))
    return {crl.CertificateList.load(r.get_object().data).issuer.native["common_name"] for r in dss.crls}


def test_signatures_and_the_document_timestamp_come_from_the_external_tsa_and_pass(signed, site, foreign):
    ca, _server = foreign
    reader = PdfFileReader(io.BytesIO(signed), strict=False)
    tsa = _asn1(ca.tsa_certificate)
    for embedded in reader.embedded_regular_signatures:
        token = signature_timestamp_token(embedded)
        assert extract_certificate_info(token["content"]).signer_cert.dump() == tsa.dump()
    (stamp,) = [s for s in reader.embedded_signatures if s.sig_object.get("/Type") == "/DocTimeStamp"]
    assert stamp.signer_cert.dump() == tsa.dump()

    report = assess_pdf(signed, trust_roots=[site.root_certificate], timestamp_trust_roots=[ca.root])
    assert [(s.indication, s.level) for s in report.signatures] == [("TOTAL-PASSED", "B-LTA")] * 2
    assert [s.indication for s in report.document_timestamps] == ["TOTAL-PASSED"]


def test_the_dss_holds_the_external_chains_status_and_the_site_cas_made_in_process(signed, site, foreign):
    _ca, server = foreign
    # The external TSA's certificate: the external root's OCSP responder, fetched over HTTP.
    assert ("POST", "/esign-pki/root-ocsp") in server.requests
    assert "Testkommunen Root CA" in _dss_ocsp_signers(signed)
    # The one-time certificates: the site's issuing CA's responder, in process.
    site_issuing = site.issuing_certificate.subject.rfc4514_string()
    assert any(name in site_issuing for name in _dss_ocsp_signers(signed))


def test_the_site_never_asks_its_own_publication_points(signed, home):
    assert home.requests == []


def test_an_archival_renewal_with_the_external_tsa_adds_a_second_document_timestamp_that_passes(
    signed, site, foreign, home
):
    ca, server = foreign
    output = io.BytesIO()
    ltv.renew_archive_timestamp(
        signed,
        output,
        pki=site,
        timestamper=ltv.http_timestamper(f"{server.url}/esign-pki/tsa"),
        allow_fetching=True,
        extra_trust_roots=(ca.root,),
    )
    report = assess_pdf(
        output.getvalue(), trust_roots=[site.root_certificate], timestamp_trust_roots=[ca.root]
    )
    assert [s.indication for s in report.document_timestamps] == ["TOTAL-PASSED"] * 2
    assert [(s.indication, s.level) for s in report.signatures] == [("TOTAL-PASSED", "B-LTA")] * 2
    assert home.requests == []


def _foreign_signature(ca: ThrowawayCA, data: bytes) -> bytes:
    """``data`` signed (B-B) by a person certified by the external CA itself."""
    from asn1crypto import keys as asn1_keys
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    certificate, key = ca.issue("Mallory Mallorysson")
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = signers.SimpleSigner(
        signing_cert=_asn1(certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(pkcs8),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(ca.issuing), _asn1(ca.root)]),
    )
    output = io.BytesIO()
    signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(data), strict=False),
        signers.PdfSignatureMetadata(field_name="Mallory"),
        signer=signer,
        output=output,
    )
    return output.getvalue()


def test_trusting_the_external_tsa_does_not_make_its_cas_signatures_trusted(signed, site, foreign, documents):
    ca, _server = foreign
    without = assess_pdf(signed, trust_roots=[site.root_certificate])
    assert {s.indication for s in without.document_timestamps} == {"INDETERMINATE"}

    theirs = _foreign_signature(ca, documents.data("reportlab"))
    as_timestamp_root = assess_pdf(
        theirs, trust_roots=[site.root_certificate], timestamp_trust_roots=[ca.root], allow_fetching=True
    )
    assert [s.indication for s in as_timestamp_root.signatures] == ["INDETERMINATE"]
    as_signer_root = assess_pdf(theirs, trust_roots=[ca.root], allow_fetching=True)
    assert [s.indication for s in as_signer_root.signatures] == ["TOTAL-PASSED"]


def test_without_the_external_root_a_b_lt_signature_is_refused_and_nothing_asks_the_site(
    site, foreign, home, documents, tolvan
):
    with pytest.raises(SigningError):
        _sign(documents.data("reportlab"), tolvan, site=site, foreign=foreign, trust=False)
    assert home.requests == []


@pytest.mark.parametrize(
    "text",
    ["", "hello", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ids=["empty", "not-pem", "broken-certificate"],
)
def test_trust_roots_that_are_not_pem_certificates_are_refused(text):
    with pytest.raises(InvalidInput, match="PEM"):
        ltv.load_trust_roots(text)


def test_a_private_key_pasted_beside_the_certificate_is_refused(foreign):
    ca, _server = foreign
    pem = ca.root.public_bytes(serialization.Encoding.PEM)
    assert ltv.load_trust_roots(pem) == (ca.root,)
    with pytest.raises(InvalidInput):
        ltv.load_trust_roots(pem + b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")

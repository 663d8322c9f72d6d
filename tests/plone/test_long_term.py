"""Long-term validity of a signed case: B-LTA, the site CA's TSA/OCSP/CRL doors, ten years later.

A two-signer case is signed through the add-on (signature page, visible stamps,
B-T signatures with revocation data, a document timestamp on completion); then
independent validators look at it: ``pdfsig`` (asking the site's OCSP responder over
HTTP), ``qpdf --check``, ``pdftotext``, ``openssl`` and pyHanko's AdES LTA validation
offline — today, and with the clock moved ten years on, after one archival renewal.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import urllib.error
import urllib.request

import pytest
import transaction
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from freezegun import freeze_time
from plone import api
from plone.namedfile.file import NamedBlobFile

from esign.plone import api as esign
from esign.plone.signing.ltv import current_status
from esign.plone.signing.reports import assess_pdf
from esign.plone.workflow import lifecycle
from helpers.site import ANNA, BERTIL, identity_of
from helpers.validators import pdfsig, qpdf_check

NOW = dt.datetime.now(dt.UTC)


def _signed_case(portal, pdf_bytes, *, title="Avtal om vårdtjänster för Åsa"):
    with api.env.adopt_roles(["Manager"]):
        case = api.content.create(
            container=portal,
            type="SigningCase",
            title=title,
            case_number="RS 2026-0815",
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(ANNA), dict(BERTIL)],
        )
        esign.send_case(case)
        for row in (ANNA, BERTIL):
            record = next(r for r in case.signer_records if r.personal_number == row["personal_number"])
            esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))
    return case


def _pdftotext(path, *, last_page: bool = True) -> str:
    args = ["pdftotext", "-layout"]
    if last_page:
        pages = int(
            next(
                line.split()[-1]
                for line in subprocess.run(
                    ["pdfinfo", str(path)], capture_output=True, text=True
                ).stdout.splitlines()
                if line.startswith("Pages:")
            )
        )
        args += ["-f", str(pages), "-l", str(pages)]
    return subprocess.run([*args, str(path), "-"], capture_output=True, text=True, check=True).stdout


def _outcomes(
    data: bytes, root: x509.Certificate, at: dt.datetime | None = None, status: dict | None = None
) -> list[tuple[str, str, str]]:
    report = assess_pdf(data, trust_roots=[root], validation_time=at, **(status or {}))
    return [(s.signer_name, s.indication, s.level) for s in report.signatures]


@pytest.fixture()
def pki_files():
    """Put the site PKI's files back after a test that moved the clock (a TSA certificate from the future)."""
    from esign.plone import sitepki

    directory = sitepki.pki_directory()
    saved = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    yield directory
    for p in directory.iterdir():
        if p.is_file() and p.name not in saved:
            p.unlink()
    for name, data in saved.items():
        (directory / name).write_bytes(data)
    sitepki._forget()


@pytest.fixture()
def signed(functional_portal, pdf_bytes, tmp_path):
    case = _signed_case(functional_portal, pdf_bytes)
    transaction.commit()  # the OCSP responder (another thread) answers from committed data
    path = tmp_path / "signed.pdf"
    path.write_bytes(case.signed_document.data)
    return case, path


def test_a_two_signer_case_is_b_lta_with_a_signature_page_and_validates_independently(signed):
    case, path = signed
    assert api.content.get_state(case) == "signed"
    root = esign.site_pki().root_certificate

    # pdfsig asks the site's OCSP responder (the address in every certificate) over HTTP.
    report = pdfsig(path, root)
    people = [s for s in report if s["signer"] in (ANNA["name"], BERTIL["name"])]
    assert [s["field"] for s in people] == ["Underskrift1", "Underskrift2"]
    for signature in people:
        assert signature["signature"] == "Signature is Valid.", signature
        assert signature["certificate"] == "Certificate is Trusted.", signature
    ok, output = qpdf_check(path)
    assert ok, output

    page = _pdftotext(path)
    assert "Underskriftssida" in page
    assert "RS 2026-0815" in page and "Åsa" in page
    assert page.count("Signerat med BankID") == 2
    assert ANNA["name"] in page and BERTIL["name"] in page

    outcomes = _outcomes(path.read_bytes(), root)
    assert outcomes == [
        (ANNA["name"], "TOTAL-PASSED", "B-LTA"),
        (BERTIL["name"], "TOTAL-PASSED", "B-LTA"),
    ]
    assert case.archive_timestamp_expiry > NOW + dt.timedelta(days=365 * 5)


def test_ten_years_later_after_one_archival_renewal_the_signatures_still_pass(signed, pki_files):
    case, path = signed
    pki = esign.site_pki()
    root = pki.root_certificate
    # Long after the one-time certificates (minutes) and before the TSA certificate (years)
    # expires, the scheduled tick renews the archive timestamp — once.
    renewal = case.archive_timestamp_expiry - dt.timedelta(days=200)
    with freeze_time(renewal, tick=True):
        assert lifecycle.renew_archive_timestamps(now=renewal) == [case.UID()]
        assert lifecycle.renew_archive_timestamps(now=renewal) == []
    renewed = case.signed_document.data
    assert len(renewed) > path.stat().st_size
    # The renewal came from a fresh TSA certificate that outlives the old one by years.
    assert case.archive_timestamp_expiry > renewal + dt.timedelta(days=365 * 5)

    ten_years = NOW + dt.timedelta(days=3653)
    # Offline: nothing is fetched. The last archive timestamp is checked "now", so the
    # validator is handed its TSA certificate's status of that day, as the site's root
    # OCSP responder gives it (what the Validera pages hand it); everything older comes
    # from the document's DSS.
    with freeze_time(ten_years):
        status = current_status(esign.site_pki(), renewed, now=ten_years)
        outcomes = _outcomes(renewed, root, ten_years, status)
    assert [o[1] for o in outcomes] == ["TOTAL-PASSED", "TOTAL-PASSED"], outcomes

    # Without the renewal, ten years on the first document timestamp's TSA certificate has
    # expired and nothing proves the signatures existed before: not a pass.
    with freeze_time(ten_years):
        unrenewed = _outcomes(
            path.read_bytes(),
            root,
            ten_years,
            current_status(esign.site_pki(), path.read_bytes(), now=ten_years),
        )
    assert all(o[1] != "TOTAL-PASSED" for o in unrenewed), unrenewed

    # A tampered copy fails today and ten years on.
    data = bytearray(renewed)
    at = data.index(b"stream") + 12
    data[at] ^= 0x01
    assert all(o[1] == "TOTAL-FAILED" for o in _outcomes(bytes(data), root)), _outcomes(bytes(data), root)


def _get(url: str, data: bytes | None = None, content_type: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(  # noqa: S310
        url, data=data, headers={"Content-Type": content_type} if content_type else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http on loopback)
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def _openssl_ocsp(tmp_path, certificate: x509.Certificate, issuer: x509.Certificate, root, url: str) -> str:
    pem = serialization.Encoding.PEM
    (tmp_path / "leaf.pem").write_bytes(certificate.public_bytes(pem))
    (tmp_path / "issuer.pem").write_bytes(issuer.public_bytes(pem))
    (tmp_path / "root.pem").write_bytes(root.public_bytes(pem))
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(tmp_path / "issuer.pem"),
            "-cert",
            str(tmp_path / "leaf.pem"),
            "-url",
            url,
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-no_nonce",
        ],
        capture_output=True,
        text=True,
    )
    return result.stdout + result.stderr


def test_the_publication_points_answer_and_a_revocation_shows_in_ocsp_and_the_crl(signed, tmp_path):
    case, _ = signed
    pki = esign.site_pki()
    record = case.signer_records[0]
    certificate = pki.registry.certificate(int(record.certificate_serial, 16))
    assert certificate is not None
    access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ocsp_url = next(
        a.access_location.value for a in access if a.access_method.dotted_string == "1.3.6.1.5.5.7.48.1"
    )
    crl_url = (
        certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name[0].value
    )
    assert ocsp_url == pki.publication.ocsp_url

    assert ": good" in _openssl_ocsp(
        tmp_path, certificate, pki.issuing_certificate, pki.root_certificate, ocsp_url
    )
    status, content_type, body = _get(crl_url)
    assert status == 200 and content_type == "application/pkix-crl"
    assert (
        x509.load_der_x509_crl(body).get_revoked_certificate_by_serial_number(certificate.serial_number)
        is None
    )

    esign.revoke_certificate(certificate.serial_number, reason="key_compromise")
    transaction.commit()
    answer = _openssl_ocsp(tmp_path, certificate, pki.issuing_certificate, pki.root_certificate, ocsp_url)
    assert ": revoked" in answer and "keyCompromise" in answer, answer
    crl = x509.load_der_x509_crl(_get(crl_url)[2])
    assert crl.is_signature_valid(pki.issuing_certificate.public_key())
    assert crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None

    # The root CRL, the CA certificates and the TSA over HTTP; a GET to the TSA is refused.
    base = pki.publication.ocsp_url.rsplit("/", 1)[0]
    status, _, body = _get(f"{base}/root.crl")
    assert status == 200 and x509.load_der_x509_crl(body).is_signature_valid(
        pki.root_certificate.public_key()
    )
    status, _, body = _get(f"{base}/root.crt")
    assert status == 200 and x509.load_der_x509_certificate(body) == pki.root_certificate
    assert _get(f"{base}/tsa")[0] == 405
    assert _get(f"{base}/nothing-here")[0] == 404


def test_the_site_tsa_answers_rfc3161_over_http_for_pyhankos_client(signed):
    import asyncio

    from pyhanko.sign.timestamps import HTTPTimeStamper

    pki = esign.site_pki()
    base = pki.publication.ocsp_url.rsplit("/", 1)[0]
    token = asyncio.run(HTTPTimeStamper(f"{base}/tsa").async_timestamp(b"\x11" * 32, "sha256"))
    signer_info = token["content"]["signer_infos"][0]
    tsa_serial = signer_info["sid"].chosen["serial_number"].native
    assert tsa_serial == pki.tsa_certificate.serial_number
    # Garbage is answered as an RFC 3161 rejection, not a server error.
    status, content_type, _ = _get(f"{base}/tsa", b"not a request", "application/timestamp-query")
    assert status == 200 and content_type == "application/timestamp-reply"

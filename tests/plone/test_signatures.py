"""What the officer and an independent validator see of the signatures."""

import os
from pathlib import Path

import pytest
import transaction
from cryptography.hazmat.primitives import serialization
from plone import api
from plone.app.testing import login
from plone.namedfile.file import NamedBlobFile

from esign.plone import api as esign
from esign.plone.signing import pki as pki_module
from helpers import pdfs
from helpers.site import ANNA, BERTIL, identity_of
from helpers.validators import pdfsig, qpdf_check


def _sign_all(case, rows=(ANNA, BERTIL)):
    esign.send_case(case)
    for row in rows:
        record = next(r for r in case.signer_records if r.personal_number == row["personal_number"])
        esign.sign_case(case, signer_id=record.signer_id, identity=identity_of(row))


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    return pdfs.TestDocuments(tmp_path_factory.mktemp("docs"))


@pytest.mark.parametrize("kind", pdfs.GOOD_KINDS)
def test_pdfsig_and_qpdf_accept_what_the_addon_signs(functional_portal, documents, kind, tmp_path):
    with api.env.adopt_roles(["Manager"]):
        case = api.content.create(
            container=functional_portal,
            type="SigningCase",
            title="Avtal",
            information_class="K2",
            document=NamedBlobFile(documents.data(kind), filename="avtal.pdf", contentType="application/pdf"),
            signers=[dict(ANNA), dict(BERTIL)],
        )
        _sign_all(case)
    # pdfsig asks the site's OCSP responder, which answers from committed data.
    transaction.commit()
    out = tmp_path / "signed.pdf"
    out.write_bytes(case.signed_document.data)
    report = pdfsig(out, esign.site_pki().root_pem())
    ours = [s for s in report if s["signer"] in (ANNA["name"], BERTIL["name"])]
    assert [s["signer"] for s in ours] == [ANNA["name"], BERTIL["name"]]
    for signature in report:
        assert signature["signature"] == "Signature is Valid.", signature
    for signature in ours:
        assert signature["certificate"] == "Certificate is Trusted.", signature
        assert signature["type"] == "ETSI.CAdES.detached"
    # B-LTA: after the signatures come the DSS and the document timestamp.
    assert pdfsig(out, esign.site_pki().root_pem(), timestamps=True)[-1]["field"].startswith("Timestamp-")
    ok, output = qpdf_check(out)
    assert ok, output


def test_the_signatures_page_lists_each_signer_as_valid_and_trusted(portal, officer, make_case):
    login(portal, "officer")
    case = make_case()
    _sign_all(case)
    html = case.restrictedTraverse("@@signatures")()
    assert html.count('data-ok="yes"') == 2
    assert "PNOSE-191212121212" in html and "PNOSE-194911172296" in html
    assert "Ogiltig" not in html


def test_a_tampered_signed_document_is_reported_as_changed(portal, officer, make_case):
    login(portal, "officer")
    case = make_case()
    _sign_all(case)
    data = bytearray(case.signed_document.data)
    # Change one byte inside the first stream of the original revision: the
    # structure still parses, but every signature covers that byte.
    at = data.index(b"stream") + 12
    data[at] ^= 0x01
    case.signed_document = NamedBlobFile(bytes(data), filename="x.pdf", contentType="application/pdf")
    report = esign.validate_case(case)
    assert not report.all_valid
    assert not any(s.intact for s in report.signatures)
    html = case.restrictedTraverse("@@signatures")()
    assert 'data-ok="no"' in html and 'data-ok="yes"' not in html


def test_the_one_time_key_is_in_neither_the_database_nor_on_disk(
    functional_portal, pdf_bytes, monkeypatch, tmp_path
):
    """Record each generated one-time key (the real generator still runs), then look for it."""
    generated = []
    real = pki_module.generate_private_key

    def recording(algorithm):
        key = real(algorithm)
        generated.append(key)
        return key

    monkeypatch.setattr("esign.plone.signing.pades.generate_private_key", recording)
    monkeypatch.chdir(tmp_path)
    user = api.user.create(email="officer@example.se", username="officer", password="officer-secret-1")
    api.user.grant_roles(user=user, roles=["SigningOfficer"])
    with api.env.adopt_user(username="officer"):
        case = api.content.create(
            container=functional_portal,
            type="SigningCase",
            title="Avtal",
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="a.pdf", contentType="application/pdf"),
            signers=[dict(ANNA), dict(BERTIL)],
        )
        _sign_all(case)
    transaction.commit()
    assert len(generated) == 2

    needles = []
    for key in generated:
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        needles += [scalar, der, scalar.hex().encode()]

    storage = functional_portal._p_jar.db().storage
    records = b"".join(record.data or b"" for txn in storage.changes.iterator() for record in txn)
    assert records  # the case really is in the storage we search
    haystacks = {"ZODB records": records, "signed PDF": case.signed_document.data}
    for root in {
        tmp_path,
        Path(os.environ["ESIGN_PKI_DIR"]),
        Path(case.signed_document._blob.committed()).parent,
    }:
        for path in Path(root).rglob("*"):
            if path.is_file():
                haystacks[str(path)] = path.read_bytes()
    for where, data in haystacks.items():
        for needle in needles:
            assert needle not in data, f"one-time key material found in {where}"

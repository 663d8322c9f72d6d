"""EN 319 102-1 validation reports and the ETSI TS 119 102-2 XML, offline.

Documents are made by the engine itself: a site PKI that names its OCSP responder and
CRLs in every certificate, the site TSA called in process, B-B/B-T/B-LT signatures and
the B-LTA document timestamp. Nothing here may reach the network: a guard fails any
connection attempt.
"""

from __future__ import annotations

import datetime as dt
import io
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate

from esign.plone.errors import (
    CorruptPdf,
    DocumentTooLarge,
    EncryptedPdf,
    ESignError,
    InvalidDocument,
    NotAPdf,
)
from esign.plone.signing import SitePKI, ltv, sign_pdf_bytes
from esign.plone.signing.reports import EXPLANATIONS, AssessmentReport, assess_pdf
from esign.plone.signing.revocation import MemoryRegistry
from esign.plone.signing.values import PublicationPoints, SigningProfile
from helpers.pdfs import FOREIGN_SIGNER, PAGE_TEXT
from helpers.people import ORGANISATION, PASSPHRASE
from helpers.validators import pdfsig

VR = "{http://uri.etsi.org/19102/v1.2.1#}"
TEN_YEARS = dt.timedelta(days=3650)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Validation is offline: any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> SitePKI:
    """A site PKI as an installed site has one: publication points, a registry, a TSA (12 years)."""
    directory = tmp_path_factory.mktemp("ltv-site") / "pki"
    publication = PublicationPoints.under("https://esign.example.se")
    pki = SitePKI.create(directory, passphrase=PASSPHRASE, organisation=ORGANISATION, publication=publication)
    pki = pki.bound(registry=MemoryRegistry(), publication=publication)
    return pki.issue_tsa(directory, passphrase=PASSPHRASE, years=12)


@pytest.fixture(scope="module")
def signed(site, documents, tolvan, agda) -> dict[str, bytes]:
    """The test document at each PAdES level: one signer, and B-LTA with two signers."""
    data = documents.data("reportlab")
    timestamper = ltv.local_timestamper(site)

    def sign(source: bytes, who, level: str) -> bytes:
        return sign_pdf_bytes(
            source,
            identity=who,
            pki=site,
            profile=SigningProfile(level=level),
            timestamper=None if level == "B-B" else timestamper,
        )[0]

    def stamp(source: bytes) -> bytes:
        output = io.BytesIO()
        ltv.add_document_timestamp(source, output, pki=site, timestamper=timestamper)
        return output.getvalue()

    documents_by_level = {level: sign(data, tolvan, level) for level in ("B-B", "B-T", "B-LT")}
    documents_by_level["B-LTA"] = stamp(documents_by_level["B-LT"])
    documents_by_level["two signers"] = stamp(sign(sign(data, tolvan, "B-LT"), agda, "B-LT"))
    return documents_by_level


def status(site: SitePKI, data: bytes | None = None, at: dt.datetime | None = None) -> dict:
    """The revocation data the site hands its own validator at ``at`` (``ltv.current_status``)."""
    return ltv.current_status(site, data, now=at)


def tampered(data: bytes) -> bytes:
    """One letter of the page text changed, inside every signature's byte range."""
    changed = bytearray(data)
    changed[changed.index(PAGE_TEXT.encode()) + 5] ^= 0x01
    return bytes(changed)


def main_indications(xml: bytes) -> list[str]:
    root = ET.fromstring(xml)  # noqa: S314 - the report our own code made
    assert root.tag == f"{VR}ValidationReport"
    return [
        report.find(f"{VR}SignatureValidationStatus/{VR}MainIndication").text.rsplit(":", 1)[-1]
        for report in root.findall(f"{VR}SignatureValidationReport")
    ]


def outcomes(report: AssessmentReport) -> list[tuple[str, str | None]]:
    return [(s.indication, s.sub_indication) for s in report.signatures]


# -- long-term validation ---------------------------------------------------------------------------


def test_a_b_lta_document_passes_offline_with_nothing_but_what_it_carries(site, signed, tolvan):
    report = assess_pdf(signed["B-LTA"], trust_roots=[site.root_certificate])
    (signature,) = report.signatures
    assert (signature.indication, signature.sub_indication) == ("TOTAL-PASSED", None)
    assert signature.level == "B-LTA"
    assert signature.validation_process == "LTA"
    assert signature.explanation == "Underskriften är giltig."
    assert signature.signer_name == tolvan.common_name
    assert signature.signer_serial_number == "PNOSE-191212121212"
    assert signature.time_source == "timestamp"
    assert abs(signature.signing_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    (stamp,) = report.document_timestamps
    assert stamp.indication == "TOTAL-PASSED"
    assert stamp.signer_name.endswith("Time Stamping Authority")
    assert report.all_passed and report.summary == "Alla underskrifter är giltiga."


def test_a_b_lta_document_still_passes_ten_years_ahead_with_the_sites_current_crls(site, signed):
    later = dt.datetime.now(dt.UTC) + TEN_YEARS
    report = assess_pdf(
        signed["B-LTA"],
        trust_roots=[site.root_certificate],
        validation_time=later,
        **status(site, signed["B-LTA"], later),
    )
    assert outcomes(report) == [("TOTAL-PASSED", None)]
    assert report.signatures[0].level == "B-LTA"
    assert [s.indication for s in report.document_timestamps] == ["TOTAL-PASSED"]
    assert report.validation_time == later


def test_ten_years_ahead_without_the_tsas_current_status_the_outcome_is_indeterminate(site, signed):
    # The last document timestamp is checked at the validation time: in ten years its TSA's
    # status must come from somewhere (the site's CRL of that day), or nothing can be said.
    later = dt.datetime.now(dt.UTC) + TEN_YEARS
    report = assess_pdf(signed["B-LTA"], trust_roots=[site.root_certificate], validation_time=later)
    assert [s.indication for s in report.signatures] == ["INDETERMINATE"]


@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LT", "B-LTA"])
def test_the_level_reached_is_read_from_what_the_file_holds(site, signed, level):
    report = assess_pdf(signed[level], trust_roots=[site.root_certificate], **status(site, signed[level]))
    assert [s.level for s in report.signatures] == [level]
    assert [s.time_source for s in report.signatures] == ["claimed" if level == "B-B" else "timestamp"]
    assert len(report.document_timestamps) == (1 if level == "B-LTA" else 0)


def test_b_b_and_b_t_pass_while_the_certificate_is_valid_and_the_ca_vouches_for_it(site, signed):
    for level, process in (("B-B", "Basic"), ("B-T", "LTVM")):
        report = assess_pdf(signed[level], trust_roots=[site.root_certificate], **status(site, signed[level]))
        assert outcomes(report) == [("TOTAL-PASSED", None)], level
        assert report.signatures[0].validation_process == process


def test_without_the_cas_revocation_status_a_b_b_signature_cannot_be_decided(site, signed):
    # The one-time certificate names the site's OCSP responder and CRL; offline and
    # without them, the chain cannot be checked.
    report = assess_pdf(signed["B-B"], trust_roots=[site.root_certificate])
    assert outcomes(report) == [("INDETERMINATE", "CERTIFICATE_CHAIN_GENERAL_FAILURE")]


def test_a_b_b_signature_whose_one_time_certificate_has_expired_is_indeterminate(site, signed):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    report = assess_pdf(
        signed["B-B"],
        trust_roots=[site.root_certificate],
        validation_time=later,
        **status(site, signed["B-B"], later),
    )
    assert outcomes(report) == [("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE")]
    assert "gått ut" in report.signatures[0].explanation
    assert not report.all_passed
    assert report.summary == "Minst en underskrift kunde inte bekräftas som giltig."


def test_a_b_t_signature_keeps_passing_after_expiry_thanks_to_its_timestamp(site, signed):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    report = assess_pdf(
        signed["B-T"],
        trust_roots=[site.root_certificate],
        validation_time=later,
        **status(site, signed["B-T"], later),
    )
    assert outcomes(report) == [("TOTAL-PASSED", None)]


# -- what goes wrong --------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["B-B", "B-LTA"])
def test_a_byte_changed_inside_the_signed_range_is_a_hash_failure(site, signed, level, tmp_path):
    data = tampered(signed[level])
    report = assess_pdf(data, trust_roots=[site.root_certificate], **status(site, data))
    assert set(outcomes(report)) == {("TOTAL-FAILED", "HASH_FAILURE")}
    assert report.signatures[0].explanation == "Dokumentet har ändrats efter underskriften."
    assert report.summary == "Minst en underskrift är ogiltig."
    assert main_indications(report.etsi_xml) == ["total-failed"]
    # poppler's independent check agrees on which file is intact.
    (tmp_path / "tampered.pdf").write_bytes(data)
    (tmp_path / "intact.pdf").write_bytes(signed[level])
    assert pdfsig(tmp_path / "intact.pdf", site.root_certificate)[0]["signature"] == "Signature is Valid."
    assert pdfsig(tmp_path / "tampered.pdf", site.root_certificate)[0]["signature"] != "Signature is Valid."


def test_a_signature_from_a_root_that_is_not_trusted_is_indeterminate(signed, pki):
    report = assess_pdf(signed["B-LTA"], trust_roots=[pki.root_certificate])
    assert outcomes(report) == [("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")]
    assert report.signatures[0].explanation == EXPLANATIONS["no_certificate_chain_found"]
    assert main_indications(report.etsi_xml) == ["indeterminate"]


def test_a_disallowed_change_after_signing_is_reported_beside_the_outcome(site, signed):
    writer = IncrementalPdfFileWriter(io.BytesIO(signed["B-B"]))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = writer.add_object(
        generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 600 Td (Avslag) Tj ET")
    )
    writer.update_container(page)
    output = io.BytesIO()
    writer.write(output)
    report = assess_pdf(
        output.getvalue(), trust_roots=[site.root_certificate], **status(site, output.getvalue())
    )
    # The signed revision is intact (EN 319 102-1 looks at that); what the reader sees now is not.
    assert outcomes(report) == [("TOTAL-PASSED", None)]
    assert report.signatures[0].later_changes
    assert not report.all_passed
    assert report.summary == "Minst en underskrift är ogiltig."


def test_a_b_lt_signature_without_a_document_timestamp_has_no_proof_of_existence(site, signed):
    report = assess_pdf(signed["B-LT"], trust_roots=[site.root_certificate])
    assert outcomes(report) == [("INDETERMINATE", "NO_POE")]


def test_another_tools_signature_is_validated_but_not_called_pades(documents):
    data = documents.data("presigned")
    report = assess_pdf(data, trust_roots=[documents.foreign_root])
    (signature,) = report.signatures
    assert signature.signer_name == FOREIGN_SIGNER
    assert signature.level is None
    assert signature.indication == "TOTAL-PASSED"


# -- the ETSI TS 119 102-2 report --------------------------------------------------------------------


def test_the_xml_report_has_one_signature_report_per_signature_and_the_document_timestamp(site, signed, agda):
    report = assess_pdf(signed["two signers"], trust_roots=[site.root_certificate])
    assert [s.signer_name for s in report.signatures] == ["Tolvan Tolvansson", agda.common_name]
    assert outcomes(report) == [("TOTAL-PASSED", None), ("TOTAL-PASSED", None)]
    root = ET.fromstring(report.etsi_xml)  # noqa: S314 - the report our own code made
    assert main_indications(report.etsi_xml) == ["total-passed", "total-passed"]
    processes = [e.text for e in root.iter(f"{VR}SignatureValidationProcessID") if e.text.endswith(":LTA")]
    assert len(processes) == 2
    objects = root.findall(f"{VR}SignatureValidationObjects/{VR}ValidationObject")
    assert len({o.get("id") for o in objects}) == len(objects)
    stamps = [o for o in objects if o.find(f"{VR}ObjectType").text.endswith(":timestamp")]
    assert len(stamps) == 1
    stamp_status = stamps[0].find(f"{VR}ValidationReport/{VR}SignatureValidationStatus/{VR}MainIndication")
    assert stamp_status.text.endswith(":total-passed")
    # Every reference to a validation object points at one that is in the report.
    ids = {o.get("id") for o in objects}
    references = {e.get("VOReference") for e in root.iter() if e.get("VOReference")}
    assert references and references <= ids


def test_the_xml_names_the_sub_indication_of_a_failure(site, signed):
    report = assess_pdf(
        tampered(signed["B-B"]), trust_roots=[site.root_certificate], **status(site, tampered(signed["B-B"]))
    )
    root = ET.fromstring(report.etsi_xml)  # noqa: S314 - the report our own code made
    subs = [e.text for e in root.iter(f"{VR}SubIndication")]
    assert "urn:etsi:019102:subindication:HASH_FAILURE" in subs


def test_every_sub_indication_of_the_standard_has_a_swedish_explanation():
    names = {s.name.lower() for s in AdESIndeterminate} | {s.name.lower() for s in AdESFailure}
    names = (names - {"not_yet_valid"}) | {"not_yet_valid", "failed_not_yet_valid", "total_passed"}
    assert names <= set(EXPLANATIONS)
    assert all(text.endswith(".") and text[0].isupper() for text in EXPLANATIONS.values())


# -- input that is not a signed PDF ------------------------------------------------------------------


def test_a_pdf_without_signatures_gives_a_report_that_says_so(documents, pki):
    report = assess_pdf(documents.data("reportlab"), trust_roots=[pki.root_certificate])
    assert report.signatures == () and report.document_timestamps == ()
    assert report.summary == "Dokumentet innehåller inga underskrifter."
    assert not report.all_passed
    assert report.etsi_xml == b""


@pytest.mark.parametrize(
    ("kind", "error"),
    [("not-a-pdf", NotAPdf), ("encrypted", EncryptedPdf), ("truncated", CorruptPdf)],
)
def test_a_file_that_is_no_readable_pdf_is_a_clear_error(documents, pki, kind, error):
    with pytest.raises(error) as caught:
        assess_pdf(documents.data(kind), trust_roots=[pki.root_certificate])
    assert caught.value.http_status == 400


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.7\n" + bytes(range(256)) * 8, b"<html>%PDF-</html>", b"\x00" * 4096],
    ids=["empty", "pdf-header-then-garbage", "html", "zeros"],
)
def test_garbage_is_refused_with_an_esign_error_never_a_traceback(pki, data):
    with pytest.raises(ESignError) as caught:
        assess_pdf(data, trust_roots=[pki.root_certificate])
    assert isinstance(caught.value, (NotAPdf, CorruptPdf))


def test_a_file_over_the_callers_limit_is_refused_before_it_is_read(signed, pki):
    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the file was read")

    with pytest.raises(DocumentTooLarge) as caught:
        assess_pdf(Unreadable(signed["B-B"]), trust_roots=[pki.root_certificate], max_size=1024)
    assert caught.value.http_status == 413


def test_too_many_signatures_are_refused(site, signed):
    with pytest.raises(InvalidDocument):
        assess_pdf(signed["two signers"], trust_roots=[site.root_certificate], max_signatures=1)


def test_a_file_object_is_validated_like_bytes(site, signed, tmp_path: Path):
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed["B-LTA"])
    with path.open("rb") as handle:
        report = assess_pdf(handle, trust_roots=[site.root_certificate])
    assert outcomes(report) == [("TOTAL-PASSED", None)]
    assert report.document_size == len(signed["B-LTA"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.one_of(st.none(), st.floats(0.05, 1)),
)
def test_a_damaged_signed_file_gives_a_report_or_a_clear_error(signed, pki, changes, cut):
    data = bytearray(signed["B-LTA"])
    for where, value in changes:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    try:
        report = assess_pdf(bytes(data), trust_roots=[pki.root_certificate])
    except ESignError as exc:
        assert exc.http_status == 400
    else:
        assert not report.all_passed  # not a trusted root: nothing can pass

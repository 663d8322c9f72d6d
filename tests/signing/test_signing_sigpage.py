"""The signature page: one locked, empty field per signer, visible stamps in an embedded font."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
from pyhanko.sign.validation import validate_pdf_signature

from esign.plone.errors import SigningError
from esign.plone.signing import (
    SigningProfile,
    SitePKI,
    VerifiedIdentity,
    sign_pdf_bytes,
    sigpage,
    validate_pdf,
)
from esign.plone.signing.sigpage import (
    PageSigner,
    SignaturePage,
    StampText,
    add_signature_page,
    field_names,
    signature_page_bytes,
    stamp_style,
    stamp_text_params,
)
from helpers.pdfs import FOREIGN_SIGNER, GOOD_KINDS, TestDocuments
from helpers.people import make_identity
from helpers.validators import pdfsig, pdfsig_output, qpdf_check

TITLE = "Beslut om bygglov för Åkerögatan 5 – ändring av fasad"
CASE = "SBN 2026/123-Ö"
SCREENSHOTS = Path(
    os.environ.get("ESIGN_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
)


def _page(data: bytes, names: list[str], **kw) -> SignaturePage:
    return SignaturePage(
        case_number=CASE,
        title=TITLE,
        document_sha256=hashlib.sha256(data).hexdigest(),
        signers=tuple(
            PageSigner(field, name) for field, name in zip(field_names(len(names)), names, strict=True)
        ),
        organisation="Exempelkommunen i Umeå",
        **kw,
    )


def _sign(
    data: bytes,
    field_name: str,
    identity: VerifiedIdentity,
    pki: SitePKI,
    *,
    method: str = "bankid",
    at: dt.datetime | None = None,
) -> bytes:
    """Sign into an existing field of the page, with a visible stamp, through pades.sign_pdf."""
    stamp = StampText(identity.common_name, at or dt.datetime.now(dt.UTC), CASE, method)
    signed, result = sign_pdf_bytes(
        data, identity=identity, pki=pki, profile=SigningProfile(field_name=field_name), stamp=stamp
    )
    assert result.field_name == field_name
    return signed


def _page_count(path: Path) -> int:
    return int(PdfFileReader(io.BytesIO(path.read_bytes())).root["/Pages"]["/Count"])


def _text(path: Path, page: int) -> str:
    return subprocess.run(
        ["pdftotext", "-f", str(page), "-l", str(page), "-layout", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _fonts(path: Path) -> list[tuple[str, str]]:
    """(name, emb) per font pdffonts lists."""
    lines = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in lines.splitlines()[2:]:
        columns = line.split()
        # name type... encoding emb sub uni object ID
        rows.append((columns[0], columns[-5]))
    return rows


def _embedded_characters(data: bytes) -> list[set[str]]:
    """The characters each embedded font program has a glyph for (its cmap)."""
    from fontTools import ttLib

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    refs = set().union(
        *(reader.xrefs.explicit_refs_in_revision(r) for r in range(reader.xrefs.total_revisions))
    )
    found = []
    for ref in sorted(refs, key=lambda r: r.idnum):
        obj = ref.get_object()
        if isinstance(obj, generic.DictionaryObject) and "/FontFile2" in obj:
            font = ttLib.TTFont(io.BytesIO(obj["/FontFile2"].data))
            found.append({chr(code) for code, glyph in font.getBestCmap().items() if glyph != ".notdef"})
    return found


def _diff(data: bytes, policy=sigpage.DIFF_POLICY) -> dict[str, object]:
    """Field name -> pyHanko's difference analysis result for that signature."""
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    return {
        embedded.field_name: validate_pdf_signature(embedded, diff_policy=policy, skip_diff=False).diff_result
        for embedded in reader.embedded_signatures
    }


def _fill_text_field(data: bytes, name: str, value: str) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
    for ref in writer.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field.get("/T") == name:
            field["/V"] = generic.TextStringObject(value)
            writer.update_container(field)
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sigpage")


@pytest.fixture(scope="module")
def with_page(workdir: Path, documents: TestDocuments) -> tuple[Path, tuple[str, ...]]:
    """The five-page fpdf2 document with a signature page for Tolvan and Åsa."""
    target = workdir / "with-page.pdf"
    with documents.path("fpdf2").open("rb") as source, target.open("wb") as output:
        names = add_signature_page(
            source, output, page=_page(documents.data("fpdf2"), ["Tolvan Tolvansson", "Åsa Öberg-Ärlig"])
        )
    return target, names


@pytest.fixture(scope="module")
def signed(with_page, workdir: Path, pki: SitePKI, tolvan: VerifiedIdentity) -> Path:
    path, names = with_page
    asa = make_identity("Åsa", "Öberg-Ärlig", "194911172296", method="siths")
    once = _sign(path.read_bytes(), names[0], tolvan, pki, method="bankid")
    twice = _sign(once, names[1], asa, pki, method="siths")
    target = workdir / "signed.pdf"
    target.write_bytes(twice)
    return target


# -- the page ------------------------------------------------------------------------------


def test_field_names_are_stable_ascii_and_skip_names_in_use() -> None:
    assert field_names(3) == ("Underskrift1", "Underskrift2", "Underskrift3")
    assert field_names(2, taken={"Underskrift1"}) == ("Underskrift2", "Underskrift3")


def test_the_signature_page_is_one_more_page_and_qpdf_finds_no_errors(
    with_page, documents: TestDocuments
) -> None:
    path, names = with_page
    assert names == ("Underskrift1", "Underskrift2")
    assert _page_count(path) == 6
    ok, output = qpdf_check(path)
    assert ok, output
    # An incremental update: the original is the untouched first part of the file.
    assert path.read_bytes().startswith(documents.data("fpdf2"))


def test_the_page_says_what_is_signed_with_swedish_letters_intact(
    with_page, documents: TestDocuments
) -> None:
    path, _names = with_page
    text = _text(path, 6)
    assert "Underskriftssida" in text
    assert "Exempelkommunen i Umeå" in text
    assert f"Ärende: {CASE}" in text
    assert f"Dokument: {TITLE}" in text
    assert hashlib.sha256(documents.data("fpdf2")).hexdigest() in text
    assert "SHA-256 för originalet:" in text
    assert "avancerad elektronisk underskrift (PAdES)" in " ".join(text.split())
    assert "Underskrift 1: Tolvan Tolvansson" in text
    assert "Underskrift 2: Åsa Öberg-Ärlig" in text
    # The original pages are untouched.
    assert "Underskriftssida" not in _text(path, 5)


def test_the_font_is_embedded_as_a_subset(with_page) -> None:
    path, _names = with_page
    dejavu = [(name, emb) for name, emb in _fonts(path) if "DejaVuSans" in name]
    assert dejavu, _fonts(path)
    for name, emb in dejavu:
        assert emb == "yes"
        assert re.match(r"[A-Z]{6}\+DejaVuSans", name), name


def test_each_signer_gets_an_empty_locked_field_on_the_new_page(with_page, pki: SitePKI) -> None:
    path, names = with_page
    assert pdfsig_output(path, pki.root_certificate).count("The signature form field is not signed.") == 2
    reader = PdfFileReader(io.BytesIO(path.read_bytes()))
    last_page = reader.root["/Pages"]["/Kids"][-1]
    found = {name: ref.get_object() for name, _value, ref in fields.enumerate_sig_fields(reader)}
    assert set(found) == set(names)
    for name, field in found.items():
        assert field["/P"] == last_page.get_object()
        llx, lly, urx, ury = (float(v) for v in field["/Rect"])
        assert urx - llx > 200 and ury - lly > 60  # room for the stamp
        lock = fields.FieldMDPSpec.from_pdf_object(field["/Lock"])
        # Locks every field but the other signers' ones.
        assert lock.action == fields.FieldMDPAction.EXCLUDE
        assert list(lock.fields) == [other for other in names if other != name]


def test_the_page_renders_and_a_screenshot_is_kept(with_page, workdir: Path) -> None:
    path, _names = with_page
    subprocess.run(
        ["pdftoppm", "-f", "6", "-l", "6", "-png", "-r", "50", str(path), str(workdir / "page")], check=True
    )
    (png,) = workdir.glob("page*.png")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, SCREENSHOTS / "signature-page-empty.png")


# -- signing into the fields ---------------------------------------------------------------------


def test_two_signers_sign_their_own_fields_and_pdfsig_validates_both(signed: Path, pki: SitePKI) -> None:
    first, second = pdfsig(signed, pki.root_certificate)
    assert (first["field"], first["signer"]) == ("Underskrift1", "Tolvan Tolvansson")
    assert (second["field"], second["signer"]) == ("Underskrift2", "Åsa Öberg-Ärlig")
    for signature in (first, second):
        assert signature["signature"] == "Signature is Valid."
        assert signature["certificate"] == "Certificate is Trusted."
    assert second["total"] is True
    ok, output = qpdf_check(signed)
    assert ok, output


def test_the_stamps_show_name_swedish_time_case_and_method(signed: Path, workdir: Path) -> None:
    text = _text(signed, 6)
    assert "Tolvan Tolvansson" in text and "Åsa Öberg-Ärlig" in text
    assert "Signerat med BankID" in text
    assert "Signerat med SITHS" in text
    assert text.count(f"Ärende {CASE}") == 2
    reader = PdfFileReader(io.BytesIO(signed.read_bytes()))
    for embedded in reader.embedded_signatures:
        local = embedded.self_reported_timestamp.astimezone(ZoneInfo("Europe/Stockholm"))
        # pyHanko's signing time and the stamp's come from two clock readings a moment apart.
        shown = {(local + dt.timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M") for s in (-5, 0)}
        assert any(stamp_time in text for stamp_time in shown), (shown, text)
    # The stamps' text is embedded as well: every DejaVu font in the file is embedded.
    assert all(emb == "yes" for name, emb in _fonts(signed) if "DejaVu" in name)
    subprocess.run(
        ["pdftoppm", "-f", "6", "-l", "6", "-png", "-r", "50", str(signed), str(workdir / "signed")],
        check=True,
    )
    (png,) = workdir.glob("signed*.png")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, SCREENSHOTS / "signature-page-signed.png")


def test_each_signature_saw_nothing_but_later_signatures(signed: Path, pki: SitePKI) -> None:
    first, second = validate_pdf(signed.read_bytes(), trust_roots=[pki.root_certificate]).signatures
    assert (first.modification_level, second.modification_level) == ("FORM_FILLING", "NONE")
    assert first.bottom_line and second.bottom_line
    diff = _diff(signed.read_bytes())
    assert diff["Underskrift1"].modification_level == ModificationLevel.FORM_FILLING
    assert diff["Underskrift2"].modification_level == ModificationLevel.NONE


def test_signers_may_sign_in_any_order(documents: TestDocuments, pki: SitePKI, tolvan, agda) -> None:
    data, names = signature_page_bytes(
        documents.data("reportlab"), page=_page(documents.data("reportlab"), ["A A", "B B", "C C"])
    )
    data = _sign(data, names[2], agda, pki)
    data = _sign(data, names[0], tolvan, pki)
    data = _sign(data, names[1], agda, pki)
    report = validate_pdf(data, trust_roots=[pki.root_certificate])
    assert [s.field_name for s in report.signatures] == ["Underskrift3", "Underskrift1", "Underskrift2"]
    assert [s.modification_level for s in report.signatures] == ["FORM_FILLING", "FORM_FILLING", "NONE"]
    assert report.all_valid


@pytest.mark.parametrize("kind", GOOD_KINDS)
def test_documents_from_every_producer_get_a_page_and_a_valid_stamped_signature(
    kind: str, documents: TestDocuments, workdir: Path, pki: SitePKI, tolvan
) -> None:
    original = documents.data(kind)
    data, names = signature_page_bytes(original, page=_page(original, ["Tolvan Tolvansson"]))
    data = _sign(data, names[0], tolvan, pki)
    path = workdir / f"{kind}-stamped.pdf"
    path.write_bytes(data)
    ok, output = qpdf_check(path)
    assert ok, output
    ours = pdfsig(path, pki.root_certificate)[-1]
    assert (ours["field"], ours["signature"], ours["total"]) == ("Underskrift1", "Signature is Valid.", True)
    last = _page_count(path)
    assert "Signerat med BankID" in _text(path, last) and "Underskriftssida" in _text(path, last)


# -- FieldMDP at work -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def form_signed_once(documents: TestDocuments, pki: SitePKI, tolvan) -> tuple[bytes, tuple[str, ...]]:
    """The application form (text field "applicant") with a page for three, signed by the third."""
    data, names = signature_page_bytes(
        documents.data("form"), page=_page(documents.data("form"), ["A", "B", "C"])
    )
    return _sign(data, names[2], tolvan, pki), names


def test_on_a_form_a_later_signature_is_form_filling_for_the_earlier_one(
    form_signed_once, pki: SitePKI, agda
) -> None:
    data, names = form_signed_once
    data = _sign(data, names[0], agda, pki)
    diff = _diff(data)
    assert diff["Underskrift3"].modification_level == ModificationLevel.FORM_FILLING
    assert diff["Underskrift1"].modification_level == ModificationLevel.NONE


def test_pyhanko_default_policy_misreads_untouched_locked_text_fields(
    form_signed_once, pki: SitePKI, agda
) -> None:
    # Why sigpage.DIFF_POLICY exists. When pyHanko fixes the comparison in
    # _allow_in_place_appearance_update this test fails and validators can use the default again.
    data, names = form_signed_once
    data = _sign(data, names[0], agda, pki)
    default = _diff(data, policy=None)
    assert isinstance(default["Underskrift3"], SuspiciousModification)
    assert "applicant is locked" in str(default["Underskrift3"])


def test_a_later_change_to_a_locked_form_field_is_reported(form_signed_once, pki: SitePKI) -> None:
    data, _names = form_signed_once
    changed = _fill_text_field(data, "applicant", "Mallory")
    result = _diff(changed)["Underskrift3"]
    assert isinstance(result, SuspiciousModification)
    assert "applicant is locked" in str(result)


def test_without_the_page_lock_the_same_change_passes_as_form_filling(
    documents: TestDocuments, pki: SitePKI, tolvan
) -> None:
    # The control for the test above: an ordinary signature does not lock the form.
    data, _result = sign_pdf_bytes(documents.data("form"), identity=tolvan, pki=pki)
    changed = _fill_text_field(data, "applicant", "Mallory")
    assert _diff(changed)["Signature1"].modification_level == ModificationLevel.FORM_FILLING


def test_a_new_visible_field_after_signing_is_reported(form_signed_once) -> None:
    data, _names = form_signed_once
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    fields.append_signature_field(writer, fields.SigFieldSpec("Extra", on_page=0, box=(10, 10, 200, 60)))
    output = io.BytesIO()
    writer.write(output)
    assert isinstance(_diff(output.getvalue())["Underskrift3"], SuspiciousModification)


# -- documents signed elsewhere, many signers, invisible signatures -----------------------------------


def test_a_presigned_document_keeps_its_foreign_signature_intact_and_valid(
    documents: TestDocuments, workdir: Path, pki: SitePKI, tolvan
) -> None:
    data, names = signature_page_bytes(
        documents.data("presigned"), page=_page(documents.data("presigned"), ["T"])
    )
    data = _sign(data, names[0], tolvan, pki)
    path = workdir / "presigned.pdf"
    path.write_bytes(data)
    foreign, ours = pdfsig(path, documents.foreign_root)
    assert foreign["signer"] == FOREIGN_SIGNER
    assert (foreign["signature"], foreign["certificate"]) == (
        "Signature is Valid.",
        "Certificate is Trusted.",
    )
    assert ours["signature"] == "Signature is Valid."
    foreign_report, our_report = validate_pdf(data, trust_roots=[pki.root_certificate]).signatures
    assert (foreign_report.intact, foreign_report.valid) == (True, True)
    assert our_report.bottom_line
    # pyHanko's difference analysis allows no new pages after a signature: the foreign
    # signature reads as "changed after signing" there (pdfsig does not analyse changes).
    assert not foreign_report.unmodified_since
    assert "page tree" in str(_diff(data)["ForeignSignature"])


def test_more_than_eight_signers_flow_onto_a_second_page(workdir: Path, documents: TestDocuments) -> None:
    people = [f"Person {number} Svensson" for number in range(1, 14)]
    data, names = signature_page_bytes(
        documents.data("reportlab"), page=_page(documents.data("reportlab"), people)
    )
    path = workdir / "thirteen.pdf"
    path.write_bytes(data)
    assert names == field_names(13)
    assert _page_count(path) == 3
    first, second = _text(path, 2), _text(path, 3)
    assert "Underskrift 8: Person 8 Svensson" in first and "Underskrift 9" not in first
    assert "Underskriftssida (forts.)" in second and f"Ärende: {CASE}" in second
    assert "Underskrift 13: Person 13 Svensson" in second
    assert "Sida 1 av 2" in first and "Sida 2 av 2" in second
    reader = PdfFileReader(io.BytesIO(data))
    kids = reader.root["/Pages"]["/Kids"]
    pages = {name: ref.get_object()["/P"] for name, _value, ref in fields.enumerate_sig_fields(reader)}
    assert all(pages[name] == kids[1].get_object() for name in names[:8])
    assert all(pages[name] == kids[2].get_object() for name in names[8:])
    assert qpdf_check(path)[0]


def test_invisible_signatures_list_the_signers_without_boxes(
    workdir: Path, documents: TestDocuments, pki: SitePKI, tolvan
) -> None:
    page = _page(documents.data("reportlab"), ["Tolvan Tolvansson"], invisible_signatures=True)
    data, names = signature_page_bytes(documents.data("reportlab"), page=page)
    data = _sign(data, names[0], tolvan, pki)
    path = workdir / "invisible.pdf"
    path.write_bytes(data)
    (embedded,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
    assert [float(v) for v in embedded.sig_field["/Rect"]] == [0, 0, 0, 0]
    text = _text(path, 2)
    assert "Underskrift 1: Tolvan Tolvansson" in text
    assert "Signerat med BankID" not in text
    assert pdfsig(path, pki.root_certificate)[0]["signature"] == "Signature is Valid."


def test_the_page_can_be_in_english(documents: TestDocuments, workdir: Path) -> None:
    data, _names = signature_page_bytes(
        documents.data("reportlab"), page=_page(documents.data("reportlab"), ["Tolvan"], language="en")
    )
    path = workdir / "english.pdf"
    path.write_bytes(data)
    text = _text(path, 2)
    assert "Signature page" in text and f"Case: {CASE}" in text and "Signature 1: Tolvan" in text
    assert "SHA-256 of the original:" in text


def test_text_in_other_scripts_is_set_from_the_whole_font(documents: TestDocuments, workdir: Path) -> None:
    # Left-to-right scripts outside the common cut of the font (no bidi reordering is done).
    title = "Översättning: Ծրագիր, ქართული"
    page = dataclasses.replace(_page(documents.data("reportlab"), ["Nguyễn Văn Ánh"]), title=title)
    data, _names = signature_page_bytes(documents.data("reportlab"), page=page)
    path = workdir / "scripts.pdf"
    path.write_bytes(data)
    text = subprocess.run(["pdftotext", "-f", "2", str(path), "-"], capture_output=True, text=True).stdout
    assert "Ծրագիր" in text and "ქართული" in text
    assert "Nguyễn Văn Ánh" in text


def test_stamps_and_pages_in_greek_and_cyrillic_keep_every_letter(
    documents: TestDocuments, workdir: Path, pki: SitePKI
) -> None:
    # Latin text is set from the smallest cut of the font; these names need the next one.
    names = ["Ελένη Παπαδοπούλου", "Анна Иванова"]
    data, fields_made = signature_page_bytes(documents.data("reportlab"), page=_page(b"x", names))
    for name, field_name in zip(names, fields_made, strict=True):
        first, _, last = name.partition(" ")
        data = _sign(data, field_name, make_identity(first, last, "194911172296"), pki)
    path = workdir / "greek-cyrillic.pdf"
    path.write_bytes(data)
    text = _text(path, 2)
    assert text.count("Ελένη Παπαδοπούλου") == 2 and text.count("Анна Иванова") == 2  # label and stamp
    # The text layer alone would read right even in empty boxes: the glyphs must be embedded.
    drawn = set().union(*_embedded_characters(data))
    assert set("".join(names).replace(" ", "")) <= drawn
    assert len(_embedded_characters(data)) == 3  # the page's font and one per stamp


def test_a_very_long_title_is_cut_short_so_the_signers_still_fit(
    documents: TestDocuments, workdir: Path
) -> None:
    page = dataclasses.replace(_page(documents.data("reportlab"), ["Tolvan"]), title="Långt beslut " * 200)
    data, _names = signature_page_bytes(documents.data("reportlab"), page=page)
    path = workdir / "long.pdf"
    path.write_bytes(data)
    text = _text(path, 2)
    assert "…" in text and "Underskrift 1: Tolvan" in text
    assert _page_count(path) == 2


# -- fonts and refusals ------------------------------------------------------------------------------


def test_a_missing_font_is_a_clear_signing_error(documents: TestDocuments, monkeypatch) -> None:
    page = _page(documents.data("reportlab"), ["Tolvan"])
    with pytest.raises(SigningError, match="fonts-dejavu-core"):
        signature_page_bytes(documents.data("reportlab"), page=page, font_path="/nonexistent/Font.ttf")
    monkeypatch.setenv("ESIGN_STAMP_FONT", "/nonexistent/Stamp.ttf")
    with pytest.raises(SigningError, match=re.escape("/nonexistent/Stamp.ttf")):
        stamp_style()


def test_a_file_that_is_no_font_is_a_signing_error(documents: TestDocuments, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.ttf"
    bogus.write_bytes(b"not a font at all")
    with pytest.raises(SigningError, match="not an OpenType/TrueType font"):
        stamp_style(str(bogus))


def test_the_environment_variable_chooses_another_font(
    documents: TestDocuments, workdir: Path, monkeypatch
) -> None:
    bold = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    monkeypatch.setenv("ESIGN_STAMP_FONT", bold)
    data, _names = signature_page_bytes(
        documents.data("reportlab"), page=_page(documents.data("reportlab"), ["T"])
    )
    path = workdir / "bold.pdf"
    path.write_bytes(data)
    assert any("DejaVuSans-Bold" in name for name, _emb in _fonts(path))
    assert stamp_style().font_path == bold


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"signers": ()}, "at least one signer"),
        (
            {"signers": (PageSigner("Underskrift1", "A"), PageSigner("Underskrift1", "B"))},
            "field of their own",
        ),
        ({"signers": (PageSigner("Underskrift.1", "A"),)}, "not a usable signature field name"),
        ({"signers": (PageSigner("Underskrift_Å", "A"),)}, "not a usable signature field name"),
        ({"signers": (PageSigner("applicant", "A"),)}, "already has a field named 'applicant'"),
        ({"document_sha256": "abc"}, "64 hexadecimal digits"),
    ],
)
def test_unusable_page_descriptions_are_refused(documents: TestDocuments, change: dict, message: str) -> None:
    page = dataclasses.replace(_page(documents.data("form"), ["A"]), **change)
    with pytest.raises(SigningError, match=message):
        signature_page_bytes(documents.data("form"), page=page)


def test_an_encrypted_document_is_refused(documents: TestDocuments) -> None:
    with pytest.raises(SigningError):
        signature_page_bytes(documents.data("encrypted"), page=_page(documents.data("encrypted"), ["A"]))


# -- stamp text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc", "shown"),
    [
        (dt.datetime(2026, 12, 4, 13, 5, tzinfo=dt.UTC), "2026-12-04 14:05"),  # CET, UTC+1
        (dt.datetime(2026, 7, 1, 22, 30, tzinfo=dt.UTC), "2026-07-02 00:30"),  # CEST, UTC+2, next day
    ],
)
def test_stamps_show_swedish_local_time(utc: dt.datetime, shown: str) -> None:
    params = stamp_text_params(StampText("Tolvan Tolvansson", utc, "2026/1", "bankid"))
    assert params["signed_at"] == shown
    assert params["stamp_text"].splitlines() == [
        "Tolvan Tolvansson",
        shown,
        "Ärende 2026/1",
        "Signerat med BankID",
    ]


@pytest.mark.parametrize(
    ("method", "line"),
    [
        ("bankid", "Signerat med BankID"),
        ("BankID", "Signerat med BankID"),
        ("siths", "Signerat med SITHS"),
        ("direct", "Signerat elektroniskt"),
        ("", "Signerat elektroniskt"),
    ],
)
def test_the_method_line_names_how_the_signer_was_identified(method: str, line: str) -> None:
    at = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    assert stamp_text_params(StampText("T", at, "1", method))["method"] == line


def test_a_stamp_without_case_number_leaves_that_line_out_and_english_works() -> None:
    at = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    params = stamp_text_params(StampText("T", at, "", "siths", language="en"))
    assert params["stamp_text"].splitlines() == ["T", "2026-03-01 10:00", "Signed with SITHS"]


def test_a_naive_signing_time_is_refused() -> None:
    with pytest.raises(SigningError, match="timezone-aware"):
        stamp_text_params(StampText("T", dt.datetime(2026, 3, 1, 9, 0), "1", "bankid"))

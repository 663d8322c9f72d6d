"""Bulk send: one document to many signers, each as a case of their own, from a CSV list.

>>> rows = parse_csv(upload.read())
>>> report = bulk_send(folder, title="Samtycke", document=(pdf, "samtycke.pdf"),
...                    rows=rows, information_class="K3")
>>> len(report.created), [r.reason for r in report.rejected]
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from typing import NamedTuple

import transaction
from plone import api
from plone.namedfile.file import NamedBlobFile
from zope.i18n import translate

from esign.plone import logger
from esign.plone.content.documents import check_pdf_file
from esign.plone.content.identifiers import mask_personal_number
from esign.plone.content.schema import K4_REFUSAL, normalize_signer_row
from esign.plone.errors import ClassificationRefused, ESignError, InvalidInput
from esign.plone.workflow.cases import send_case

#: One upload is one officer's mailing, not a population register.
MAX_ROWS = 1000

INFORMATION_CLASSES = ("K1", "K2", "K3")

#: Column names as people write them in Excel, lower-cased, to the signer row's keys.
COLUMNS = {
    "namn": "name",
    "name": "name",
    "personnummer": "personal_number",
    "personal_number": "personal_number",
    "pnr": "personal_number",
    "e-post": "email",
    "epost": "email",
    "e-postadress": "email",
    "email": "email",
    "e-mail": "email",
    "hsa-id": "hsa_id",
    "hsa_id": "hsa_id",
    "hsaid": "hsa_id",
}


class RejectedRow(NamedTuple):
    """A CSV row that did not become a case, and why (in Swedish)."""

    #: Line in the CSV file (the header is line 1).
    line: int
    #: ``name``, ``email``, ``hsa_id`` and ``personal_number`` masked (``19121212-****``).
    row: dict
    reason: str


@dataclasses.dataclass(frozen=True)
class BulkReport:
    """What :func:`bulk_send` did."""

    #: The new cases, in the order of the rows.
    created: list
    #: The rows that were refused, in file order.
    rejected: list[RejectedRow]
    #: Whether the created cases were sent (``False``: left as drafts).
    sent: bool = True


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Excel on Swedish Windows saves "CSV (semikolonavgränsad)" as cp1252.
        return data.decode("cp1252", errors="replace")


def parse_csv(data: bytes) -> list[dict]:
    """Read a signer list: a header row, then one signer per line.

    Columns (any order, case-insensitive): ``namn``/``name``, ``personnummer``/
    ``personal_number``, ``e-post``/``email`` and optionally ``hsa-id``.
    Separated by ``;`` (Excel in Swedish) or ``,``; UTF-8 (with or without BOM)
    or cp1252. Blank lines are skipped.

    :returns: one dict per signer with ``line`` (the file's line number), ``name``,
        ``personal_number``, ``email`` and ``hsa_id`` as written (not yet checked).
    :raises InvalidInput: when the file has no usable header or too many rows.
    """
    text = _decode(data or b"")
    lines = text.splitlines()
    skipped = 0
    separator = None
    if lines and re.match(r"^\s*sep=(.)\s*$", lines[0], re.I):  # Excel's "sep=;" hint
        separator = lines[0].strip()[4]
        skipped = 1
    body = lines[skipped:]
    header_line = next((line for line in body if line.strip()), "")
    if not header_line:
        raise InvalidInput("CSV-filen är tom.", field="signers_csv")
    if separator is None:
        separator = ";" if header_line.count(";") >= header_line.count(",") else ","
    reader = csv.reader(io.StringIO("\n".join(body)), delimiter=separator)
    header: list[str | None] | None = None
    rows: list[dict] = []
    for record in reader:
        line = reader.line_num + skipped
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [COLUMNS.get(cell.strip().strip('"').lower()) for cell in record]
            missing = [label for key, label in (("name", "namn"), ("email", "e-post")) if key not in header]
            if "personal_number" not in header and "hsa_id" not in header:
                missing.append("personnummer")
            if missing:
                raise InvalidInput(
                    "CSV-filen saknar kolumnen " + ", ".join(missing) + ". Första raden ska vara en "
                    "rubrikrad med namn;personnummer;e-post (och eventuellt hsa-id).",
                    field="signers_csv",
                )
            continue
        if len(rows) >= MAX_ROWS:
            raise InvalidInput(f"CSV-filen får ha högst {MAX_ROWS} undertecknare.", field="signers_csv")
        row = {"line": line, "name": "", "personal_number": "", "email": "", "hsa_id": ""}
        for key, cell in zip(header, record, strict=False):
            if key:
                row[key] = cell.strip()
        rows.append(row)
    if header is None:
        raise InvalidInput("CSV-filen är tom.", field="signers_csv")
    return rows


def mask_written_number(value: str | None) -> str:
    """Mask a personnummer as it was written, valid or not: no more than the birth date shows."""
    digits = re.sub(r"\D", "", value or "")
    if len(digits) == 12:
        return mask_personal_number(digits)
    if len(digits) == 10:
        return f"{digits[:6]}-****"
    return "****" if digits else ""


def _shown(row: dict) -> dict:
    return {
        "name": (row.get("name") or "").strip(),
        "personal_number": mask_written_number(row.get("personal_number")),
        "hsa_id": (row.get("hsa_id") or "").strip(),
        "email": (row.get("email") or "").strip(),
    }


def check_information_class(value: str) -> str:
    """K1–K3 pass; K4 is refused with the seed's rule."""
    if value == "K4":
        raise ClassificationRefused(translate(K4_REFUSAL, target_language="sv"), field="information_class")
    if value not in INFORMATION_CLASSES:
        raise InvalidInput("Välj informationsklass K1, K2 eller K3.", field="information_class")
    return value


def bulk_send(
    container,
    *,
    title: str,
    document: tuple[bytes, str],
    rows: list[dict],
    information_class: str,
    message: str = "",
    deadline: dt.date | None = None,
    send: bool = True,
) -> BulkReport:
    """Make one signing case per valid row, each with that one signer, and send it.

    :param container: folder (or site root) the cases are created in.
    :param title: each case is titled ``"<title> – <signer's name>"``.
    :param document: the PDF's bytes and file name; checked once, before anything is created.
    :param rows: signer rows (see :func:`parse_csv`); ``line`` numbers them in the report.
    :param send: ``False`` leaves the cases as drafts.
    :returns: a :class:`BulkReport`; a refused row never stops the others.
    :raises InvalidDocument: the PDF is not one we can sign (nothing is created).
    :raises ClassificationRefused, InvalidInput: K4, an empty title or a past deadline.
    """
    title = (title or "").strip()
    if not title:
        raise InvalidInput("Rubrik saknas.", field="title")
    check_information_class(information_class)
    if deadline is not None and deadline < dt.date.today():
        raise InvalidInput("Sista dag kan inte ligga i det förflutna.", field="deadline")
    data, filename = document
    filename = filename or "dokument.pdf"
    check_pdf_file(NamedBlobFile(data, filename=filename, contentType="application/pdf"))

    created: list = []
    rejected: list[RejectedRow] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(rows, start=1):
        line = int(raw.get("line") or index)
        row = {key: raw.get(key) or "" for key in ("name", "personal_number", "email", "hsa_id")}
        try:
            normalize_signer_row(row)
        except InvalidInput as exc:
            rejected.append(RejectedRow(line, _shown(raw), exc.message))
            continue
        key = row["personal_number"] or row["hsa_id"]
        if key in seen:
            rejected.append(
                RejectedRow(line, _shown(raw), f"Samma undertecknare finns redan på rad {seen[key]}.")
            )
            continue
        seen[key] = line
        # One row's failure (a workflow guard, a mail setting) must not leave half a case behind.
        savepoint = transaction.savepoint()
        try:
            case = api.content.create(
                container=container,
                type="SigningCase",
                title=f"{title} – {row['name']}",
                document=NamedBlobFile(data, filename=filename, contentType="application/pdf"),
                signers=[row],
                information_class=information_class,
                message=message or "",
                deadline=deadline,
                safe_id=True,
            )
            if send:
                send_case(case)
        except ESignError as exc:
            savepoint.rollback()
            rejected.append(RejectedRow(line, _shown(raw), exc.message))
            continue
        created.append(case)
    logger.info(
        "Bulk send in %s: %d cases created%s, %d rows refused",
        "/".join(container.getPhysicalPath()),
        len(created),
        " and sent" if send else "",
        len(rejected),
    )
    return BulkReport(created=created, rejected=rejected, sent=send)

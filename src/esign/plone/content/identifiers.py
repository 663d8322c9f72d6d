"""Swedish person identifiers: personnummer, samordningsnummer and HSA-id.

Pure functions: the content schema, the signing API and the tests share them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from esign.plone.errors import InvalidInput

_PNR = re.compile(r"^(\d{8})[-+]?(\d{4})$")
#: HSA-id: "SE" + 10-digit organisation number + "-" + an alphanumeric suffix.
_HSA = re.compile(r"^SE\d{10}-[0-9A-Za-z]{1,31}$")
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def luhn_ok(digits: str) -> bool:
    """Luhn check as used for the last ten digits of a personnummer."""
    total = 0
    for i, ch in enumerate(digits):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def normalize_personal_number(value: str, *, today: dt.date | None = None) -> str:
    """Return the 12-digit form of a personnummer or samordningsnummer.

    Accepts ``YYYYMMDDNNNC`` with an optional ``-`` or ``+``. Samordningsnummer
    carry the day plus 60. The date must exist and not lie in the future, and the
    Luhn check digit must match.

    :raises InvalidInput: with a message a person understands.
    """
    cleaned = (value or "").strip().replace(" ", "")
    match = _PNR.match(cleaned)
    if not match:
        raise InvalidInput("Personnumret ska ha tolv siffror: ÅÅÅÅMMDD-NNNN.", field="personal_number")
    date_part, tail = match.groups()
    year, month, day = int(date_part[:4]), int(date_part[4:6]), int(date_part[6:8])
    if day > 60:  # samordningsnummer
        day -= 60
    try:
        born = dt.date(year, month, day)
    except ValueError:
        raise InvalidInput(
            "Personnumret innehåller ett datum som inte finns.", field="personal_number"
        ) from None
    if born > (today or dt.date.today()) or year < 1850:
        raise InvalidInput("Personnumret har ett orimligt födelsedatum.", field="personal_number")
    digits = date_part + tail
    if not luhn_ok(digits[2:]):
        raise InvalidInput(
            "Personnumrets kontrollsiffra stämmer inte. Kontrollera numret.",
            field="personal_number",
        )
    return digits


def normalize_hsa_id(value: str) -> str:
    """Return the HSA-id in canonical form (upper-case country prefix).

    :raises InvalidInput: if it is not ``SE`` + 10 digits + ``-`` + suffix.
    """
    cleaned = (value or "").strip()
    if cleaned[:2].lower() == "se":
        cleaned = "SE" + cleaned[2:]
    if not _HSA.match(cleaned):
        raise InvalidInput(
            "HSA-id ska se ut som SE2321000016-1003 (SE, tio siffror, bindestreck, tillägg).",
            field="hsa_id",
        )
    return cleaned


def normalize_email(value: str) -> str:
    cleaned = (value or "").strip()
    if not _EMAIL.match(cleaned) or len(cleaned) > 254:
        raise InvalidInput("E-postadressen är inte giltig.", field="email")
    return cleaned


def mask_personal_number(pnr: str | None) -> str:
    """``19121212-****``: enough to recognise a person in a listing, no more."""
    if not pnr:
        return ""
    return f"{pnr[:8]}-****"


def identity_key(*, salt: str, personal_number: str | None = None, hsa_id: str | None = None) -> str:
    """A salted hash that stands for a person in catalog indexes and principal ids.

    Personnummer must never appear in URLs, logs or indexes; this key does instead.
    """
    if personal_number:
        raw = f"pnr:{personal_number}"
    elif hsa_id:
        raw = f"hsa:{hsa_id.upper()}"
    else:
        raise ValueError("an identity key needs a personal number or an HSA-id")
    return hmac.new(salt.encode(), raw.encode(), hashlib.sha256).hexdigest()[:32]

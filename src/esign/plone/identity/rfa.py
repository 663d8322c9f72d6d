"""BankID's recommended user messages (RFA1…RFA23) and when to show them.

BankID asks relying parties to show these exact texts for each ``status`` and
``hintCode`` of a collect, and for the ``errorCode`` of a failed call, so a
person sees the same words in every service. The texts follow BankID's
published guidance; RFA7, RFA10, RFA11 and RFA12 are retired and not listed.

How the person started matters: with a QR code (another device) the app has
not started yet and RFA1 asks them to start it; on the same device we have just
tried to start it through the autostart link, hence RFA13.

Example::

    >>> user_message("pending", "outstandingTransaction", flow="qr")
    'Starta BankID-appen.'
    >>> rfa_id("failed", "userCancel", flow="same_device")
    'RFA6'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: How the person started the order: "qr" (animated QR code scanned with another
#: device) or "same_device" (the autostart link on this device).
Flow = Literal["qr", "same_device"]
Language = Literal["sv", "en"]


@dataclass(frozen=True)
class Message:
    """One recommended user message."""

    #: BankID's id, e.g. ``RFA9`` or ``RFA17B``.
    id: str
    #: The Swedish text.
    sv: str
    #: The English text.
    en: str

    def text(self, lang: Language = "sv") -> str:
        return self.en if lang == "en" else self.sv


_SEARCHING_SV = (
    "det kan ta en liten stund … Om det har gått några sekunder och inget BankID har hittats har du "
    "sannolikt inget BankID som går att använda för den aktuella identifieringen/underskriften i den här "
)
_SEARCHING_EN = (
    "it may take a little while … If a few seconds have passed and still no BankID has been found, you "
    "probably don't have a BankID which can be used for this identification/signing on this "
)
_INSTALL_SV = "Installera appen från din appbutik eller https://install.bankid.com."
_INSTALL_EN = "Install the app from your app store or https://install.bankid.com."

MESSAGES: dict[str, Message] = {
    m.id: m
    for m in (
        Message("RFA1", "Starta BankID-appen.", "Start your BankID app."),
        Message(
            "RFA2",
            "Du har inte BankID-appen installerad. Kontakta din bank.",
            "The BankID app is not installed. Please contact your bank.",
        ),
        Message("RFA3", "Åtgärden avbruten. Försök igen.", "Action cancelled. Please try again."),
        Message(
            "RFA4",
            "En identifiering eller underskrift för det här personnumret är redan påbörjad. Försök igen.",
            "An identification or signing for this personal number is already started. Please try again.",
        ),
        Message("RFA5", "Internt tekniskt fel. Försök igen.", "Internal error. Please try again."),
        Message("RFA6", "Åtgärden avbruten.", "Action cancelled."),
        Message(
            "RFA8",
            "BankID-appen svarar inte. Kontrollera att den är startad och att du har internetanslutning. "
            "Om du inte har något giltigt BankID kan du skaffa ett hos din bank. Försök sedan igen.",
            "The BankID app is not responding. Please check that it's started and that you have internet "
            "access. If you don't have a valid BankID you can get one from your bank. Try again.",
        ),
        Message(
            "RFA9",
            "Skriv in din säkerhetskod i BankID-appen och välj Legitimera eller Skriv under.",
            "Enter your security code in the BankID app and select Identify or Sign.",
        ),
        Message("RFA13", "Försöker starta BankID-appen.", "Trying to start your BankID app."),
        Message(
            "RFA14A",
            "Söker efter BankID, " + _SEARCHING_SV + "datorn. Om du har ett BankID-kort, sätt in det i "
            "kortläsaren. Om du inte har något BankID kan du skaffa ett hos din bank. Om du har ett BankID "
            "på en annan enhet kan du starta din BankID-app där.",
            "Searching for BankID, " + _SEARCHING_EN + "computer. If you have a BankID card, please insert "
            "it into your card reader. If you don't have a BankID you can get one from your bank. If you "
            "have a BankID on another device you can start the BankID app on that device.",
        ),
        Message(
            "RFA14B",
            "Söker efter BankID, " + _SEARCHING_SV + "enheten. Om du inte har något BankID kan du skaffa "
            "ett hos din bank. Om du har ett BankID på en annan enhet kan du starta din BankID-app där.",
            "Searching for BankID, " + _SEARCHING_EN + "device. If you don't have a BankID you can get one "
            "from your bank. If you have a BankID on another device you can start the BankID app on that "
            "device.",
        ),
        Message(
            "RFA15A",
            "Söker efter BankID:n, " + _SEARCHING_SV + "datorn. Om du har ett BankID-kort, sätt in det i "
            "kortläsaren. Om du inte har något BankID kan du skaffa ett hos din bank.",
            "Searching for BankID:s, " + _SEARCHING_EN + "computer. If you have a BankID card, please "
            "insert it into your card reader. If you don't have a BankID you can get one from your bank.",
        ),
        Message(
            "RFA15B",
            "Söker efter BankID:n, " + _SEARCHING_SV + "enheten. Om du inte har något BankID kan du "
            "skaffa ett hos din bank.",
            "Searching for BankID:s, " + _SEARCHING_EN + "device. If you don't have a BankID you can get "
            "one from your bank.",
        ),
        Message(
            "RFA16",
            "Det BankID du försöker använda är för gammalt eller spärrat. Använd ett annat BankID eller "
            "skaffa ett nytt hos din bank.",
            "The BankID you are trying to use is blocked or too old. Please use another BankID or get a "
            "new one from your bank.",
        ),
        Message(
            "RFA17A",
            "BankID-appen verkar inte finnas i din dator eller telefon. Installera den och skaffa ett "
            "BankID hos din bank. " + _INSTALL_SV,
            "The BankID app couldn't be found on your computer or mobile device. Please install it and get "
            "a BankID from your bank. " + _INSTALL_EN,
        ),
        Message(
            "RFA17B",
            "Misslyckades att läsa av QR-koden. Starta BankID-appen och läs av QR-koden. Kontrollera att "
            "BankID-appen är uppdaterad. Om du inte har BankID-appen måste du installera den och skaffa "
            "ett BankID hos din bank. " + _INSTALL_SV,
            "Failed to scan the QR code. Start the BankID app and scan the QR code. Check that the BankID "
            "app is up to date. If you don't have the BankID app, you need to install it and get a BankID "
            "from your bank. " + _INSTALL_EN,
        ),
        Message("RFA18", "Starta BankID-appen", "Start the BankID app"),
        Message(
            "RFA19",
            "Vill du identifiera dig eller skriva under med BankID på den här datorn eller med ett "
            "Mobilt BankID?",
            "Would you like to identify yourself or sign with a BankID on this computer, or with a Mobile "
            "BankID?",
        ),
        Message(
            "RFA20",
            "Vill du identifiera dig eller skriva under med ett BankID på den här enheten eller med ett "
            "BankID på en annan enhet?",
            "Would you like to identify yourself or sign with a BankID on this device, or with a BankID on "
            "another device?",
        ),
        Message("RFA21", "Identifiering eller underskrift pågår.", "Identification or signing in progress."),
        Message("RFA22", "Okänt fel. Försök igen.", "Unknown error. Please try again."),
        Message(
            "RFA23",
            "Fotografera och läs av din ID-handling med BankID-appen.",
            "Process your machine-readable travel document using the BankID app.",
        ),
    )
}

_PENDING = {
    "noClient": "RFA1",
    "userSign": "RFA9",
    "userMrtd": "RFA23",
    # Phone orders: the person confirms the call in the app; BankID has no own RFA for it.
    "userCallConfirm": "RFA21",
}

_FAILED = {
    "expiredTransaction": "RFA8",
    "certificateErr": "RFA16",
    "userCancel": "RFA6",
    "userDeclinedCall": "RFA6",
    # "cancelled": BankID cancelled this order because a newer one for the same person arrived.
    "cancelled": "RFA3",
    "notSupportedByUserApp": "RFA3",
    "transactionRiskBlocked": "RFA22",
}

_ERRORS = {
    "alreadyInProgress": "RFA4",
    "requestTimeout": "RFA5",
    "internalError": "RFA5",
    "maintenance": "RFA5",
    # Not BankID error codes: our client's own for "no answer" and "an answer we cannot read".
    "unreachable": "RFA5",
    "invalidResponse": "RFA5",
}


def rfa_id(status: str, hint_code: str, *, flow: Flow = "qr", mobile: bool = False) -> str | None:
    """The RFA id to show for one collect answer.

    :param status: ``pending``, ``failed`` or ``complete``.
    :param hint_code: the collect's ``hintCode`` (may be empty or one BankID added later).
    :param flow: ``"qr"`` or ``"same_device"``, how the person started the order.
    :param mobile: the person's browser runs on a phone or tablet (chooses RFA14B over RFA14A).
    :returns: e.g. ``"RFA1"``; ``None`` for ``complete``, where there is nothing to show.
    """
    if status == "complete":
        return None
    if status == "pending":
        if hint_code == "outstandingTransaction":
            return "RFA13" if flow == "same_device" else "RFA1"
        if hint_code == "started":
            return "RFA14B" if mobile else "RFA14A"
        return _PENDING.get(hint_code, "RFA21")
    if status == "failed":
        if hint_code == "startFailed":
            return "RFA17A" if flow == "same_device" else "RFA17B"
        return _FAILED.get(hint_code, "RFA22")
    return "RFA22"


def rfa_for_error(error_code: str) -> str:
    """The RFA id for an ``errorCode`` of a failed auth, sign, collect or cancel call."""
    return _ERRORS.get(error_code, "RFA22")


def message(rfa: str, lang: Language = "sv") -> str:
    """The text of one RFA id, e.g. ``message("RFA6") == "Åtgärden avbruten."``.

    :raises KeyError: for an id BankID does not define.
    """
    return MESSAGES[rfa].text(lang)


def user_message(
    status: str, hint_code: str, *, flow: Flow = "qr", mobile: bool = False, lang: Language = "sv"
) -> str:
    """The text to show a person for one collect answer; empty for ``complete``."""
    found = rfa_id(status, hint_code, flow=flow, mobile=mobile)
    return message(found, lang) if found else ""


def error_message(error_code: str, lang: Language = "sv") -> str:
    """The text to show a person when a call failed with ``error_code``."""
    return message(rfa_for_error(error_code), lang)


__all__ = [
    "MESSAGES",
    "Flow",
    "Message",
    "error_message",
    "message",
    "rfa_for_error",
    "rfa_id",
    "user_message",
]

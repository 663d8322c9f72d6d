"""A BankID order for a REST client: the start answer and one collect, shared by login and sign.

The Classic UI renders the animated QR code as SVG; a REST client gets the QR
*data* for the current second and draws it itself. The start secret stays here.
"""

from __future__ import annotations

import time

from esign.plone import storage
from esign.plone.errors import InvalidInput, NotFound
from esign.plone.identity import bankid, rfa, sessions
from esign.plone.workflow import journey

MODES = ("qr", "same_device")


def qr_data(flow: dict) -> str:
    seconds = max(0, int(time.time() - flow["started_at"]))
    return bankid.qr_data(flow["qr_start_token"], flow["qr_start_secret"], seconds)


def _just_started(request) -> dict:
    # start_bankid set the flow cookie on the response; this request does not carry it yet.
    cookie = request.response.cookies.get(sessions.FLOW_COOKIE) or {}
    return storage.get(sessions.FLOWS, cookie.get("value"))


def started(request, *, collect_url: str) -> dict:
    """The answer to a start: what the person needs to open BankID, and where to collect."""
    flow = _just_started(request)
    answer = {
        "status": "pending",
        "mode": flow["mode"],
        "hint": "outstandingTransaction",
        "message": rfa.user_message("pending", "outstandingTransaction", flow=flow["mode"]),
        "collect": collect_url,
    }
    if flow["mode"] == "qr":
        answer["qr"] = qr_data(flow)
    else:
        answer["autoStartToken"] = flow["auto_start_token"]
        answer["autostart_url"] = journey.autostart_url(flow)
    return answer


def collect(request, *, purpose: str) -> dict:
    """One collect of the running order of this purpose (``login`` or ``sign``).

    The signature itself is made by ``journey.poll_bankid``, the Classic UI's own code path.
    """
    flow = sessions.current_flow(request)
    if flow is None or flow.get("kind") != "bankid" or flow.get("purpose") != purpose:
        what = "inloggning" if purpose == "login" else "underskrift"
        raise NotFound(f"Ingen BankID-{what} pågår. Börja om.")
    case_uid = flow.get("case")
    result = journey.poll_bankid(request)
    answer = {"status": result["status"], "message": result.get("message", "")}
    if result.get("hint"):
        answer["hint"] = result["hint"]
    if result["status"] == "pending" and flow["mode"] == "qr":
        answer["qr"] = qr_data(flow)
    if result["status"] == "complete":
        if purpose == "sign":
            answer["case"] = case_uid
        answer["pending"] = f"{journey.portal_url()}/@esign-pending"
    return answer


def mode_of(data: dict) -> str:
    mode = data.get("mode", "qr")
    if mode not in MODES:
        raise InvalidInput('Fältet \'mode\' ska vara "qr" eller "same_device".', field="mode")
    return mode

"""How often one client may start a BankID order: a sliding window counted in the ZODB.

Every BankID order costs the relying party money and sends a notification to
somebody's phone when a personnummer is given; a script that starts orders in a
loop would do both at our expense. So each client address may start at most
``limit`` orders per ``window`` seconds (10 per 5 minutes unless
``$ESIGN_BANKID_RATE`` says otherwise, e.g. ``20/600``; ``0`` or ``off`` switches
the limit off). The count lives in the ZODB beside the signer sessions, so all
Zope instances of a site share it: a client cannot get a fresh allowance by
being balanced onto another instance.

The count is kept per *slot* (a fifth of the window, at most a minute): an
``LOBTree`` from the slot's first second to an ``OIBTree`` from client key to count. Two
requests from different clients change different keys of one bucket, which
BTrees' conflict resolution merges; only the same client's simultaneous
requests, or the first request of a new slot, conflict, and Zope retries those.
Old slots are dropped by whoever opens a new one, so the store holds at most one
window of clients. Client keys are keyed hashes (HMAC-SHA-256 with a random
per-site salt), never the address itself, and an IPv6 client counts as its /64
network, which one household or phone holds whole.

The client address is what ``journey.end_user_ip`` reads: Zope's
``getClientAddr()``, which takes ``X-Forwarded-For`` only from a proxy named in
zope.conf's ``trusted-proxy``. Behind a proxy that is not named there, every
person shares the proxy's address and therefore one allowance.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from BTrees.LOBTree import LOBTree
from BTrees.OIBTree import OIBTree

from esign.plone import logger, storage
from esign.plone.errors import ESignError

#: The environment variable that sets the rate: ``<starts>/<seconds>``, or ``0``/``off``.
ENVIRONMENT = "ESIGN_BANKID_RATE"
#: What the person sees when refused (the REST door answers it with status 429).
MESSAGE = "För många inloggningsförsök. Försök igen om en stund."

STORE = "ratelimit"
_SALT = "salt"
_BANKID = "bankid"
#: Slots per window: the window slides in steps of a fifth of its length (at most a minute).
SLOTS_PER_WINDOW = 5
MAX_SLOT_SECONDS = 60


class TooManyAttempts(ESignError):
    """A client started more BankID orders than the rate allows; it may try again later."""

    http_status = 429
    kind = "TooManyRequests"

    def __init__(self, message: str = MESSAGE, *, retry_after: int = 0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` BankID order starts per client in any ``window`` seconds."""

    #: Order starts allowed per window.
    limit: int
    #: The window's length in seconds.
    window: int

    @property
    def slot_seconds(self) -> int:
        """How far the window slides in one step: a fifth of it, at least a second, at most a minute."""
        return max(1, min(MAX_SLOT_SECONDS, self.window // SLOTS_PER_WINDOW))

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """``"10/300"`` → ``Rate(10, 300)``; ``"0"``, ``"off"`` → ``None`` (no limit).

        :raises ValueError: anything else.
        """
        text = text.strip().lower()
        if text in ("0", "off", "none", "unlimited"):
            return None
        limit, slash, window = text.partition("/")
        if not slash:
            raise ValueError(f"{ENVIRONMENT} must read <starts>/<seconds>, e.g. 10/300, not {text!r}")
        rate = cls(limit=int(limit), window=int(window))
        if rate.limit < 1 or rate.window < 1:
            raise ValueError(f"{ENVIRONMENT} needs a positive number of starts and seconds, not {text!r}")
        return rate


DEFAULT = Rate(limit=10, window=300)


def configured_rate(environ: Mapping[str, str] | None = None) -> Rate | None:
    """The rate in force: ``$ESIGN_BANKID_RATE``, else :data:`DEFAULT`; ``None`` when switched off.

    A value that cannot be read is logged and the default applies: a typo must not open the door.
    """
    text = (os.environ if environ is None else environ).get(ENVIRONMENT, "").strip()
    if not text:
        return DEFAULT
    try:
        return Rate.parse(text)
    except ValueError as exc:
        logger.warning("%s; using the default %d/%d", exc, DEFAULT.limit, DEFAULT.window)
        return DEFAULT


def client_key(address: str) -> str:
    """The address a limit counts: IPv4 as is, IPv6 as its /64 network, anything else as written."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip() or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _root():
    return storage.store(STORE)


def _salt(root) -> bytes:
    salt = root.get(_SALT)
    if salt is None:
        salt = root[_SALT] = secrets.token_hex(32)
    return salt.encode()


def _slots(root) -> LOBTree:
    slots = root.get(_BANKID)
    if slots is None:
        slots = root[_BANKID] = LOBTree()
    return slots


def _digest(root, address: str) -> str:
    return hmac.new(_salt(root), client_key(address).encode(), hashlib.sha256).hexdigest()[:32]


def _window_start(rate: Rate, now: float) -> tuple[int, int]:
    """``(first, current)``: the start (epoch seconds) of the window's oldest slot and of the current one.

    Slots are keyed by the second they start, not by their number, so a changed rate reads the
    slots an earlier one wrote as the times they are.
    """
    step = rate.slot_seconds
    current = int(now // step) * step
    return current - (math.ceil(rate.window / step) - 1) * step, current


def starts_in_window(address: str, *, rate: Rate | None = None, now: float | None = None) -> int:
    """How many BankID orders ``address`` started in the window that ends now."""
    rate = rate or configured_rate() or DEFAULT
    root = _root()
    first, current = _window_start(rate, time.time() if now is None else now)
    key = _digest(root, address)
    return sum(counts.get(key, 0) for counts in _slots(root).values(min=first, max=current))


def check_bankid_start(address: str, *, response=None, now: float | None = None) -> None:
    """Count one BankID order start for ``address``, or refuse it when the rate is used up.

    Call before the order is started, so that a refused client starts none.

    :param address: the client's address, as ``journey.end_user_ip`` reads it.
    :param response: the Zope response; a refusal sets ``Retry-After`` on it.
    :param now: epoch seconds (tests).
    :raises TooManyAttempts: the client has started ``limit`` orders within the window.

    Example::

        ratelimit.check_bankid_start(journey.end_user_ip(request), response=request.response)
    """
    rate = configured_rate()
    if rate is None:
        return
    now = time.time() if now is None else now
    root = _root()
    slots, key = _slots(root), _digest(root, address)
    first, current = _window_start(rate, now)
    window = [(start, counts.get(key, 0)) for start, counts in slots.items(min=first, max=current)]
    used = sum(count for _, count in window)
    if used >= rate.limit:
        retry_after = _retry_after(window, rate, used=used, now=now)
        logger.info("BankID order refused: client %s… started %d in %d s", key[:8], used, rate.window)
        if response is not None:
            response.setHeader("Retry-After", str(retry_after))
        raise TooManyAttempts(retry_after=retry_after)
    counts = slots.get(current)
    if counts is None:
        counts = slots[current] = OIBTree()
        _drop_before(slots, first)
    counts[key] = counts.get(key, 0) + 1


def _retry_after(window: list[tuple[int, int]], rate: Rate, *, used: int, now: float) -> int:
    """Seconds until enough of the oldest starts have slid out of the window for one more."""
    excess = used - rate.limit + 1
    step = rate.slot_seconds
    span = math.ceil(rate.window / step)
    for start, count in window:
        excess -= count
        if excess <= 0:
            return max(1, math.ceil(start + span * step - now))
    return rate.window


def _drop_before(slots: LOBTree, first: int) -> None:
    for start in list(slots.keys(max=first - 1)):
        del slots[start]


def purge(*, now: float | None = None) -> int:
    """Drop the slots no window can see any more (the limiter does this itself; for maintenance)."""
    rate = configured_rate() or DEFAULT
    slots = _slots(_root())
    first, _ = _window_start(rate, time.time() if now is None else now)
    doomed = len(list(slots.keys(max=first - 1)))
    _drop_before(slots, first)
    return doomed

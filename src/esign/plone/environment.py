"""Settings read from ``ESIGN_*`` environment variables that several parts share."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

#: The longest wait a timeout variable may ask for: a person is waiting on the other end.
MAX_TIMEOUT_SECONDS = 120.0


def seconds_from_env(variable: str) -> float | None:
    """``variable`` as a timeout in seconds (0 < s <= 120); ``None`` when unset or unusable.

    A value that is not a number of seconds in that range is logged and ignored: the default
    timeout is better than none, and better than a typo that leaves people waiting forever.
    """
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_TIMEOUT_SECONDS:
        logger.warning(
            "%s=%r is not a number of seconds in (0, %s]; using the default",
            variable,
            raw,
            MAX_TIMEOUT_SECONDS,
        )
        return None
    return value

"""Login throttling: attempts per account and per client address, counted by the ``limits`` library.

Counters live in memory for one process, or in Redis when the service runs distributed
(``Settings.broker_url``), so that every API process sees the same counts. Each attempt,
right or wrong, uses one slot of both windows before any password is checked; a successful
login frees the account's window again. The account is keyed by a hash of the e-mail, so the
store never holds addresses.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

__all__ = ["LoginThrottle", "ThrottleUnavailableError", "ThrottledError", "check_rate"]


class ThrottledError(Exception):
    """Too many attempts; ``retry_after_s`` says when the next one is allowed."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ThrottleUnavailableError(RuntimeError):
    """The counters' store (Redis) cannot be reached; logins are refused rather than unthrottled."""


def check_rate(value: str) -> str:
    """A settings validator: ``value`` must be a ``limits`` rate such as ``10/minute``."""
    try:
        parse(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a rate like `10/minute` or `100/hour`.") from exc
    return value


class LoginThrottle:
    def __init__(self, *, per_account: str, per_address: str, storage_uri: str = "memory://") -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._account = parse(per_account)
        self._address = parse(per_address)

    @staticmethod
    def _account_key(email: str) -> str:
        return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:32]

    def _retry_after(self, item: RateLimitItem, key: str) -> int:
        reset = self._limiter.get_window_stats(item, "login", key).reset_time
        return max(1, math.ceil(reset - time.time()))

    def attempt(self, email: str, address: str) -> None:
        """Count one login attempt; ``ThrottledError`` when either window is full."""
        account = self._account_key(email)
        try:
            if not self._limiter.hit(self._address, "login", f"address:{address}"):
                raise ThrottledError(
                    "Too many login attempts from this address; try again later.",
                    self._retry_after(self._address, f"address:{address}"),
                )
            if not self._limiter.hit(self._account, "login", f"account:{account}"):
                raise ThrottledError(
                    "Too many login attempts for this account; try again later.",
                    self._retry_after(self._account, f"account:{account}"),
                )
        except ThrottledError:
            raise
        except Exception as exc:  # the store's own errors (redis ConnectionError, ...)
            raise ThrottleUnavailableError("the login rate limiter's store cannot be reached") from exc

    def succeeded(self, email: str) -> None:
        """A correct password frees the account's window (the address keeps its count)."""
        try:
            self._limiter.clear(self._account, "login", f"account:{self._account_key(email)}")
        except Exception as exc:
            raise ThrottleUnavailableError("the login rate limiter's store cannot be reached") from exc

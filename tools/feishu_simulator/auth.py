"""Token issuance and checking, with the reference's reuse and error-code rules.

Kept apart from the HTTP layer so the rules (reuse above 30 minutes left, which
code for which bad token) read in one place.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

REUSE_ABOVE_SECONDS = 1800  # a token with more than 30 minutes left is handed out again

# Business-call token error codes (the HTTP status is a fault setting, except 1470403).
NO_TOKEN = (
    99991661,
    "Missing access token for authorization. Please make a request with token attached.",
)
TENANT_TOKEN_INVALID = (
    99991663,
    "Invalid access token for authorization. Please make a request with token attached.",
)
USER_TOKEN_INVALID = (99991668, "Invalid user access token.")
TOKEN_FORMAT_INVALID = (99991671, "Invalid access token format.")
USER_TOKEN_EXPIRED = (99991677, "User access token expired.")
WRONG_TOKEN_TYPE = (1470403, "token is neither a user nor a tenant token")


@dataclass(slots=True)
class _Issued:
    """One token handed out by the token endpoint."""

    token: str
    expires_at: float  # on the store's monotonic clock
    revoked: bool = False


class TokenStore:
    """Tenant tokens issued so far plus the accepted user tokens, for one app."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        user_tokens: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.user_tokens: set[str] = set(user_tokens)
        self._expired_user_tokens: set[str] = set()
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, _Issued] = {}
        self._newest: _Issued | None = None

    def credentials_ok(self, app_id: object, app_secret: object) -> bool:
        """Whether a token request names this app with its secret."""
        return (
            app_id == self.app_id
            and isinstance(app_secret, str)
            and secrets.compare_digest(app_secret.encode(), self._secret.encode())
        )

    def issue(self, ttl_seconds: int, prefix: str) -> tuple[str, int]:
        """(token, seconds left): the newest token again while it has over 30 minutes left.

        Otherwise a new token with ``ttl_seconds``; older tokens stay valid until they expire.
        """
        now = self._clock()
        with self._lock:
            newest = self._newest
            if newest is not None and not newest.revoked and newest.token.startswith(prefix):
                left = newest.expires_at - now
                if left > REUSE_ABOVE_SECONDS:
                    return newest.token, int(left)
            issued = _Issued(prefix + secrets.token_hex(20), now + ttl_seconds)
            self._issued[issued.token] = issued
            self._newest = issued
            return issued.token, int(ttl_seconds)

    def issued_tokens(self) -> list[str]:
        """Every tenant token handed out so far (tests check that none of them leaks)."""
        with self._lock:
            return list(self._issued)

    def check(self, authorization: str | None) -> tuple[int, str] | None:
        """None if the Authorization header carries a usable token, else (code, msg)."""
        if not authorization or not authorization.startswith("Bearer "):
            return NO_TOKEN
        token = authorization[7:].strip()
        if not token:
            return NO_TOKEN
        issued = self._issued.get(token)
        if issued is not None:
            if issued.revoked or self._clock() >= issued.expires_at:
                return TENANT_TOKEN_INVALID
            if not token.startswith("t-"):
                return WRONG_TOKEN_TYPE
            return None
        if token.startswith("u-"):
            if token in self.user_tokens:
                return None
            return USER_TOKEN_EXPIRED if token in self._expired_user_tokens else USER_TOKEN_INVALID
        if token.startswith("t-"):
            return TENANT_TOKEN_INVALID
        return TOKEN_FORMAT_INVALID

    def expire_all(self, include_user_tokens: bool = False) -> None:
        """Revoke every tenant token issued so far (and optionally the user tokens)."""
        with self._lock:
            for issued in self._issued.values():
                issued.revoked = True
            self._newest = None
            if include_user_tokens:
                self._expired_user_tokens |= self.user_tokens
                self.user_tokens = set()

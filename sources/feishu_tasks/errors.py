"""Every error the connector raises on purpose, in one tree.

::

    FeishuError                  root: ``except FeishuError`` catches everything below
    ├── FatalError               the run cannot go on; ``str()`` is the one line to show
    │   ├── ConfigError          a setting, flag or input is wrong (names the key and what it takes)
    │   ├── CredentialsError     Feishu refused the credentials or the token type
    │   └── BadAnswersError      answers are systematically not Feishu's (wrong base_url, a proxy)
    ├── TaskError                one task (or one listing) could not be read: recorded as data
    │   ├── ApiError             a non-zero business code that retrying will not cure
    │   │   └── RefusedHere      credentials refused for this request only (accepted for others)
    │   ├── RetriesExhausted     transient faults (5xx, 429, timeouts, bad bodies) until attempts ran out
    │   └── ProtocolError        the answer broke the API's contract (pagination, envelope, items)
    └── BudgetExhausted          not a failure: the run's ``max_requests`` is spent
        └── RateLimitedTooLong   an endpoint answered only rate limits past the bound: the rest waits

The runner adds its own fatal errors (another run holds the lock, the destination is busy)
under ``FatalError``. Messages never carry tokens or secrets: they are printed, logged and
stored in dlt's trace and in ``task_fetch_status``.
"""

from __future__ import annotations


class FeishuError(Exception):
    """Root of the connector's errors."""


class FatalError(FeishuError):
    """Stops the run; ``str()`` is the one line that tells the user what to fix."""


class ConfigError(FatalError):
    """A configuration value, flag or input cannot be used."""


def events_extra_missing(what: str, exc: ImportError) -> FatalError:
    """``<what> needs the events extra (cryptography is missing): pip install …``: the receiver's
    crypto and the long connection's frames are an optional extra."""
    missing = str(exc.name).split(".")[0]
    return FatalError(
        f"{what} needs the events extra ({missing} is missing): pip install 'feishu-task-followers[events]'"
    )


class CredentialsError(FatalError):
    """Feishu refused the app credentials, the user token, or the token type."""


class BadAnswersError(FatalError):
    """The server keeps answering with something that is not the Feishu API."""


class TaskError(FeishuError):
    """One task (or one listing) failed; the run goes on and the failure becomes data.

    ``code`` and ``log_id`` are the API's business code and request log id when known.
    """

    code: int | None = None
    log_id: str | None = None


class ApiError(TaskError):
    """A business answer with a non-zero code that retrying will not cure."""

    def __init__(self, http_status: int, code: int | None, msg: str, log_id: str | None = None) -> None:
        super().__init__(http_status, code, msg, log_id)
        self.http_status, self.code, self.msg, self.log_id = http_status, code, msg, log_id

    def __str__(self) -> str:
        return f"HTTP {self.http_status}, code {self.code}: {self.msg}"


class RefusedHere(ApiError):
    """Credentials the endpoint accepts for other requests, refused for this one: a ``failed``
    task whatever the code says (see ``watches.CredentialsWatch``)."""

    def __str__(self) -> str:
        return f"{super().__str__()} (refused for this request only: accepted for others)"


def business_code(exc: TaskError) -> int | None:
    """The code that says what is wrong with the task or list itself: an ApiError's, not a refusal's."""
    return exc.code if isinstance(exc, ApiError) and not isinstance(exc, RefusedHere) else None


class RetriesExhausted(TaskError):
    """A request kept failing transiently (5xx, 429, timeouts, bad bodies) until its attempts ran out."""

    def __init__(
        self, attempts: int, last_error: str, code: int | None = None, log_id: str | None = None
    ) -> None:
        super().__init__(attempts, last_error, code, log_id)
        self.attempts, self.last_error, self.code, self.log_id = attempts, last_error, code, log_id

    def __str__(self) -> str:
        return f"gave up after {self.attempts} attempts: {self.last_error}"


class ProtocolError(TaskError):
    """The server broke the API's contract: a repeated page token, endless pages, a malformed answer."""

    def __init__(self, msg: str, log_id: str | None = None) -> None:
        super().__init__(msg, log_id)
        self.msg, self.log_id = msg, log_id

    def __str__(self) -> str:
        return self.msg


class BudgetExhausted(FeishuError):
    """The run's ``max_requests`` cap is reached: what is left waits for a later run."""


class RateLimitedTooLong(BudgetExhausted):
    """An endpoint answered nothing but rate limits for ``max_rate_limited_seconds``: what is left
    waits for a later run, as past ``max_requests``, and the runner stops with ``str()``."""

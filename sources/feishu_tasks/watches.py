"""Is a bad answer the run's problem or one request's? Two watches that tell them apart.

A run must stop, with one line, when something is wrong for every request (a wrong
``base_url``, bad credentials, a wrong token type), and must go on, recording one failed task,
when an answer is odd for one request only (a proxy's error page, a server quirk on one task).
Both watches decide from what the run has seen so far, not from one answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .endpoints import Endpoint
from .errors import ApiError, BadAnswersError, FatalError, RateLimitedTooLong, RefusedHere
from .responses import Transient, Verdict

# This many bad bodies before any answer in Feishu's envelope: not a bad task, a wrong
# base_url or a proxy in the way. Random bad answers at even a 50 % rate get here once in
# a million runs.
FIRST_ANSWERS_ALL_BAD = 20

# This many refusals of our credentials in a row, with no request accepted in between: the
# credentials stopped working mid-run (the app was disabled, a user token expired), not one
# task's odd answer. Bounded cost of being wrong: this many tasks recorded as failed first.
REFUSALS_IN_A_ROW = 20


class FirstAnswersWatch:
    """Stops the run when its first answers are all bad bodies (one bad task is not a reason).

    Once one answer came in Feishu's envelope, the host is right and bad bodies are faults of
    their requests: they are retried, and a task that keeps getting them fails alone.
    """

    def __init__(self, base_url: str, limit: int = FIRST_ANSWERS_ALL_BAD) -> None:
        self.base_url = base_url
        self.limit = limit
        self.trusted = False
        self.bad = 0

    def note(self, verdict: Verdict) -> None:
        if self.trusted:
            return
        if not isinstance(verdict, Transient) or not verdict.bad_body:
            self.trusted = True
            return
        self.bad += 1
        if self.bad >= self.limit:
            raise BadAnswersError(
                f"the first {self.bad} answers from {self.base_url} were not the Feishu API "
                f"(the last: {verdict.reason}); check base_url and any proxy in between"
            )


@dataclass(frozen=True)
class Undecided:
    """A refusal that cannot be judged yet: tried again, and fatal if the tries run out."""

    fatal: FatalError

    def give_up(self, attempts: int) -> FatalError:
        return self.fatal


class CredentialsWatch:
    """Tells refused credentials (fatal) from an endpoint refusing them for one request only.

    A refusal (a token error after the one renewal, a wrong-token-type code) on an endpoint
    that has accepted our credentials in this run is that request's answer: its task fails.
    Before the endpoint accepted anything it is undecided: the request is tried again while
    other requests speak, and is fatal if its tries run out. Fatal either way once ``limit``
    refusals come in a row with no acceptance between. Per endpoint, because a token type can
    be right for one endpoint and wrong for another.
    """

    def __init__(self, limit: int = REFUSALS_IN_A_ROW) -> None:
        self.limit = limit
        self.accepting: set[str] = set()  # endpoints that accepted our credentials in this run
        self.refusals_in_a_row = 0

    def accepted(self, endpoint: Endpoint) -> None:
        self.accepting.add(endpoint.name)
        self.refusals_in_a_row = 0

    def refused(self, endpoint: Endpoint, fatal: FatalError, answer: ApiError) -> ApiError | Undecided:
        """This request's error (its task fails), or Undecided; raises ``fatal`` when systematic."""
        self.refusals_in_a_row += 1
        if self.refusals_in_a_row >= self.limit:
            raise fatal
        if endpoint.name not in self.accepting:
            return Undecided(fatal)
        return RefusedHere(answer.http_status, answer.code, answer.msg, answer.log_id)


class RateLimitWatch:
    """Ends the run's requests once an endpoint has answered nothing but rate limits for too long.

    Like the refusals in a row above, a streak, not a total: any other answer of the endpoint
    ends it, so a healthy run that meets 429s now and then (each pauses the endpoint a second
    or a minute) never adds up to the bound, however long it runs. Past the bound every request
    of the run raises ``RateLimitedTooLong``: the tasks not read wait for the next run.
    """

    def __init__(self, limit_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_seconds = limit_seconds
        self.clock = clock
        self.since: dict[str, float] = {}  # endpoint → when its current streak of rate limits began
        self.tripped: RateLimitedTooLong | None = None

    def answered(self, endpoint: Endpoint) -> None:
        """An answer other than a rate limit: the endpoint is open to us."""
        self.since.pop(endpoint.name, None)

    def rate_limited(self, endpoint: Endpoint) -> None:
        """A rate limit; raises ``RateLimitedTooLong`` once the streak has lasted the bound."""
        now = self.clock()
        began = self.since.setdefault(endpoint.name, now)
        if self.tripped is None and now - began >= self.limit_seconds:
            self.tripped = RateLimitedTooLong(
                f"every answer of the {endpoint.name} endpoint for {now - began:.0f} s was a rate limit "
                f"(429): stopped; what was fetched is loaded, the rest waits for the next run (the bound: "
                f"--max-rate-limited / max_rate_limited_seconds, {self.limit_seconds:g} s)"
            )
        self.check()

    def check(self) -> None:
        """Raises ``RateLimitedTooLong`` once the bound was reached: no request starts after it."""
        if self.tripped is not None:
            raise self.tripped

"""``feishu-followers subscribe``: ask Feishu for the task events of the app (and of a user).

Feishu pushes ``task.task.update_user_access_v2`` only for tasks subscribed through
``POST /open-apis/task/v2/task_v2/task_subscription``: with the app's identity (tenant token) it
covers the tasks the app is responsible for; with a user's (user token), the tasks that user
created, is responsible for or follows. Subscribing again is harmless (Feishu keeps one
subscription per identity), so this can run on every deployment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import dlt
import httpx

from feishu_tasks.auth import TenantToken, TokenSource, UserToken
from feishu_tasks.errors import ConfigError, CredentialsError, FatalError, TaskError
from feishu_tasks.responses import (
    Fatal,
    Malformed,
    Ok,
    RateLimited,
    TaskFailed,
    TokenRejected,
    Transient,
    classify,
)
from feishu_tasks.retry import Attempts, RetryPolicy
from feishu_tasks.settings import DEFAULT_TIMEOUT_SECONDS, FEISHU_BASE_URL
from feishu_tasks.transport import PlainHttp

SUBSCRIPTION_PATH = "/open-apis/task/v2/task_v2/task_subscription"
SECTION = "sources.feishu_tasks"

COVERS = {
    "app": "the tasks the app is responsible for",
    "user": "the tasks the user created, is responsible for or follows",
}


@dataclass(frozen=True)
class Subscribed:
    """One identity's subscription and what its events cover."""

    identity: str  # "app" or "user"
    covers: str
    already: bool = False  # the answer said the identity was subscribed before (when it says so)

    def line(self) -> str:
        """``app: subscribed to task events; they cover the tasks the app is responsible for``."""
        state = "already subscribed" if self.already else "subscribed"
        return f"{self.identity}: {state} to task events; they cover {self.covers}"


def _setting(name: str) -> Any:
    value: Any = dlt.secrets.get(f"{SECTION}.credentials.{name}")
    if value is None:
        value = dlt.secrets.get(f"{SECTION}.{name}")
    return value


def subscribe(base_url: str | None = None, user_id_type: str = "open_id") -> list[Subscribed]:
    """Subscribe every identity the credentials provide; raises FatalError (one line) on refusal."""
    base = (base_url or dlt.config.get(f"{SECTION}.base_url") or FEISHU_BASE_URL).rstrip("/")
    app_id, app_secret, user_token = _setting("app_id"), _setting("app_secret"), _setting("user_access_token")
    if not (app_id and app_secret) and not user_token:
        raise ConfigError(
            "no credentials: set SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID and …__APP_SECRET "
            "(and, for a user's tasks, …__USER_ACCESS_TOKEN)"
        )
    return asyncio.run(_subscribe_all(base, user_id_type, app_id, app_secret, user_token))


async def _subscribe_all(
    base_url: str, user_id_type: str, app_id: Any, app_secret: Any, user_token: Any
) -> list[Subscribed]:
    done: list[Subscribed] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=DEFAULT_TIMEOUT_SECONDS) as client:
        http = PlainHttp(client, DEFAULT_TIMEOUT_SECONDS)
        identities: list[tuple[str, TokenSource]] = []
        if app_id and app_secret:
            identities.append(("app", TenantToken(http, str(app_id), str(app_secret), RetryPolicy())))
        if user_token:
            identities.append(("user", UserToken(str(user_token))))
        for identity, tokens in identities:
            data = await _subscribe_one(client, tokens, user_id_type)
            # Feishu documents no answer body; an explicit ``subscribed: false`` means "already"
            already = isinstance(data, dict) and data.get("subscribed") is False
            done.append(Subscribed(identity, COVERS[identity], already))
    return done


async def _subscribe_one(client: httpx.AsyncClient, tokens: TokenSource, user_id_type: str) -> Any:
    """One POST, retried (bounded) on rate limits, 5xx and answers that are not Feishu's; its ``data``."""
    attempts = Attempts(RetryPolicy())
    while True:
        token = await tokens.get()
        try:
            response = await client.post(
                SUBSCRIPTION_PATH,
                params={"user_id_type": user_id_type},
                headers={"Authorization": f"Bearer {token}"},
                json={},
            )
            verdict = classify(response.status_code, response.headers, response.content, "v2")
        except httpx.HTTPError as exc:
            verdict = Transient(f"{type(exc).__name__} (no answer)")
        try:
            match verdict:
                case Ok():
                    return verdict.data
                case TokenRejected():
                    raise CredentialsError(tokens.rejection_message(verdict.code, verdict.msg))
                case TaskFailed():
                    raise FatalError(
                        f"Feishu refused the task subscription ({verdict.error}); check that the app has the "
                        "task:task:read scope and the task event in the developer console"
                    )
                case RateLimited():
                    wait = attempts.after_rate_limit(verdict)
                case Transient() | Malformed() | Fatal():
                    wait = attempts.after_failure(
                        verdict if not isinstance(verdict, Fatal) else Transient(verdict.message)
                    )
        except TaskError as exc:
            raise FatalError(f"the task subscription did not succeed ({exc}); try again later") from None
        await asyncio.sleep(wait)

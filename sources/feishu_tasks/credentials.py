"""Credentials as dlt secrets: a self-built app's id and secret, or a user access token.

dlt resolves them like any verified source's credentials, from ``.dlt/secrets.toml``
(``[sources.feishu_tasks.credentials]``) or env vars such as
``SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID``; when neither kind is found, dlt's
``ConfigFieldMissingException`` names every key it tried. The shorter keys without the
``credentials`` section (``SOURCES__FEISHU_TASKS__APP_ID``, ``[sources.feishu_tasks] app_id``)
are read too, because the connector documented them before it had a credentials spec.

Both kinds may also hold the app's event secrets, ``encrypt_key`` and ``verification_token``
(the developer console's "Events and callbacks" page), which ``feishu-followers listen`` needs and
a load does not: optional here, required by ``listen`` (which resolves them, like these, from dlt
config, in ``feishu_followers.listen_settings``).
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue

SOURCE_SECTION = "sources.feishu_tasks"


def _fill_from_source_section(config: CredentialsConfiguration, fields: tuple[str, ...]) -> None:
    """Take missing fields from ``[sources.feishu_tasks]`` itself (the short, older keys)."""
    for name in fields:
        if getattr(config, name) is None:
            # no type: dlt.secrets then traces the lookup as a secret, and no coercion is needed
            value: Any = dlt.secrets.get(f"{SOURCE_SECTION}.{name}")
            if value is not None:
                setattr(config, name, str(value))
    if not config.is_partial():
        config.resolve()


@configspec
class FeishuAppCredentials(CredentialsConfiguration):
    """An app's id and secret: a self-built app's (the default) or a store app's (``app_type = "store"``).

    The connector fetches and refreshes the tokens itself.
    """

    # dlt requires a field whose hint is not Optional; None only means "not resolved yet".
    app_id: str = None  # type: ignore[assignment]
    app_secret: TSecretStrValue = None  # type: ignore[assignment]
    # "custom" (self-built: one tenant, its token from the secret) or "store" (ISV: the token
    # chain from the app_ticket that `listen` records, one tenant token per tenant_key).
    app_type: str | None = None
    encrypt_key: TSecretStrValue | None = None
    verification_token: TSecretStrValue | None = None

    def on_partial(self) -> None:
        _fill_from_source_section(self, ("app_id", "app_secret"))
        if self.app_type is None:
            self.app_type = dlt.config.get(f"{SOURCE_SECTION}.app_type")


@configspec
class FeishuUserCredentials(CredentialsConfiguration):
    """A user access token (``u-...``): it sees what that user sees, and cannot be refreshed here."""

    user_access_token: TSecretStrValue = None  # type: ignore[assignment]
    encrypt_key: TSecretStrValue | None = None
    verification_token: TSecretStrValue | None = None

    def on_partial(self) -> None:
        _fill_from_source_section(self, ("user_access_token",))


FeishuCredentials = FeishuAppCredentials | FeishuUserCredentials

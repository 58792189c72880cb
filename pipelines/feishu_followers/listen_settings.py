"""What ``listen`` needs from dlt config, resolved by dlt in a short-lived child process.

``listen`` runs for months and must stay small (no dlt, pyarrow or duckdb in its process: dlt
alone is ~55 MB and 800 modules), yet its secrets and its journal must come from dlt's providers
exactly as a load's do (env vars, ``.dlt/secrets.toml``, ``.dlt/config.toml``, any provider a
project configured) and the journal must be the one ``run`` of the same pipeline options finds.
So the parent (``resolve``, light) runs ``python -m feishu_followers.listen_settings``, which
imports dlt, resolves, and hands the values back over a pipe (never a terminal, never a file).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from feishu_tasks.errors import ConfigError, FatalError
from feishu_tasks.settings import FEISHU_BASE_URL

from .events import EventKeys

SECTION = "sources.feishu_tasks"
ENV = "SOURCES__FEISHU_TASKS__CREDENTIALS__"
RESOLVE_TIMEOUT_SECONDS = 120.0
FLAGS = ("journal", "pipelines_dir", "base_url")


@dataclass(frozen=True)
class ListenSettings:
    """The journal's path, the event secrets and, for the long connection, the app and the host."""

    journal: str
    keys: EventKeys
    base_url: str = FEISHU_BASE_URL
    app_id: str | None = None
    app_secret: str | None = field(default=None, repr=False)


def resolve(flags: dict[str, Any], long_connection: bool = False) -> ListenSettings:
    """Flags over dlt config, resolved in the child; a ConfigError (one line) when unusable."""
    given = {name: flags.get(name) for name in FLAGS}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "feishu_followers.listen_settings"],
            input=json.dumps(given),
            capture_output=True,
            text=True,
            timeout=RESOLVE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FatalError(f"could not read the configuration ({type(exc).__name__})") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise FatalError(lines[-1] if lines else f"could not read the configuration (exit {done.returncode})")
    values = json.loads(done.stdout)
    return _checked(values, long_connection)


def resolve_in_process(flags: dict[str, Any], long_connection: bool = False) -> ListenSettings:
    """As ``resolve``, for a process that has dlt imported anyway (``follow``): no child."""
    given = {name: flags.get(name) for name in FLAGS}
    return _checked(_resolve_in_child(given), long_connection)


def _checked(values: dict[str, Any], long_connection: bool) -> ListenSettings:
    token = values.get("verification_token")
    if not token:
        raise ConfigError(
            f"no verification token: set {ENV}VERIFICATION_TOKEN (or verification_token in "
            "[sources.feishu_tasks.credentials] of .dlt/secrets.toml) to the Verification Token of the "
            "app's Events and callbacks page in the developer console"
        )
    if long_connection and not (values.get("app_id") and values.get("app_secret")):
        raise ConfigError(
            f"--long-connection needs the app's credentials: set {ENV}APP_ID and {ENV}APP_SECRET "
            "(a custom app's; store apps can only use the request URL)"
        )
    return ListenSettings(
        journal=str(values["journal"]),
        keys=EventKeys(str(token), str(values["encrypt_key"]) if values.get("encrypt_key") else None),
        base_url=str(values.get("base_url") or FEISHU_BASE_URL).rstrip("/"),
        app_id=str(values["app_id"]) if values.get("app_id") else None,
        app_secret=str(values["app_secret"]) if values.get("app_secret") else None,
    )


# ------------------------------------------------------------------------------------ the child
def _secret(name: str) -> str | None:
    """``sources.feishu_tasks.credentials.<name>``, or the shorter ``sources.feishu_tasks.<name>``."""
    import dlt

    value: Any = dlt.secrets.get(f"{SECTION}.credentials.{name}")
    if value is None:
        value = dlt.secrets.get(f"{SECTION}.{name}")
    return None if value is None else str(value)


def _resolve_in_child(flags: dict[str, Any]) -> dict[str, Any]:
    from .options import RunOptions, from_config
    from .run import journal_path

    options = RunOptions.resolve(
        {"journal": flags.get("journal"), "pipelines_dir": flags.get("pipelines_dir")}
    )
    return {
        "journal": str(journal_path(options)),
        "base_url": flags.get("base_url") or from_config("base_url", None),
        **{name: _secret(name) for name in ("verification_token", "encrypt_key", "app_id", "app_secret")},
    }


def main() -> int:
    """The child: flags as JSON on stdin, the resolved values as JSON on stdout (a pipe only)."""
    if sys.stdout.isatty():
        print(
            "feishu-followers: listen_settings writes secrets: run by `feishu-followers listen`",
            file=sys.stderr,
        )
        return 2
    try:
        values = _resolve_in_child(json.loads(sys.stdin.read() or "{}"))
    except FatalError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # dlt's own errors (a config file that does not parse): one line, no values
        print(
            f"could not read the configuration: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(json.dumps(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())

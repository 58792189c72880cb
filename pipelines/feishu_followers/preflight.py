"""What a run checks before it creates anything: a run that cannot start leaves nothing behind.

No DuckDB file, no lock sidecar, no dlt working folder for a run that stops on missing
credentials, a mistyped base URL or a destination whose driver is not installed: the checks
here read configuration only, and run before the locks are taken.
"""

from __future__ import annotations

from typing import Any

import httpx
from dlt.common.configuration.exceptions import InvalidNativeValue
from dlt.common.destination import Destination

from feishu_tasks import feishu_tasks
from feishu_tasks.errors import ConfigError, FatalError

from .destination import make_destination
from .errors import explain_failure, missing_packages_line
from .options import NO_TASKS, SECTION, RunOptions, from_config

BASE_URL_KEY = f"--base-url / {SECTION}.base_url ({SECTION.upper().replace('.', '__')}__BASE_URL)"


def check_before_start(options: RunOptions) -> None:
    """Raise the one-line error of the first thing that would stop the run; create nothing."""
    destination = make_destination(options)  # also: an unknown name, a DuckDB file named badly
    check_installed(destination)
    check_destination_config(destination)
    if not options.names_tasks():
        raise FatalError(NO_TASKS)
    check_base_url(options.source_args.get("base_url") or from_config("base_url", None))
    # Building the source resolves its configuration, credentials included, and checks every
    # argument: dlt's error names the missing keys. The source makes no request until it runs.
    feishu_tasks(**options.source_arguments([]))


def check_installed(destination: Destination[Any, Any]) -> None:
    """The destination's driver is importable (psycopg2 for postgres): dlt imports it with the client."""
    try:
        destination.client_class  # noqa: B018 (the import is the check)
    except ModuleNotFoundError as exc:
        kind = str(destination.destination_type).rsplit(".", 1)[-1]
        raise FatalError(missing_packages_line(f"{kind} destination", [f"dlt[{kind}]"], exc.name)) from None


def check_base_url(base_url: Any) -> None:
    """An http(s) URL with a host: anything else would be retried as a network failure first."""
    if base_url is None:
        return
    text = str(base_url)
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"{BASE_URL_KEY}: cannot use {text!r}; expected an http:// or https:// URL such as "
            "https://open.feishu.cn"
        )


def check_destination_config(destination: Destination[Any, Any]) -> None:
    """The destination's settings parse (a connection string with a bad port does not); a missing one
    is left to dlt's own message at the pipeline, which names every key it tried."""
    if str(destination.destination_type).endswith(".duckdb"):
        return  # its file is ours (--duckdb), checked with the destination
    try:
        destination.configuration(None, accept_partial=True)
    except InvalidNativeValue as exc:
        raise ConfigError(explain_failure(exc) or str(exc)) from None

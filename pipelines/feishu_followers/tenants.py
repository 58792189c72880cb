"""A store app's run: one load per tenant (``run --tenant KEY``, repeatable, or ``--all-tenants``).

Each tenant is its own dlt pipeline (``<pipeline>__<tenant_key>``: its own working folder, state
and pending loads, so one tenant's load never lands in another's place) into the one dataset,
where every row carries its ``tenant_key``. A tenant's failure (it stopped the app, its token was
refused, no permission) is that tenant's outcome: the others still load, and the exit code says
whether any tenant failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from feishu_tasks.errors import FatalError
from feishu_tasks.journal import Journal, JournalError
from feishu_tasks.store_app import check_tenant_key

from .errors import fatal_errors_as_one_line
from .options import RunOptions
from .run import RunResult, journal_path, run
from .stderr import say

# The statuses a tenant loads in: it installed the app (app_open) and did not stop it since.
SERVING = ("installed", "active")


@dataclass
class TenantOutcome:
    """How one tenant's load ended: its result, or the one line that ended it."""

    tenant_key: str
    result: RunResult | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def chosen_tenants(options: RunOptions) -> list[str]:
    """``--tenant`` keys, then (``--all-tenants``) every serving tenant the journal knows; each checked.

    A key that is not a plain token is refused in one line before any request is made.
    """
    keys = list(options.tenants)
    if options.all_tenants:
        try:
            with Journal(journal_path(options)) as journal:
                known = journal.tenants()
        except JournalError as exc:
            raise FatalError(str(exc)) from None
        keys += [key for key, status in known.items() if status in SERVING]
        if not keys:
            raise FatalError(
                f"--all-tenants: no tenant has the app installed and on in {journal_path(options)}; "
                "`feishu-followers listen` records the app_open events there (or name one with --tenant)"
            )
    return [check_tenant_key(key) for key in dict.fromkeys(keys)]


def tenant_options(options: RunOptions, tenant_key: str) -> RunOptions:
    """One tenant's run: its own pipeline (working folder, state), the shared journal and dataset."""
    journal = str(journal_path(options))
    return replace(
        options,
        tenants=[],
        all_tenants=False,
        tenant_key=tenant_key,
        pipeline_name=f"{options.pipeline_name}__{tenant_key}",
        journal=journal,
        source_args={**options.source_args, "tenant_key": tenant_key, "ticket_journal": journal},
    )


def run_tenants(
    options: RunOptions,
    load: Callable[[RunOptions], RunResult] = run,
    notify: Callable[[str], None] = say,
) -> list[TenantOutcome]:
    """Load every chosen tenant; a tenant's fatal error is its outcome, never the others'."""
    with fatal_errors_as_one_line():
        keys = chosen_tenants(options)
    outcomes = []
    for key in keys:
        outcome = TenantOutcome(key)
        try:
            outcome.result = load(tenant_options(options, key))
        except FatalError as exc:
            outcome.error = str(exc)
            notify(f"tenant {key}: error: {exc}")
        outcomes.append(outcome)
    return outcomes


def tenants_json(outcomes: list[TenantOutcome]) -> dict[str, Any]:
    """``--json``: each tenant's summary (or its error), and whether any failed."""
    from .summary import summary_json

    return {
        "failed": [o.tenant_key for o in outcomes if o.failed],
        "tenants": {
            o.tenant_key: {"error": o.error} if o.result is None else summary_json(o.result) for o in outcomes
        },
    }


def format_tenants(outcomes: list[TenantOutcome]) -> str:
    """Each tenant's summary under its key, or its error line."""
    from .summary import format_summary

    blocks = []
    for o in outcomes:
        body = f"  error: {o.error}" if o.result is None else format_summary(o.result)
        blocks.append(f"tenant {o.tenant_key}:\n{body}")
    failed = [o.tenant_key for o in outcomes if o.failed]
    blocks.append(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} tenant(s) loaded"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(blocks)


def run_tenants_cli(options: RunOptions, as_json: bool = False) -> int:
    """``run --tenant`` / ``--all-tenants``: exit 1 when any tenant failed fatally, else 0."""
    outcomes = run_tenants(options)
    if as_json:
        print(json.dumps(tenants_json(outcomes), separators=(",", ":")), flush=True)
    elif not options.quiet:
        print(format_tenants(outcomes), flush=True)
    return 1 if any(o.failed for o in outcomes) else 0

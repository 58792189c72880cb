"""Runs ``feishu-followers`` and SIGKILLs it at a chosen point (for tests/test_crash.py).

Usage: python tests/crash_harness.py POINT run [flags...]. The points are real places in the
pipeline's path; the process dies exactly as a machine that is killed would.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_on_call(owner: Any, name: str, nth: int = 1, when: Any = None) -> None:
    """Replace ``owner.name`` so that its ``nth`` matching call kills the process."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when is None or when(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] >= nth:
                die()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def arm(point: str) -> None:
    if point == "extract":  # in the middle of extraction: first batch handed to dlt
        import feishu_tasks.resources as resources

        kill_on_call(resources, "status_table")
    elif point == "normalize":  # after the first extracted file was normalized
        from dlt.normalize.items_normalizers.arrow import ArrowItemsNormalizer

        kill_on_call(ArrowItemsNormalizer, "__call__", nth=2)
    elif point == "load":  # staging tables loaded, merge into the final tables about to run
        from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
        from dlt.destinations.impl.postgres.sql_client import Psycopg2SqlClient

        for client in (DuckDbSqlClient, Psycopg2SqlClient):
            kill_on_call(
                client, "execute_sql", when=lambda self, sql, *a, **k: "delete from" in str(sql).lower()
            )
    elif point == "staged":  # a table's rows are in the staging dataset, dlt has not yet recorded it
        from dlt.common.destination.client import RunnableLoadJob

        original = RunnableLoadJob.run_managed

        def run_then_die(self: Any, *args: Any) -> None:
            original(self, *args)
            if self._file_path and "task_followers." in str(self._file_path):
                die()

        RunnableLoadJob.run_managed = run_then_die  # type: ignore[method-assign]
    elif point == "load-twice-sigterm":  # at the merge, as above: SIGTERM, and again (a second signal)
        from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

        original_execute = DuckDbSqlClient.execute_sql
        sent = {"done": False}

        def signal_twice(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
            if not sent["done"] and "delete from" in str(sql).lower():
                sent["done"] = True
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)
            return original_execute(self, sql, *args, **kwargs)

        DuckDbSqlClient.execute_sql = signal_twice  # type: ignore[method-assign]
    elif point == "history":  # the load is complete, its history not yet applied
        import feishu_followers.history as history

        kill_on_call(history, "_apply_load")
    else:
        raise SystemExit(f"unknown point {point}")


if __name__ == "__main__":
    arm(sys.argv[1])
    from feishu_followers.cli import main

    sys.exit(main(sys.argv[2:]))

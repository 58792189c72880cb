"""Task participation analytics as pandas DataFrames, read from the views (views.py).

For notebook users: no SQL for the common questions, and the same answers as the views, from
a DuckDB file or from the destination of any pipeline that loaded them (Postgres, MotherDuck).

    with FollowerAnalytics.open("feishu_followers.duckdb") as fa:
        fa.follower_count_distribution()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import dlt
import pandas as pd
from dlt.common.destination import Destination
from dlt.common.pipeline import get_dlt_pipelines_dir
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.sql_client import SqlClientBase

from feishu_tasks.settings import STATUSES
from feishu_tasks.store_app import check_tenant_key
from feishu_tasks.tenant_column import LEGACY_TENANT

from .destination import destination_kind
from .options import PIPELINE_NAME, parse_duration
from .relations import VIEW, dataset_relations, rolled_back
from .stderr import say
from .views import STALE_AFTER, tenant_view_sql
from .waiting import wait_while_busy

# How long a query waits for a DuckDB file that a load holds (DuckDB: one writer, or readers):
# a load's merge and views take seconds to minutes; past this the query says the file is busy.
DEFAULT_LOCK_TIMEOUT_SECONDS = 120.0
BUSY_ADVICE = "try again once the load ends, or pass a longer lock_timeout"

# The views with a ``tenant_key`` column: ``for_tenant`` keeps them to one tenant.
TENANT_VIEWS = frozenset(
    {
        "followers_per_task",
        "tasks_without_followers",
        "tasks_per_follower",
        "co_following_pairs",
        "task_last_fetch",
    }
)


class FollowerAnalytics:
    """Read-only answers from one dataset, through dlt's SQL client; use as a context manager.

    Each query connects, runs in a transaction that is rolled back, and disconnects: DuckDB
    allows one writer process, and a reader that held the file open would block the scheduled
    load. ``open`` also opens a DuckDB file read-only. A DuckDB file that a load holds is waited
    for, up to ``lock_timeout`` seconds (one line on stderr says so); past it the query raises
    ``DestinationBusy`` saying the file is busy.
    """

    def __init__(
        self,
        sql_client: Callable[[], SqlClientBase[Any]],
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
        tenant_key: str | None = None,
    ) -> None:
        self._sql_client = sql_client
        self.lock_timeout = lock_timeout
        self.tenant_key = tenant_key  # None: every tenant (a custom app's rows have '')
        found = self._run(lambda client: dataset_relations(client).get("load_health"))
        if found != VIEW:
            raise LookupError(
                f"no analytics views in dataset {self.dataset!r}: load data first (feishu-followers run), "
                "every run creates them"
            )

    @classmethod
    def open(
        cls,
        duckdb_path: str | Path,
        dataset: str = "feishu_tasks",
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    ) -> FollowerAnalytics:
        """A DuckDB file, read-only (a running load keeps its file locked until it ends: waited for)."""
        if not Path(duckdb_path).exists():
            raise FileNotFoundError(f"no DuckDB file at {duckdb_path}")
        credentials = DuckDbCredentials(str(Path(duckdb_path).resolve()), read_only=True)
        return cls.from_destination(dlt.destinations.duckdb(credentials), dataset, lock_timeout)

    @classmethod
    def from_destination(
        cls,
        destination: Destination[Any, Any] | str,
        dataset: str,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    ) -> FollowerAnalytics:
        """Any dlt destination (a factory, or a name whose credentials dlt reads from its config)."""
        data = dlt.dataset(destination, dataset, schema=dlt.Schema(dataset))  # no schema lookup
        return cls(lambda: data.sql_client, lock_timeout)

    @classmethod
    def from_pipeline(
        cls,
        pipeline_name: str = PIPELINE_NAME,
        pipelines_dir: str | Path | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    ) -> FollowerAnalytics:
        """The destination and dataset that a dlt pipeline loaded into: by default the CLI's, the
        example pipeline's and the recipes' ``feishu_followers``.

        dlt's ``pipeline.dataset()`` is not used on purpose: its queries need a sqlglot that the
        installed dlt does not work with. A DuckDB file comes from the pipeline's last trace
        (``dlt.attach`` does not restore an explicit file path) and is opened read-only; any
        other destination is the pipeline's own, with credentials from dlt config.
        """
        pipeline = dlt.attach(pipeline_name, pipelines_dir=str(pipelines_dir or get_dlt_pipelines_dir()))
        trace = pipeline.last_trace
        load_info = trace.last_load_info if trace else None
        if load_info is None:
            raise LookupError(f"pipeline {pipeline_name!r} has not loaded anything yet")
        if destination_kind(pipeline) == "duckdb":
            credentials = DuckDbCredentials()
            credentials.parse_native_representation(load_info.destination_displayable_credentials)
            dataset = load_info.dataset_name or pipeline.dataset_name
            return cls.open(credentials.database, dataset, lock_timeout)
        return cls(pipeline.sql_client, lock_timeout)

    @property
    def dataset(self) -> str:
        return str(self._sql_client().dataset_name)

    def close(self) -> None:
        """Nothing is held between queries; kept so that ``with`` and old callers work."""

    def __enter__(self) -> FollowerAnalytics:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, work: Callable[[SqlClientBase[Any]], Any]) -> Any:
        def query() -> Any:
            with self._sql_client() as client, rolled_back(client):
                return work(client)

        what = "reading the analytics views"
        return wait_while_busy(query, what, self.lock_timeout, say, advice=BUSY_ADVICE)

    def sql(self, query: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Any query as a DataFrame; ``{ds}`` stands for the quoted dataset, ``%s`` for a parameter.

        It runs in a transaction that is rolled back: analysis cannot change the data.
        """

        def fetch(client: SqlClientBase[Any]) -> pd.DataFrame:
            return _frame(client, query.replace("{ds}", client.fully_qualified_dataset_name()), params)

        return self._run(fetch)

    def for_tenant(self, tenant_key: str) -> FollowerAnalytics:
        """The same dataset, every answer kept to one tenant of a store app: the task and follower
        views filtered on ``tenant_key``, the counts (distribution, churn, health) made from the
        tenant's rows alone by the views' own SQL (``views.tenant_view_sql``)."""
        if tenant_key != LEGACY_TENANT:  # a custom app's rows, loaded without a tenant key, have ''
            check_tenant_key(tenant_key)
        return FollowerAnalytics(self._sql_client, self.lock_timeout, tenant_key)

    def _view(
        self, view: str, order_by: str, where: str = "1 = 1", params: Sequence[Any] = ()
    ) -> pd.DataFrame:
        if self.tenant_key is None:
            return self.sql(f"select * from {{ds}}.{view} where {where} order by {order_by}", params)
        if view in TENANT_VIEWS:
            where, params = f"({where}) and tenant_key = %s", [*params, self.tenant_key]
            return self.sql(f"select * from {{ds}}.{view} where {where} order by {order_by}", params)
        tenant_key = self.tenant_key

        def fetch(client: SqlClientBase[Any]) -> pd.DataFrame:
            sql = tenant_view_sql(client, tenant_key)[view]
            return _frame(client, f"select * from ({sql}) v where {where} order by {order_by}", params)

        return self._run(fetch)

    # ---------------------------------------------------------------- followers and tasks
    def followers_per_task(self) -> pd.DataFrame:
        """Every task with known followers (0 included), most followed first, with task fields."""
        return self._view("followers_per_task", "followers desc, task_id")

    def most_followed_tasks(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` tasks with the most followers now."""
        return self.followers_per_task().head(n).reset_index(drop=True)

    def follower_count_distribution(self) -> pd.DataFrame:
        """How many tasks have 0, 1, 2-5, 6-20, 21-50, 51+ followers: all six buckets, in order."""
        return self._view("follower_count_distribution", "bucket_order")

    def tasks_without_followers(self) -> pd.DataFrame:
        """Tasks fetched successfully that nobody follows."""
        return self._view("tasks_without_followers", "task_id")

    def tasks_per_follower(self) -> pd.DataFrame:
        """Tasks each follower follows now and ever (since the first load), busiest first."""
        return self._view("tasks_per_follower", "tasks_now desc, tasks_ever desc, follower_id")

    def most_active_followers(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` followers who follow the most tasks now."""
        return self._view("tasks_per_follower", "tasks_now desc, follower_id", "tasks_now > 0").head(n)

    # ---------------------------------------------------------------- participation network
    def co_following_pairs(self, min_shared: int = 1) -> pd.DataFrame:
        """Pairs of followers (each pair once) sharing at least ``min_shared`` tasks now."""
        return self._view(
            "co_following_pairs",
            "shared_tasks desc, follower_a, follower_b",
            "shared_tasks >= %s",
            [min_shared],
        )

    def co_following_matrix(self, top: int = 15) -> pd.DataFrame:
        """Shared tasks between the ``top`` most active followers, as a symmetric matrix.

        The diagonal holds each follower's own task count; ready for a heatmap.
        """
        people = self.most_active_followers(top)
        ids = list(people["follower_id"])
        listed = ", ".join(["%s"] * len(ids)) or "null"
        pairs = self.sql(  # only these people's pairs: the whole network can be large
            f"select * from {{ds}}.co_following_pairs"
            f" where follower_a in ({listed}) and follower_b in ({listed})",
            [*ids, *ids],
        )
        matrix = pd.DataFrame(0, index=pd.Index(ids, name="follower"), columns=pd.Index(ids), dtype="int64")
        for a, b, shared in pairs[["follower_a", "follower_b", "shared_tasks"]].itertuples(index=False):
            matrix.loc[a, b] = matrix.loc[b, a] = shared
        for follower_id, tasks_now in people[["follower_id", "tasks_now"]].itertuples(index=False):
            matrix.loc[follower_id, follower_id] = tasks_now
        return matrix

    # ---------------------------------------------------------------- change over time
    def churn_daily(self) -> pd.DataFrame:
        """Follows added and removed per day (UTC), zero days included."""
        return self._view("follow_churn_daily", "day")

    def churn_per_load(self) -> pd.DataFrame:
        """Follows added and removed as observed by each load (one row per completed load)."""
        return self._view("follow_churn_per_load", "loaded_at")

    # ---------------------------------------------------------------- load health
    def load_health(self) -> pd.DataFrame:
        """Tasks per fetch status (all four always listed), with the stale ones (24 h) among them."""
        order = " ".join(f"when %s then {position}" for position, _ in enumerate(STATUSES, 1))
        return self._view("load_health", f"case status {order} else 99 end, status", params=list(STATUSES))

    def last_fetch_per_task(self) -> pd.DataFrame:
        """Each task's latest status, last successful fetch and age, oldest first."""
        return self._view("task_last_fetch", "age desc, task_id")

    def stale_tasks(self, older_than: timedelta | str = STALE_AFTER) -> pd.DataFrame:
        """Tasks not seen whole for longer than ``older_than`` (e.g. ``"6h"``), as ``--stale-after``."""
        limit = parse_duration(older_than) if isinstance(older_than, str) else older_than
        return self._view(
            "task_last_fetch",
            "age desc, task_id",
            "status <> 'invalid_task' and age > %s",
            [limit],
        )


# --------------------------------------------------------------------- query results as DataFrames
# Query results as DataFrames with the same dtypes whatever the destination's driver.
#
# psycopg2 and DuckDB hand back the same Python values except for details (a UTC timestamp's
# tzinfo class, for one), and DuckDB's own ``fetch_df`` picks dtypes that a row-based driver
# cannot reproduce. So every destination goes through rows here, and each column gets the
# dtype DuckDB's ``fetch_df`` would give it: timestamps ``datetime64[us, UTC]``, dates
# ``datetime64[us]``, intervals ``timedelta64[us]``, integers ``int64`` (``Int64`` with nulls).
def to_frame(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """A DataFrame of ``rows`` with driver-independent dtypes."""
    return pd.DataFrame(
        {name: _series([row[i] for row in rows]) for i, name in enumerate(columns)},
        columns=list(columns),
    )


def _series(values: list[Any]) -> pd.Series:
    present = [value for value in values if value is not None]
    kinds = {type(value) for value in present}
    if not present:
        return pd.Series(values, dtype=object)
    if all(issubclass(kind, datetime) for kind in kinds):
        if all(value.tzinfo is not None for value in present):
            return pd.Series(pd.to_datetime(values, utc=True)).astype("datetime64[us, UTC]")
        return pd.Series(pd.to_datetime(values)).astype("datetime64[us]")
    if all(issubclass(kind, date) for kind in kinds):
        return pd.Series(pd.to_datetime(values)).astype("datetime64[us]")
    if all(issubclass(kind, timedelta) for kind in kinds):
        return pd.Series(pd.to_timedelta(values)).astype("timedelta64[us]")
    if all(issubclass(kind, int) and not issubclass(kind, bool) for kind in kinds):
        return pd.Series(values, dtype="Int64" if len(present) < len(values) else "int64")
    if all(issubclass(kind, (Decimal, float, int)) and not issubclass(kind, bool) for kind in kinds):
        return pd.Series([None if value is None else float(value) for value in values], dtype="float64")
    return pd.Series(values)


def _frame(client: SqlClientBase[Any], sql: str, params: Sequence[Any]) -> pd.DataFrame:
    with client.execute_query(sql, *params) as cursor:
        columns = [column[0] for column in cursor.description or ()]
        return to_frame(columns, cursor.fetchall() if columns else [])

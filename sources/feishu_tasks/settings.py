"""Fixed facts about the Feishu / Lark Open Platform that the connector relies on, and the
connector's defaults (each written once: the source's signature, the client and the CLI's help
read them from here).

The facts come from ``docs/feishu-api.md`` (the API reference we work from); keep the two in step.
"""

from __future__ import annotations

FEISHU_BASE_URL = "https://open.feishu.cn"
LARK_BASE_URL = "https://open.larksuite.com"

TENANT_TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"

FOLLOWERS_PAGE_SIZE = 50  # the endpoint's maximum
TASKS_PAGE_SIZE = 100  # the list-tasks endpoint's maximum
TASKLIST_PAGE_SIZE = 100  # the maximum of both v2 list endpoints (task lists, a list's tasks)

# Which API reads a task's followers: v1's follower list, v2's get task, or v1 and, for a task
# from a task list that v1 calls invalid, one v2 try.
FOLLOWERS_APIS = ("v1", "v2", "auto")

USER_ID_TYPES = ("open_id", "union_id", "user_id")

# Documented task v1 quota: 50 requests/second AND 1000 requests/minute per app and tenant.
DEFAULT_MAX_RPS = 50.0
DEFAULT_MAX_RPM = 1000.0

# The source's other defaults.
DEFAULT_USER_ID_TYPE = "open_id"
DEFAULT_FOLLOWERS_API = "v1"
DEFAULT_CONCURRENCY = 32  # requests in flight: covers 50 req/s at up to 0.6 s each
DEFAULT_MAX_ATTEMPTS = 5  # tries per request on transient failures
DEFAULT_BACKOFF_BASE_SECONDS = 0.5  # the first backoff; it doubles per failed attempt, with jitter
DEFAULT_DISCOVER_LOOKBACK_SECONDS = 86_400
# An endpoint that answers nothing but rate limits this long is not busy but closed to us (a quota
# spent by another app of the tenant, a gateway gone wrong): the run stops and leaves the rest for
# the next. A real quota window is a minute (Feishu's reset is at most 60 s): five of them.
DEFAULT_MAX_RATE_LIMITED_SECONDS = 300.0
# ``follow``: a micro-batch of the changes starts at most this often. A batch of N changed tasks
# takes N / 50 s of the per-second quota's even pacing plus ~1 s of fixed cost, so under a steady
# stream of changes the wait for the next batch is what a change's latency is mostly made of
# (BENCHMARKS.md, "Change capture").
DEFAULT_FOLLOW_EVERY_SECONDS = 2.0
DEFAULT_FOLLOW_SWEEP_EVERY_SECONDS = 3600.0

# Token lifetime handling: refresh this many seconds before the token expires
# (the official SDKs use 3 to 10 minutes), but never more than half of a short lifetime.
TOKEN_REFRESH_MARGIN_SECONDS = 300.0

# Business error codes (body ``code``; the HTTP status is not reliable for these).
CODE_OK = 0
CODE_RATE_LIMITED = 99991400
CODE_TOKEN_MISSING = 99991661
CODE_TENANT_TOKEN_INVALID = 99991663
CODE_APP_TOKEN_INVALID = 99991664
CODE_TOKEN_MALFORMED = 99991671
CODE_USER_TOKEN_INVALID = 99991668
CODE_USER_TOKEN_EXPIRED = 99991677
CODE_WRONG_TOKEN_TYPE = 1470403
CODE_INVALID_TASK = 1470602
CODE_NO_PERMISSION = 1470432
CODE_INTERNAL_ERROR = 1470605

# A fresh token cures these when the token came from app credentials.
TOKEN_REFRESHABLE_CODES = frozenset(
    {CODE_TOKEN_MISSING, CODE_TENANT_TOKEN_INVALID, CODE_APP_TOKEN_INVALID, CODE_TOKEN_MALFORMED}
)
TOKEN_ERROR_CODES = TOKEN_REFRESHABLE_CODES | {CODE_USER_TOKEN_INVALID, CODE_USER_TOKEN_EXPIRED}
TRANSIENT_CODES = frozenset({CODE_INTERNAL_ERROR})

# Task v2 codes (docs/feishu-api.md, "Task v2"; the simulator's api/v2.py cites the pages).
CODE_V2_BAD_PARAM = 1470400
CODE_V2_NO_PERMISSION = 1470403
CODE_V2_NOT_FOUND = 1470404
CODE_V2_INTERNAL_ERROR = 1470500
V2_TRANSIENT_CODES = frozenset({CODE_V2_INTERNAL_ERROR})

# Outcomes recorded per task in ``task_fetch_status.status``.
STATUS_OK = "ok"
STATUS_INVALID = "invalid_task"
STATUS_FORBIDDEN = "no_permission"
STATUS_FAILED = "failed"
STATUS_DELETED = "deleted"  # an event said the task was deleted, and the API no longer knows it
STATUSES = (STATUS_OK, STATUS_INVALID, STATUS_FORBIDDEN, STATUS_FAILED)  # always shown, even at 0
ALL_STATUSES = (*STATUSES, STATUS_DELETED)  # deleted appears where there is one (change capture)
# The outcomes that say what the follower set is now (a deleted task has none): they replace a
# task's rows and move its history. Every other outcome leaves both alone.
FOLLOWER_SET_KNOWN = (STATUS_OK, STATUS_DELETED)
# Never due again in the stale sweep: reading them cannot change anything.
NEVER_DUE = (STATUS_INVALID, STATUS_DELETED)

# Bounds that end a server's endless answers. Far above any real task or tenant: a task
# with more than 50,000 followers (1,000 pages of 50) or a tenant listing more than a million
# tasks (10,000 pages of 100) is taken to be a server that never says "no more".
MAX_FOLLOWERS_PER_TASK = 50_000
DEFAULT_MAX_PAGES_PER_TASK = MAX_FOLLOWERS_PER_TASK // FOLLOWERS_PAGE_SIZE
DEFAULT_MAX_SECONDS_PER_TASK = 3600.0  # a 1,000-page task shares the quota with 31 others: ~30 min
MAX_LISTED_TASKS = 1_000_000
DEFAULT_MAX_LISTING_PAGES = MAX_LISTED_TASKS // TASKS_PAGE_SIZE
DEFAULT_MAX_LISTING_SECONDS = 86_400.0  # the listing waits for the fetch: a million tasks take ~17 h
DEFAULT_TIMEOUT_SECONDS = 30.0  # whole-request deadline: connect, send, and the complete answer

"""``feishu-followers``: run the load, receive events, run the simulator, or run the demo."""

from __future__ import annotations

import argparse
import difflib
import os
import re
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, NoReturn

from feishu_tasks.errors import ConfigError, FatalError, events_extra_missing
from feishu_tasks.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_FOLLOW_EVERY_SECONDS,
    DEFAULT_FOLLOW_SWEEP_EVERY_SECONDS,
    DEFAULT_MAX_RPM,
    DEFAULT_MAX_RPS,
    DEFAULT_USER_ID_TYPE,
    FEISHU_BASE_URL,
    FOLLOWERS_APIS,
    LARK_BASE_URL,
    USER_ID_TYPES,
)

from .allocators import use_lean_allocators
from .lock import PipelineBusy
from .stderr import say

EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_BUSY = 3

RUN_DESCRIPTION = """\
Load the followers of Feishu/Lark tasks into DuckDB (or any dlt destination).

Credentials never go on the command line: set SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID and
SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET (a self-built app), or
SOURCES__FEISHU_TASKS__CREDENTIALS__USER_ACCESS_TOKEN; or put app_id and app_secret under
[sources.feishu_tasks.credentials] in .dlt/secrets.toml (in the folder you run from).
Every option can also come from dlt config: [sources.feishu_tasks] in .dlt/config.toml, or
env vars such as SOURCES__FEISHU_TASKS__ALL_TASKLISTS=true; a flag wins over both."""

DEMO_DESCRIPTION = """\
Serve a simulated Feishu tenant on loopback (no app or credentials needed), load it as a
scheduled run would (every task list, discovery, a few bad ids), and print the summary and
the first answers."""


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line: the (sub)command, what is wrong, the closest flag; exit 2.

    argparse would print the whole usage block first, and the top-level one for a flag that
    a subcommand does not know.
    """

    def error(self, message: str) -> NoReturn:
        # "argument --max-requests: --max-requests / sources…: cannot use 'abc'" says the flag once
        message = re.sub(r"^argument (\S+): (?=\1 )", "", message)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def closest(self, word: str, choices: Sequence[str]) -> str:
        close = difflib.get_close_matches(word, choices, n=1)
        return f"; did you mean {close[0]}?" if close else ""

    def reject_unknown(self, extras: Sequence[str]) -> NoReturn:
        """``unrecognized argument --all-tasklsts; did you mean --all-tasklists?``"""
        word = extras[0]
        # argparse keeps every option string of the parser and its groups in this mapping
        known = [option for option in self._option_string_actions if option.startswith("--")]
        hint = self.closest(word.split("=", 1)[0], known) if word.startswith("-") else ""
        self.error(f"unrecognized argument {word}{hint}")


def checked(name: str) -> Callable[[str], Any]:
    """A flag's value parsed as the same key from dlt config is, and in the same words when bad."""

    def parse(text: str) -> Any:
        try:
            from .options import parsed  # imports dlt: only once a flag needs it

            return parsed(name, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names a type in some of its messages
    return parse


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    ids = parser.add_argument_group("task ids (any mix)")
    ids.add_argument(
        "--task-id", dest="task_ids", action="append", metavar="ID", help="a task id; repeatable"
    )
    ids.add_argument(
        "--task-ids-file", metavar="PATH", help="one id per line; blank lines and # comments ignored"
    )
    ids.add_argument(
        "--task-ids-query", metavar="SQL", help="SQL on the destination (read only); first column = ids"
    )
    ids.add_argument(
        "--discover",
        action="store_true",
        default=None,
        help="list the tasks the app can see and load them too",
    )
    lists = parser.add_argument_group("task lists (task v2: how an app reads a team's tasks)")
    lists.add_argument(
        "--tasklist", dest="tasklists", action="append", metavar="GUID", help="a task list's guid; repeatable"
    )
    lists.add_argument(
        "--all-tasklists",
        action="store_true",
        default=None,
        help="every task list the app (or user) is a member of",
    )
    lists.add_argument(
        "--tasklist-completed",
        type=checked("tasklist_completed"),
        metavar="{true,false}",
        help="only the completed (true) or open (false) tasks of the lists",
    )
    lists.add_argument(
        "--followers-api",
        choices=FOLLOWERS_APIS,
        help="v1 follower list (default), v2 get task (users and apps), or auto (v1, then v2 for list "
        "tasks v1 does not know)",
    )
    changes = parser.add_argument_group("change capture (Feishu's task events, recorded by `listen`)")
    changes.add_argument(
        "--changed",
        action="store_true",
        default=None,
        help="also read every task the change journal marks since the last load",
    )
    changes.add_argument(
        "--journal",
        metavar="PATH",
        help="the change journal (default: beside the pipeline's working folder, as `listen` finds it)",
    )
    store = parser.add_argument_group("store app (app_type = store: one app, many tenants)")
    store.add_argument(
        "--tenant", dest="tenants", action="append", metavar="KEY", help="a tenant's key; repeatable"
    )
    store.add_argument(
        "--all-tenants", action="store_true", help="every tenant that installed the app and has it on"
    )
    sched = parser.add_argument_group("scheduling")
    sched.add_argument(
        "--full-refresh",
        action="store_true",
        default=None,
        help="--discover lists every task, not only new ones",
    )
    sched.add_argument(
        "--discover-lookback",
        type=checked("discover_lookback"),
        metavar="DURATION",
        help="re-list tasks created this long before the newest update seen (default 1d)",
    )
    sched.add_argument(
        "--stale-after",
        type=checked("stale_after"),
        metavar="DURATION",
        help="also re-fetch known tasks whose last successful fetch is older (e.g. 6h), oldest first",
    )
    sched.add_argument(
        "--max-requests",
        type=checked("max_requests"),
        metavar="N",
        help="cap the run's API calls; the rest waits for later runs",
    )
    sched.add_argument(
        "--max-rate-limited",
        type=checked("max_rate_limited"),
        metavar="DURATION",
        help="stop (exit 1, after loading what was fetched) once an endpoint has answered nothing but "
        "rate limits this long (default 5m)",
    )
    sched.add_argument(
        "--lock-timeout",
        type=checked("lock_timeout"),
        metavar="DURATION",
        help="how long to wait for a DuckDB file that another process holds (default 5m)",
    )
    sched.add_argument(
        "--dry-run",
        action="store_true",
        help="list the tasks a run would fetch and their requests; fetch nothing",
    )
    api = parser.add_argument_group("API")
    host = api.add_mutually_exclusive_group()
    host.add_argument("--base-url", help=f"API host (default {FEISHU_BASE_URL})")
    host.add_argument(
        "--lark",
        dest="base_url",
        action="store_const",
        const=LARK_BASE_URL,
        help=f"use Lark: {LARK_BASE_URL}",
    )
    api.add_argument(
        "--user-id-type",
        choices=USER_ID_TYPES,
        help=f"id type of follower ids (default {DEFAULT_USER_ID_TYPE})",
    )
    api.add_argument(
        "--concurrency",
        type=checked("concurrency"),
        metavar="N",
        help=f"requests in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    api.add_argument(
        "--max-rps",
        type=checked("max_rps"),
        metavar="N",
        help=f"requests per second ceiling (default {DEFAULT_MAX_RPS:g}; 0 = off)",
    )
    api.add_argument(
        "--max-rpm",
        type=checked("max_rpm"),
        metavar="N",
        help=f"requests per minute ceiling (default {DEFAULT_MAX_RPM:g}; 0 = off)",
    )
    dest = parser.add_argument_group("destination")
    dest.add_argument(
        "--destination",
        metavar="NAME",
        help="a dlt destination, e.g. postgres (default duckdb); its credentials come from dlt config, "
        "e.g. DESTINATION__POSTGRES__CREDENTIALS",
    )
    dest.add_argument("--duckdb", metavar="PATH", help="DuckDB file (default ./feishu_followers.duckdb)")
    dest.add_argument("--dataset", metavar="NAME", help="dataset (schema) name (default feishu_tasks)")
    dest.add_argument(
        "--pipelines-dir",
        metavar="DIR",
        help="dlt's working folder (default dlt's: ~/.dlt/pipelines, as root /var/dlt/pipelines)",
    )
    dest.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="the run's memory (default 256MB): sets DuckDB's limit (a quarter; it spills to disk beyond) "
        "and the size of each load",
    )
    dest.add_argument(
        "--duckdb-memory-limit", metavar="SIZE", help="DuckDB's memory limit (default: from --memory-budget)"
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--quiet", action="store_true", default=None, help="print nothing but errors and a one-line outcome"
    )
    out.add_argument("--json", action="store_true", help="print the summary as one JSON object (stdout)")
    out.add_argument(
        "--progress-interval",
        type=checked("progress_interval"),
        metavar="DURATION",
        help="not on a terminal: a progress line this often (default 30s; 0 = none)",
    )
    out.add_argument(
        "--verbose",
        action="store_true",
        help="also show dlt's progress log and Python warnings and, for a bug, the traceback",
    )


def _add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address of the request URL server (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000, help="its port (default 8000; 0 = any free one)")
    parser.add_argument(
        "--long-connection", action="store_true", help="Feishu's WebSocket delivery (custom apps) instead"
    )
    host = parser.add_mutually_exclusive_group()
    host.add_argument("--base-url", help="API host of the long connection (default https://open.feishu.cn)")
    host.add_argument("--lark", dest="base_url", action="store_const", const=LARK_BASE_URL, help="use Lark")
    parser.add_argument(
        "--journal", metavar="PATH", help="the change journal (default: where `run` finds it)"
    )
    parser.add_argument("--pipelines-dir", metavar="DIR", help="dlt's working folder, as given to `run`")
    parser.add_argument("--verbose", action="store_true", help="for a bug, show the traceback")


def _add_subscribe_arguments(parser: argparse.ArgumentParser) -> None:
    host = parser.add_mutually_exclusive_group()
    host.add_argument("--base-url", help=f"API host (default {FEISHU_BASE_URL})")
    host.add_argument("--lark", dest="base_url", action="store_const", const=LARK_BASE_URL, help="use Lark")
    parser.add_argument(
        "--user-id-type", choices=USER_ID_TYPES, help=f"id type in the subscription ({DEFAULT_USER_ID_TYPE})"
    )
    parser.add_argument("--verbose", action="store_true", help="for a bug, show the traceback")


def _seconds(text: str) -> float:
    """A duration flag (``5s``, ``2m``, plain seconds) in seconds, more than 0."""
    from .options import parse_duration  # imports dlt: only for this flag

    try:
        seconds = parse_duration(text).total_seconds()
    except FatalError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"not a usable duration: {text!r} (more than 0, e.g. 5s)")
    return seconds


def _add_follow_arguments(parser: argparse.ArgumentParser) -> None:
    _add_run_arguments(parser)
    receiver = parser.add_argument_group("receiving events (as `listen`)")
    receiver.add_argument(
        "--host", default="127.0.0.1", help="address of the request URL server (default 127.0.0.1)"
    )
    receiver.add_argument("--port", type=int, default=8000, help="its port (default 8000; 0 = any free one)")
    receiver.add_argument(
        "--long-connection", action="store_true", help="Feishu's WebSocket delivery (custom apps) instead"
    )
    batches = parser.add_argument_group("batches")
    batches.add_argument(
        "--every",
        type=_seconds,
        default=DEFAULT_FOLLOW_EVERY_SECONDS,
        metavar="DURATION",
        help="load what the journal marked this often, when anything "
        f"(default {DEFAULT_FOLLOW_EVERY_SECONDS:g}s)",
    )
    batches.add_argument(
        "--sweep-every",
        type=_seconds,
        default=DEFAULT_FOLLOW_SWEEP_EVERY_SECONDS,
        metavar="DURATION",
        help="load the given task ids, lists, discovery and --stale-after tasks this often "
        f"(default {DEFAULT_FOLLOW_SWEEP_EVERY_SECONDS / 3600:g}h; also at start)",
    )


def build_parser() -> tuple[OneLineParser, dict[str, OneLineParser]]:
    """The top-level parser, and each subcommand's (for its one-line usage errors)."""
    parser = OneLineParser(
        prog="feishu-followers",
        description="Load Feishu/Lark task followers into DuckDB (or any dlt destination) with dlt.",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="{run,listen,follow,subscribe,simulate,demo}", parser_class=OneLineParser
    )
    run = commands.add_parser(
        "run",
        help="load followers of the given tasks",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_arguments(run)
    listen = commands.add_parser(
        "listen",
        help="receive Feishu's task events into the change journal",
        description="Serve Feishu's event subscription (request URL or long connection) and record "
        "each task event in the change journal that `run --changed` reads.",
    )
    _add_listen_arguments(listen)
    follow = commands.add_parser(
        "follow",
        help="receive Feishu's task events and load the changed tasks every few seconds",
        description="`listen` and `run --changed` in one long-running process: events are recorded in "
        "the change journal, and every --every seconds the tasks they mark are loaded (the DuckDB file "
        "is free between batches). Holds the pipeline's lock: a `run` meanwhile exits 3. Credentials "
        "and config as for `run` and `listen`.",
    )
    _add_follow_arguments(follow)
    subscribe = commands.add_parser(
        "subscribe",
        help="ask Feishu for the task events of the app (and of a user)",
        description="Call Feishu's v2 task subscription for the app's identity and, with a user token "
        "in the credentials, the user's; harmless to repeat. Credentials as for `run`.",
    )
    _add_subscribe_arguments(subscribe)
    simulate = commands.add_parser(
        "simulate", help="serve the bundled Feishu API simulator (see simulate --help)"
    )
    demo = commands.add_parser(
        "demo", help="run the whole pipeline against the simulator", description=DEMO_DESCRIPTION
    )
    demo.add_argument(
        "--duckdb", metavar="PATH", default="./feishu_demo.duckdb", help="where to load (default %(default)s)"
    )
    demo.add_argument(
        "--tasks",
        type=int,
        metavar="N",
        default=300,
        help="tasks in the simulated tenant (default %(default)s)",
    )
    demo.add_argument(
        "--seed", type=int, default=42, help="the simulated tenant's random seed: same seed, same tenant"
    )
    demo.add_argument(
        "--pipelines-dir",
        metavar="DIR",
        help="dlt's working folder (default dlt's: ~/.dlt/pipelines, as root /var/dlt/pipelines)",
    )
    demo.add_argument("--quiet", action="store_true", help="no notes on stderr while it runs")
    demo.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="skip the last phase (a few changes pushed as events and loaded as `follow` does)",
    )
    demo.add_argument(
        "--store-app",
        action="store_true",
        help="the demo as a store app: several tenants, their app_ticket and installs received, "
        "then run --all-tenants into the one file (needs the events extra)",
    )
    demo.add_argument(
        "--tenants",
        type=int,
        metavar="N",
        default=3,
        help="with --store-app: tenants that install the app (default %(default)s)",
    )
    demo.add_argument("--verbose", action="store_true", help="for a bug, show the traceback")
    subcommands = {
        "run": run,
        "listen": listen,
        "follow": follow,
        "subscribe": subscribe,
        "simulate": simulate,
        "demo": demo,
    }
    return parser, subcommands


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, or exit 2 with one line (the subcommand's, naming the closest flag)."""
    parser, subcommands = build_parser()
    if argv and not argv[0].startswith("-") and argv[0] not in subcommands:
        parser.error(f"unknown command {argv[0]!r}{parser.closest(argv[0], list(subcommands))}")
    args, extras = parser.parse_known_args(argv)
    if args.command is None:
        parser.error("choose a command: run, listen, follow, subscribe, simulate or demo")
    if extras:
        subcommands[args.command].reject_unknown(extras)
    return args


def _run(args: argparse.Namespace) -> int:
    from feishu_tasks.control import RunControl

    from .options import RunOptions
    from .pandas_probe import answer_pyarrows_pandas_probe
    from .progress import display_for
    from .run import run
    from .signals import signal_name, stop_on_signals
    from .summary import format_dry_run, format_json, format_summary, outcome_line

    options = RunOptions.resolve(vars(args))
    answer_pyarrows_pandas_probe()  # a run never uses pandas (pandas_probe.py)
    if options.tenants or options.all_tenants:
        from .tenants import run_tenants_cli

        return run_tenants_cli(options, as_json=args.json)
    control = RunControl()
    quiet_display = options.quiet or options.dry_run
    display = display_for(control.report.stats, quiet_display, options.progress_interval)
    # A person at a terminal sees at once that the signal was heard; a log gets one line at the end.
    heard = display.notify if sys.stderr.isatty() else lambda line: None
    with display, stop_on_signals(control, heard) as stop:
        try:
            result = run(options, control, notify=display.notify, on_step=display.on_step)
        except FatalError as exc:
            if stop.signum is None:
                raise
            display.stop()  # before the line, which must be the last on screen
            say(f"stopped by {signal_name(stop.signum)}: {exc}")  # e.g. while waiting for the file
            return stop.exit_code
    stopped_by = signal_name(stop.signum) if stop.signum is not None else None
    if options.dry_run:
        print(format_dry_run(result))
    elif args.json:
        print(format_json(result, stopped_by), flush=True)
    elif not options.quiet:
        print(format_summary(result), flush=True)
    elif stop.signum is None:  # --quiet: the one-line outcome (after a signal, the "stopped by" line is)
        print(outcome_line(result), flush=True)
    if stop.signum is None:
        if result.stats.rate_limit_stop:  # a fatal condition of this run, after loading what it fetched
            say(f"error: {result.stats.rate_limit_stop}")
            return EXIT_FATAL
        return 0
    stats = result.stats
    say(
        f"stopped by {signal_name(stop.signum)}: {stats.tasks_done} tasks fetched and loaded; "
        "the rest waits for the next run"
    )
    return stop.exit_code


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.store_app:
        return _store_demo(args)
    print(
        run_demo(
            args.duckdb,
            tasks=args.tasks,
            seed=args.seed,
            pipelines_dir=args.pipelines_dir,
            quiet=args.quiet,
            follow=args.follow,
        )
    )
    return 0


def _store_demo(args: argparse.Namespace) -> int:
    if args.tenants < 1:
        raise ConfigError(f"demo --tenants: cannot use {args.tenants}; expected at least 1 tenant")
    try:
        from .demo_store import run_store_demo
    except ImportError as exc:  # its receiver decrypts events: cryptography, an extra
        raise events_extra_missing("demo --store-app", exc) from None
    report, code = run_store_demo(
        args.duckdb,
        tenants=args.tenants,
        tasks=args.tasks,
        seed=args.seed,
        pipelines_dir=args.pipelines_dir,
        quiet=args.quiet,
    )
    print(report, flush=True)
    return code


def _listen(args: argparse.Namespace) -> int:
    from .listen import listen

    return listen(vars(args))


def _follow(args: argparse.Namespace) -> int:
    from .follow import Schedule, follow
    from .pandas_probe import answer_pyarrows_pandas_probe

    answer_pyarrows_pandas_probe()  # follow never uses pandas (pandas_probe.py)
    return follow(vars(args), Schedule(args.every, args.sweep_every))


def _subscribe(args: argparse.Namespace) -> int:
    from .subscribe import subscribe

    for subscribed in subscribe(args.base_url, args.user_id_type or "open_id"):
        print(subscribed.line(), flush=True)
    return 0


def _abort_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Until a run installs its own handlers, SIGTERM ends the process like Ctrl-C: one line."""
    from .signals import Aborted

    raise Aborted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    use_lean_allocators()  # before pyarrow is imported and any thread allocates (allocators.py)
    signal.signal(signal.SIGTERM, _abort_on_sigterm)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:  # the simulator parses its own options (and aiohttp loads only then)
        from feishu_simulator.__main__ import main as simulate

        simulate(argv[1:], prog="feishu-followers simulate")
        return 0
    args = parse_arguments(argv)
    if not getattr(args, "verbose", False):
        # dlt logs every failed load job with its traceback (hundreds of lines for one full disk);
        # our one line says what failed. --verbose (or RUNTIME__LOG_LEVEL) brings dlt's log back.
        os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")
    if not sys.warnoptions and not getattr(args, "verbose", False):
        warnings.simplefilter("ignore")  # dependencies' warnings are not for the person running us
    handlers: dict[str, Any] = {
        "run": _run,
        "demo": _demo,
        "listen": _listen,
        "follow": _follow,
        "subscribe": _subscribe,
    }
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt as exc:  # a second Ctrl-C / SIGTERM, or one before the run started
        signum = getattr(exc, "signum", signal.SIGINT)
        say(f"aborted by {signal.Signals(signum).name}; the next run completes what this one left")
        return 128 + signum
    except FatalError as exc:  # the one-line promise: fatal errors end in a single clear line
        say(f"error: {exc}")
        return EXIT_BUSY if isinstance(exc, PipelineBusy) else EXIT_FATAL
    except Exception as exc:  # a bug: still one line, the traceback only when asked for
        if getattr(args, "verbose", False):
            traceback.print_exc()
        text = str(exc).strip().splitlines()
        say(
            f"error: unexpected {type(exc).__name__}: {text[0] if text else ''} "
            "(a bug: please report it; --verbose shows the traceback)"
        )
        return EXIT_FATAL


if __name__ == "__main__":
    sys.exit(main())

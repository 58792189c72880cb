"""``feishu-followers``: run the load, receive events, run the simulator, or run the demo."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import Any

from feishu_tasks.errors import FatalError
from feishu_tasks.settings import FOLLOWERS_APIS, LARK_BASE_URL, USER_ID_TYPES

from .lock import PipelineBusy

EXIT_FATAL = 1
EXIT_BUSY = 3


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
        choices=("true", "false"),
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
    sched = parser.add_argument_group("scheduling")
    sched.add_argument(
        "--full-refresh", action="store_true", help="--discover lists every task, not only new ones"
    )
    sched.add_argument(
        "--discover-lookback",
        metavar="DURATION",
        help="re-list tasks created this long before the newest update seen (default 1d)",
    )
    sched.add_argument(
        "--stale-after",
        metavar="DURATION",
        help="also re-fetch known tasks whose last successful fetch is older (e.g. 6h), oldest first",
    )
    sched.add_argument(
        "--max-requests", type=int, metavar="N", help="cap the run's API calls; the rest waits for later runs"
    )
    sched.add_argument(
        "--lock-timeout",
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
    host.add_argument("--base-url", help="API host (default https://open.feishu.cn)")
    host.add_argument(
        "--lark",
        dest="base_url",
        action="store_const",
        const=LARK_BASE_URL,
        help=f"use Lark: {LARK_BASE_URL}",
    )
    api.add_argument(
        "--user-id-type", choices=USER_ID_TYPES, help="id type of follower ids (default open_id)"
    )
    api.add_argument("--concurrency", type=int, help="requests in flight at once (default 32)")
    api.add_argument("--max-rps", type=float, help="requests per second ceiling (default 50; 0 = off)")
    api.add_argument("--max-rpm", type=float, help="requests per minute ceiling (default 1000; 0 = off)")
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
        "--pipelines-dir", metavar="DIR", help="dlt's working folder (default ~/.dlt/pipelines)"
    )
    dest.add_argument(
        "--duckdb-memory-limit", metavar="SIZE", help="DuckDB's memory limit while loading (default 256MB)"
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--quiet", action="store_true", default=None, help="print nothing but errors and a one-line outcome"
    )
    out.add_argument("--json", action="store_true", help="print the summary as one JSON object (stdout)")
    out.add_argument(
        "--progress-interval",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feishu-followers",
        description="Load Feishu/Lark task followers into DuckDB (or any dlt destination) with dlt.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_arguments(commands.add_parser("run", help="load followers of the given tasks"))
    _add_listen_arguments(
        commands.add_parser("listen", help="receive Feishu's task events into the change journal")
    )
    commands.add_parser("simulate", help="serve the bundled Feishu API simulator (see simulate --help)")
    demo = commands.add_parser("demo", help="run the whole pipeline against the simulator")
    demo.add_argument("--duckdb", metavar="PATH", default="./feishu_demo.duckdb")
    demo.add_argument("--tasks", type=int, default=300)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--pipelines-dir", metavar="DIR")
    demo.add_argument("--quiet", action="store_true")
    demo.add_argument("--verbose", action="store_true", help="for a bug, show the traceback")
    return parser


def _say(line: str) -> None:
    print(f"feishu-followers: {line}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    from feishu_tasks.control import RunControl

    from .options import RunOptions
    from .progress import display_for
    from .run import run
    from .signals import signal_name, stop_on_signals
    from .summary import format_dry_run, format_json, format_summary, outcome_line

    options = RunOptions.resolve(vars(args))
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
            _say(f"stopped by {signal_name(stop.signum)}: {exc}")  # e.g. while waiting for the file
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
        return 0
    stats = result.stats
    _say(
        f"stopped by {signal_name(stop.signum)}: {stats.tasks_done} tasks fetched and loaded; "
        "the rest waits for the next run"
    )
    return stop.exit_code


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    print(
        run_demo(
            args.duckdb, tasks=args.tasks, seed=args.seed, pipelines_dir=args.pipelines_dir, quiet=args.quiet
        )
    )
    return 0


def _listen(args: argparse.Namespace) -> int:
    from .listen import listen

    return listen(vars(args))


def _abort_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Until a run installs its own handlers, SIGTERM ends the process like Ctrl-C: one line."""
    from .signals import Aborted

    raise Aborted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    signal.signal(signal.SIGTERM, _abort_on_sigterm)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:  # the simulator parses its own options (and aiohttp loads only then)
        from feishu_simulator.__main__ import main as simulate

        simulate(argv[1:], prog="feishu-followers simulate")
        return 0
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", False):
        # dlt logs every failed load job with its traceback (hundreds of lines for one full disk);
        # our one line says what failed. --verbose (or RUNTIME__LOG_LEVEL) brings dlt's log back.
        os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")
    if not sys.warnoptions and not getattr(args, "verbose", False):
        warnings.simplefilter("ignore")  # dependencies' warnings are not for the person running us
    handlers: dict[str, Any] = {"run": _run, "demo": _demo, "listen": _listen}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt as exc:  # a second Ctrl-C / SIGTERM, or one before the run started
        signum = getattr(exc, "signum", signal.SIGINT)
        _say(f"aborted by {signal.Signals(signum).name}; the next run completes what this one left")
        return 128 + signum
    except FatalError as exc:  # the one-line promise: fatal errors end in a single clear line
        _say(f"error: {exc}")
        return EXIT_BUSY if isinstance(exc, PipelineBusy) else EXIT_FATAL
    except Exception as exc:  # a bug: still one line, the traceback only when asked for
        if getattr(args, "verbose", False):
            traceback.print_exc()
        text = str(exc).strip().splitlines()
        _say(
            f"error: unexpected {type(exc).__name__}: {text[0] if text else ''} "
            "(a bug: please report it; --verbose shows the traceback)"
        )
        return EXIT_FATAL


if __name__ == "__main__":
    sys.exit(main())

"""``python -m sources.feishu_simulator``: serve a generated world until Ctrl-C."""

from __future__ import annotations

import argparse

from .faults import Faults
from .server import serve_forever


def main(argv: list[str] | None = None) -> None:
    """Parse a few options (world size, port, common faults) and serve."""
    parser = argparse.ArgumentParser(prog="python -m sources.feishu_simulator", description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--forbidden", type=int, default=0)
    parser.add_argument("--invalid", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--app-id", default="cli_demo")
    parser.add_argument("--app-secret", default="demo-secret")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--quota-per-second", type=int, default=None)
    parser.add_argument("--quota-per-minute", type=int, default=None)
    parser.add_argument("--error-500-fraction", type=float, default=0.0)
    parser.add_argument("--rate-limit-fraction", type=float, default=0.0)
    parser.add_argument(
        "--followers-per-task", type=int, default=None, help="every task gets exactly N followers"
    )
    args = parser.parse_args(argv)
    faults = Faults(
        latency_ms=args.latency_ms,
        quota_per_second=args.quota_per_second,
        quota_per_minute=args.quota_per_minute,
        error_500_fraction=args.error_500_fraction,
        rate_limit_fraction=args.rate_limit_fraction,
    )
    serve_forever(
        args.tasks,
        args.seed,
        args.port,
        faults,
        args.app_id,
        args.app_secret,
        host=args.host,
        users=args.users,
        forbidden=args.forbidden,
        invalid=args.invalid,
        followers_per_task=args.followers_per_task,
    )


if __name__ == "__main__":
    main()

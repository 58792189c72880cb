"""The simulator's command-line options, shared by ``python -m feishu_simulator`` and
``feishu-followers simulate``."""

from __future__ import annotations

import argparse

from .faults import Faults
from .quota import DOCUMENTED_LIMITS
from .server import serve_forever
from .world import APP_FOLLOWER_SHARE, World


def add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """World size and shape, where to listen, the fake app, and the faults to switch on."""
    world = parser.add_argument_group("simulated tenant")
    world.add_argument("--tasks", type=int, default=200, help="number of tasks (default 200)")
    world.add_argument("--seed", type=int, default=42, help="seed of the generated tenant (default 42)")
    world.add_argument("--users", type=int, default=500, help="users who can follow (default 500)")
    world.add_argument("--forbidden", type=int, default=0, help="tasks the app may not read")
    world.add_argument("--invalid", type=int, default=0, help="unknown or malformed task ids to offer")
    world.add_argument("--followers-per-task", type=int, help="every task gets exactly N followers")
    world.add_argument(
        "--tasklists", type=int, help="task lists for task v2 (default: tasks // 6, within 4..48)"
    )
    world.add_argument(
        "--v2-only-share", type=float, default=0.0, help="share of tasks v1 does not know (v2 serves them)"
    )
    world.add_argument(
        "--app-follower-share",
        type=float,
        default=APP_FOLLOWER_SHARE,
        help=f"share of tasks with app followers, shown by v2 only (default {APP_FOLLOWER_SHARE})",
    )
    world.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    world.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    world.add_argument("--app-id", default="cli_demo", help="the fake app's id (default cli_demo)")
    world.add_argument(
        "--app-secret", default="demo-secret", help="the fake app's secret (default demo-secret)"
    )
    store = parser.add_argument_group("store app (one app, many tenants)")
    store.add_argument(
        "--store-tenants",
        type=int,
        metavar="N",
        default=0,
        help="serve a store app installed by N tenants (tenant_1 … tenant_N), each its own world "
        "(seed, seed+1, …), quota and faults; their app_open events and an app_ticket are pushed once a "
        "request URL is registered (default 0: a custom app's one tenant)",
    )
    store.add_argument(
        "--app-ticket-every",
        type=float,
        metavar="SECONDS",
        default=3600.0,
        help="store app: push an app_ticket this often (Feishu: about hourly; also on resend)",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency-ms", type=float, default=0.0, help="added to every business request")
    faults.add_argument("--quota-per-second", type=int, help="enforce a per-second quota (429 beyond)")
    faults.add_argument("--quota-per-minute", type=int, help="enforce a per-minute quota (429 beyond)")
    faults.add_argument(
        "--documented-quotas",
        action="store_true",
        help="each endpoint's documented limits (50/s + 1000/min; v2 get task 10/s)",
    )
    faults.add_argument(
        "--rate-limit-fraction", type=float, default=0.0, help="share of answers that are 429"
    )
    faults.add_argument("--error-500-fraction", type=float, default=0.0, help="share of answers that are 500")
    faults.add_argument("--html-502-fraction", type=float, default=0.0, help="share of HTML 502 answers")
    faults.add_argument("--token-ttl", type=int, default=7200, help="tenant token lifetime in seconds")
    faults.add_argument(
        "--v2-numeric-timestamps", action="store_true", help="task v2 timestamps as JSON numbers, not strings"
    )


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The fault settings the parsed options ask for."""
    return Faults(
        latency_ms=args.latency_ms,
        quota_per_second=args.quota_per_second,
        quota_per_minute=args.quota_per_minute,
        quota_per_endpoint=dict(DOCUMENTED_LIMITS) if args.documented_quotas else {},
        rate_limit_fraction=args.rate_limit_fraction,
        error_500_fraction=args.error_500_fraction,
        html_502_fraction=args.html_502_fraction,
        token_ttl_seconds=args.token_ttl,
        v2_numeric_timestamps=args.v2_numeric_timestamps,
    )


def serve_from_args(args: argparse.Namespace) -> None:
    """Serve the tenant (or, with ``--store-tenants``, the store app's tenants) the options describe."""
    if args.store_tenants < 0:
        raise SystemExit(f"--store-tenants: cannot use {args.store_tenants}; expected 0 or more tenants")
    faults = faults_from_args(args)
    if args.store_tenants:
        from .store import serve_store_forever

        worlds = {
            f"tenant_{n}": world_from_args(args, args.seed + n - 1) for n in range(1, args.store_tenants + 1)
        }
        serve_store_forever(
            worlds, faults, args.app_id, args.app_secret, args.host, args.port, args.app_ticket_every
        )
        return
    world = world_from_args(args, args.seed)
    serve_forever(world, args.seed, args.port, faults, args.app_id, args.app_secret, host=args.host)


def world_from_args(args: argparse.Namespace, seed: int) -> World:
    """The world the options describe, from ``seed``."""
    return World.generate(
        tasks=args.tasks,
        seed=seed,
        users=args.users,
        forbidden=args.forbidden,
        invalid=args.invalid,
        followers_per_task=args.followers_per_task,
        tasklists=args.tasklists,
        v2_only=args.v2_only_share,
        app_followers=args.app_follower_share,
    )

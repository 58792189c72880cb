"""``python -m feishu_simulator``: serve a generated world until Ctrl-C."""

from __future__ import annotations

import argparse

from .options import add_simulator_arguments, serve_from_args


def main(argv: list[str] | None = None, prog: str = "python -m feishu_simulator") -> None:
    parser = argparse.ArgumentParser(prog=prog, description="Serve a simulated Feishu tenant until Ctrl-C.")
    add_simulator_arguments(parser)
    serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    main()

"""``python -m sources.feishu_simulator``: serve a generated world until Ctrl-C."""

from __future__ import annotations

import argparse

from .options import add_simulator_arguments, serve_from_args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sources.feishu_simulator", description=__doc__)
    add_simulator_arguments(parser)
    serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    main()

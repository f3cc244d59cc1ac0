"""The ``metasplice`` command: a thin dispatcher over subcommands.

Each subcommand lives in its own module that exposes ``register(subparsers)``; ``register`` adds an
argparse parser and sets ``func`` (called with the parsed arguments, returning an exit code).
Modules are imported only to register their parser, so they keep heavy imports (torch, pandas)
inside their ``run`` functions. To add a subcommand, add its module to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from metasplice import __version__

SUBCOMMANDS: tuple[str, ...] = (
    "metasplice.base_models.spliceai.cli",
    "metasplice.base_models.pangolin.cli",
    "metasplice.demo_cli",
    "metasplice.predict.cli",
)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="metasplice",
        description="Meta-models on top of splice predictors (SpliceAI, OpenSpliceAI), evaluated on SpliceVarDB.",
    )
    parser.add_argument("--version", action="version", version=f"metasplice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

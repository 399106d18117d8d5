"""Running one parsed subcommand the same way everywhere: its exit code, a StreamrecError as one line, Ctrl-C 130.

`streamrec` (streamrec/cli.py) and each package's own `python -m streamrec.<package>.cli` go through here, so
a command fails alike whichever way it was started.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from streamrec.errors import StreamrecError

Register = Callable[[Any], None]  # adds a package's subcommands to an argparse subparsers object


def run_handler(args: argparse.Namespace) -> int:
    """Call the subcommand's handler; a StreamrecError becomes `streamrec <command>: <message>` on stderr."""
    try:
        return int(args.handler(args))
    except StreamrecError as exc:
        print(f"streamrec {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_package_cli(prog: str, register: Register, argv: list[str] | None = None) -> int:
    """A package's subcommands on their own (`python -m streamrec.<package>.cli ...`), without the rest."""
    parser = argparse.ArgumentParser(prog=prog)
    register(parser.add_subparsers(dest="command", required=True))
    return run_handler(parser.parse_args(argv))

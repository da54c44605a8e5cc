"""`cvfm-ros`: one CLI with subcommands.

Each subcommand lives in its own module exposing `register(subparsers)`, which adds a parser whose
`func(args) -> int` runs it. Command modules import heavy dependencies (torch, rosbags) inside
their functions, so `cvfm-ros --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand name -> module implementing it (the module's `register` adds the parser).
COMMANDS: dict[str, str] = {
    "demo": "cvfm_ros.cli.demo",
    "localize": "cvfm_ros.cli.localize",
    "tiles": "cvfm_ros.cli.tiles",
    "train": "cvfm_ros.cli.train",
    "bench": "cvfm_ros.cli.bench",
    "replay": "cvfm_ros.cli.replay",
    "export": "cvfm_ros.cli.export",
    "synth": "cvfm_ros.cli.synth",
    "eval": "cvfm_ros.cli.eval",
    "release": "cvfm_ros.cli.release",
    "matcher-info": "cvfm_ros.cli.matcher_info",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvfm-ros",
        description="Cross-view fine-grained matching localization: tools around the ROS 2 node.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        # Bad input: one clear line naming what was wrong, no traceback.
        print(f"cvfm-ros {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The file system refused (read-only output, disk full, permissions): say which file.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"cvfm-ros {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

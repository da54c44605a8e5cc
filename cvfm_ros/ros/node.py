"""Entry point of the `localizer_node` executable.

The lifecycle node itself is tracked as its own issue (the ROS 2 node); until it lands this entry
point says so plainly instead of pretending to localize.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("localizer_node: the cvfm_localizer node is not part of this build yet "
          "(see the ROS 2 node issue); use `cvfm-ros --help` for the available tools.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `simulator` command line; scenarios arrive with the fleet simulator issue."""

from __future__ import annotations

import sys


def main() -> None:
    sys.stderr.write("simulator: error: the fleet simulator is not built yet\n")
    sys.exit(1)

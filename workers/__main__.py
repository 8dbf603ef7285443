"""The worker program: ``python -m workers --hw cpu`` (what ``farm worker`` and ``farm up`` run).

A worker refuses a class whose toolchain this host lacks, naming what to install, in one line
and a non-zero exit, as every farm command refuses bad input.
"""

from __future__ import annotations

import argparse
import os
import sys

from farm.core.errors import INTERNAL_ERROR_EXIT, FarmError, exit_in_one_line, first_line
from workers.serve import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--hw", default="auto", help="hardware classes to serve, e.g. cpu or cpu,arm")
    parser.add_argument("--concurrency", "-c", type=int, default=None, help="parallel tasks")
    parser.add_argument("--name", default=None, help="worker name; default <hw>@<host>")
    args = parser.parse_args(argv)
    try:
        serve(args.hw, args.concurrency, args.name)
    except FarmError as exc:
        exit_in_one_line(str(exc), exc.exit_code)
    except Exception as exc:
        if os.environ.get("FARM_DEBUG"):
            raise
        exit_in_one_line(f"internal error: {type(exc).__name__}: {first_line(exc)}", INTERNAL_ERROR_EXIT)


if __name__ == "__main__":
    main(sys.argv[1:])

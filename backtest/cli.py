"""The ``backtest`` command.

Exit codes: 0 success; 2 bad input (data, strategy spec, parameters), reported as one line with
no traceback unless ``--debug``; 1 when a ``--fail-on`` gate trips.

Examples::

    backtest run                                  # flagship strategy on the sample data
    backtest data info data/BTCUSDT-1h.parquet    # what a data file holds
    backtest data validate my_candles.csv         # check a file; exit 2 naming the bad row
"""

from __future__ import annotations

import argparse
import sys
import warnings

EXIT_OK, EXIT_GATE, EXIT_BAD_INPUT = 0, 1, 2

EXAMPLES = """examples:
  backtest run
  backtest run --data data/ETHUSDT-1h.parquet
  backtest data info data/BTCUSDT-1h.parquet
  backtest data validate my_candles.csv
"""


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backtest",
        description="Backtest leveraged perpetual-futures strategies.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a strategy and write a report")
    run.add_argument("strategy", nargs="?", default=None,
                     help="module:Class or path/to/file.py:Class (default: the flagship example)")
    run.add_argument("--data", default=None, help="market data file (default: sample BTCUSDT 1h)")

    data = commands.add_parser("data", help="inspect or validate a market-data file")
    data.add_argument("action", choices=["info", "validate"])
    data.add_argument("path")
    return parser


def _data_command(action: str, path: str) -> int:
    import backtest

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", backtest.DataWarning)
        market = backtest.load(path)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if action == "validate":
        print(f"{path}: OK, {len(market)} bars")
    else:
        print(repr(market))
    return EXIT_OK


def _run_command(args: argparse.Namespace) -> int:
    import backtest

    market = backtest.load(args.data or backtest.sample_path("BTCUSDT"))
    print(repr(market))
    raise UsageError("the simulation engine and report are not built yet; only data loading ran")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "data":
            return _data_command(args.action, args.path)
        return _run_command(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

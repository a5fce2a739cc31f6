"""The ``backtest`` command.

Exit codes: 0 success; 1 when a ``--fail-on`` gate trips (so CI can hold a strategy to its
limits); 2 on bad input (data, strategy spec, parameters), reported as one line with no
traceback unless ``--debug``.

Examples::

    backtest run                                        # flagship strategy on the sample data
    backtest run strategies.trend:TrendFollowing --data data/ETHUSDT-1h.parquet
    backtest run my_strategy.py:MyStrategy --param fast=12 --grid slow=96,192
    backtest run --fail-on "max_drawdown>0.35" --fail-on "liquidations>0" --json stats.json
    backtest data info data/BTCUSDT-1h.parquet
    backtest data validate my_candles.csv
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import operator
import re
import sys
import warnings
from pathlib import Path

EXIT_OK, EXIT_GATE, EXIT_BAD_INPUT = 0, 1, 2
REPORTS_DIR = Path("reports")  # relative to where the command runs (the repository root)
GATE = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.eE+-]+|inf)\s*$")
OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
             "==": operator.eq, "!=": operator.ne}
SUMMARY_KEYS = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "liquidations",
                "funding_paid", "fees_paid", "max_effective_leverage")


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backtest", description="Backtest leveraged perpetual-futures strategies.",
        epilog=__doc__.split("Examples::", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a strategy and write an HTML report",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=__doc__.split("Examples::", 1)[1])
    run.add_argument("strategy", nargs="?", default=None,
                     help="module:Class or path/to/file.py:Class (default: the flagship example)")
    run.add_argument("--data", default=None, help="market data file (default: sample BTCUSDT 1h)")
    run.add_argument("--param", action="append", default=[], metavar="K=V",
                     help="set a parameter or setting (repeatable)")
    run.add_argument("--grid", action="append", default=[], metavar="K=V1,V2",
                     help="grid axis: every combination runs as one column (repeatable)")
    run.add_argument("--report", default=None, help="report path (default: reports/<strategy>-<symbol>.html)")
    run.add_argument("--json", default=None, help="also write stats as JSON here")
    run.add_argument("--fail-on", action="append", default=[], metavar="EXPR",
                     help='exit 1 when a metric crosses a limit, e.g. "max_drawdown>0.35"')
    run.add_argument("--force", action="store_true", help="overwrite an existing report")
    run.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    data = commands.add_parser("data", help="inspect or validate a market-data file")
    data.add_argument("action", choices=["info", "validate"])
    data.add_argument("path")
    data.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


# ----- parsing helpers ------------------------------------------------------------------------------


def parse_value(text: str):
    """``"3"`` → 3, ``"0.5"`` → 0.5, ``"true"`` → True, anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _pairs(items, what: str, many: bool) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--{what} {item!r}: expected key=value{'1,value2' if many else ''}")
        values = [parse_value(v) for v in value.split(",")] if many else parse_value(value)
        out[key.strip()] = values
    return out


def parse_gate(text: str):
    match = GATE.match(text)
    if not match:
        raise UsageError(f"--fail-on {text!r}: expected METRIC OP NUMBER, e.g. 'max_drawdown>0.35'")
    key, op, number = match.groups()
    return key, op, float(number)


def load_strategy_class(spec: str | None):
    """``module:Class`` or ``path/to/file.py:Class``; None → the flagship example."""
    from backtest.strategy import Strategy

    if spec is None:
        from strategies import FLAGSHIP

        return FLAGSHIP
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise UsageError(f"strategy {spec!r}: expected module:Class or path/to/file.py:Class")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"strategy file {path} not found")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UsageError(f"strategy module {target!r} cannot be imported: {exc}") from exc
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise UsageError(f"{spec}: {name!r} is not a Strategy subclass in {target}")
    return cls


def report_path(requested: str | None, strategy: str, symbol: str | None, force: bool) -> Path:
    """The report path; never a different existing file unless ``force`` (then a new name)."""
    if requested:
        path = Path(requested)
        if path.exists() and not force:
            raise UsageError(f"{path} exists; pass --force to overwrite it or choose another --report")
        return path
    base = REPORTS_DIR / f"{strategy}-{symbol or 'market'}.html"
    if force or not base.exists():
        return base
    for number in range(1, 10_000):
        candidate = base.with_name(f"{base.stem}-{number}{base.suffix}")
        if not candidate.exists():
            print(f"note: {base} exists; writing {candidate.name} instead (--force overwrites)",
                  file=sys.stderr)
            return candidate
    raise UsageError(f"too many reports named {base.stem}-N in {base.parent}")


# ----- commands ------------------------------------------------------------------------------------


def _load(path):
    import backtest

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", backtest.DataWarning)
        market = backtest.load(path)
    for warning in caught:
        if issubclass(warning.category, backtest.DataWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
    return market


def _data_command(action: str, path: str) -> int:
    market = _load(path)
    if action == "validate":
        print(f"{path}: OK, {len(market)} bars")
    else:
        print(repr(market))
        print(market.ohlcv.describe().loc[["min", "max", "mean"]].to_string())
    return EXIT_OK


def _summary(stats) -> str:
    from backtest.report import format_metric

    return "  ".join(f"{k}={format_metric(k, stats[k])}" for k in SUMMARY_KEYS if k in stats.index)


def _run_command(args) -> int:
    import backtest

    cls = load_strategy_class(args.strategy)
    params = _pairs(args.param, "param", many=False)
    grid = _pairs(args.grid, "grid", many=True)
    gates = [parse_gate(text) for text in args.fail_on]
    market = _load(args.data or backtest.sample_path("BTCUSDT"))
    strategy = cls(**params)
    combos = 1
    for values in grid.values():
        combos *= len(values)
    result = strategy.run(market, progress=True, **grid)
    stats = result.stats()
    for key, _, _ in gates:
        columns = stats.columns if hasattr(stats, "columns") else stats.index
        if key not in columns:
            raise UsageError(f"--fail-on: unknown metric {key!r}; known: {', '.join(map(str, columns))}")
    path = report_path(args.report, cls.__name__, market.symbol, args.force)
    result.report(path)
    print(f"{cls.__name__} on {market.symbol}: {len(market)} bars, {combos} column(s)")
    rows = stats.iterrows() if hasattr(stats, "columns") else [(None, stats)]
    for label, row in rows:
        print(("" if label is None else f"[{label}] ") + _summary(row))
    print(f"report: {path}")
    if args.json:
        Path(args.json).write_text(stats.to_json(date_format="iso", default_handler=str, indent=1))
    tripped = []
    for key, op, limit in gates:
        values = stats[key] if hasattr(stats, "columns") else [stats[key]]
        for value in values:
            if OPERATORS[op](float(value), limit):
                tripped.append(f"{key}={float(value):.6g} {op} {limit:g}")
    if tripped:
        print("gate tripped: " + "; ".join(tripped), file=sys.stderr)
        return EXIT_GATE
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "data":
            return _data_command(args.action, args.path)
        return _run_command(args)
    except (UsageError, ValueError, FileNotFoundError, json.JSONDecodeError) as exc:
        if args.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

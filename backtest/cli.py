"""The ``backtest`` command.

Exit codes: 0 success; 1 when a ``--fail-on`` gate trips (so CI can hold a strategy to its
limits) or ``check-lookahead`` finds look-ahead; 2 on bad input (data, strategy, parameters,
output paths), reported as one line with no traceback unless ``--debug``; 130 if interrupted.

Nothing the user has is lost: outputs never replace an input, nor an existing file without
``--force``; their names are claimed before the run and written atomically (see
:mod:`backtest.outputs`). Everything that can be checked before the run is: the strategy
imports and has ``signals``, parameters and gates parse, metrics exist and are numeric, output
paths are writable, the grid fits in memory.

Examples::

    backtest run                                        # flagship strategy on the sample data
    backtest run strategies.trend:TrendFollowing --data data/ETHUSDT-1h.parquet
    backtest run my_strategy.py:MyStrategy --param fast=12 --grid slow=96,192
    backtest run --fail-on "max_drawdown>0.35" --fail-on "liquidations>0" --json stats.json
    backtest check-lookahead my_strategy.py:MyStrategy  # exit 1 if a hook peeks ahead
    backtest montecarlo --leverage 1,3,5,10 --paths 500 --fail-on "p_liquidation>0.05"
    backtest walk-forward --grid fast=12,24,48 --train 4320 --test 1440 --fail-on "degradation<0.3"
    backtest stress --leverage 1,3,10 --shock "crash:at=2025-06-01,drop=0.3,bars=6" --fail-on "survives<1"
    backtest data info data/BTCUSDT-1h.parquet
    backtest data validate my_candles.csv
    backtest data download BTCUSDT --exchange binanceusdm --timeframe 1h --since 2024-01-01
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import importlib.util
import json
import operator
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.outputs import write_atomic
from backtest.sweep import LOADED_FROM_FILE

EXIT_OK, EXIT_GATE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
REPORTS_DIR = Path("reports")  # relative to where the command runs (the repository root)
GATE = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")
OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
             "==": operator.eq, "!=": operator.ne}
SUMMARY_KEYS = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "liquidations",
                "funding_paid", "fees_paid", "max_effective_leverage")
NON_NUMERIC_METRICS = {"start": "a date", "end": "a date", "max_drawdown_duration": "a duration"}
# ×10 and above +100,000% a year: no strategy earns this without seeing the future
ABSURD_RETURN, ABSURD_CAGR = 10.0, 1e3
BYTES_PER_COLUMN_BAR = 120  # measured peak of Strategy.run + stats() per grid column and bar
MEMORY_HEADROOM = 0.8
REPORT_METRIC = "sharpe"  # ranks a grid's combinations for the report's full section
MAX_PRINTED_ROWS = 50  # a grid's summary lines on the terminal


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backtest", description="Backtest leveraged perpetual-futures strategies.",
        epilog=__doc__.split("Examples::", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    # sub-commands take --debug too; SUPPRESS keeps a top-level --debug from being reset
    debug = dict(action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def market_options(command, grid: bool = True):
        command.add_argument("strategy", nargs="?", default=None,
                             help="module:Class or path/to/file.py:Class (default: the flagship example)")
        command.add_argument("--data", default=None, nargs="+", metavar="PATH",
                             help="market data file (default: sample BTCUSDT 1h); several files, "
                                  "a quoted glob or a folder make one account over them all")
        command.add_argument("--funding", default=None, help="funding-rate history file")
        command.add_argument("--mark", default=None, help="mark-price candles file")
        command.add_argument("--tiers", default=None, metavar="FILE|SYMBOL",
                             help="maintenance-margin tiers: a JSON file (ccxt "
                                  "fetch_leverage_tiers layout or ours) or a shipped symbol "
                                  "(BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT); default: the data's "
                                  "symbol's shipped table")
        command.add_argument("--param", action="append", default=[], metavar="K=V",
                             help="set a parameter or setting (repeatable)")
        if grid:
            command.add_argument("--grid", action="append", default=[], metavar="K=V1,V2",
                                 help="grid axis: every combination runs as one column (repeatable)")
        command.add_argument("--debug", **debug)

    run = commands.add_parser("run", help="run a strategy and write an HTML report",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=__doc__.split("Examples::", 1)[1])
    market_options(run)
    run.add_argument("--report", default=None, help="report path (default: reports/<strategy>-<symbol>.html)")
    run.add_argument("--json", default=None, help="also write stats as JSON here")
    run.add_argument("--fail-on", action="append", default=[], metavar="EXPR",
                     help='exit 1 when a metric crosses a limit, e.g. "max_drawdown>0.35"')
    run.add_argument("--undefined", choices=("fail", "pass"), default="fail",
                     help="a gate on an undefined metric (e.g. Sharpe without trades): fail "
                          "(default) or pass")
    run.add_argument("--force", action="store_true", help="replace existing output files")

    check = commands.add_parser("check-lookahead",
                                help="look for look-ahead in a strategy's hooks (exit 1 if found)")
    market_options(check)
    check.add_argument("--cuts", type=int, default=5, help="cut points to test (default 5)")

    def leverage_option(command):
        command.add_argument("--leverage", required=True, metavar="L1,L2,...",
                             help="leverages to compare, e.g. 1,3,5,10")

    def research_outputs(command, json_help: str, gate_help: str):
        """--json, --fail-on, --report and --force of montecarlo, walk-forward and stress."""
        command.add_argument("--json", default=None, help=json_help)
        command.add_argument("--fail-on", action="append", default=[], metavar="EXPR", help=gate_help)
        command.add_argument("--report", default=None, help="write an HTML page of the results here")
        command.add_argument("--force", action="store_true", help="replace existing output files")

    carlo = commands.add_parser(
        "montecarlo", help="which leverage survives: the strategy on bootstrap paths of the data")
    market_options(carlo, grid=False)
    leverage_option(carlo)
    carlo.add_argument("--paths", type=int, default=1000, help="bootstrap paths (default 1000)")
    carlo.add_argument("--block", type=float, default=24 * 7,
                       help="mean block length in bars (default 168: a week of hourly bars)")
    carlo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    carlo.add_argument("--ruin", type=float, default=0.5,
                       help="ruin: equity below this fraction of the initial cash (default 0.5)")
    carlo.add_argument("--drawdown", type=float, default=0.5,
                       help="p_drawdown counts drawdowns deeper than this (default 0.5)")
    research_outputs(carlo, "write the summary per leverage as JSON here",
                     'exit 1 when a leverage crosses a limit, e.g. "p_liquidation>0.05"')

    walk = commands.add_parser(
        "walk-forward", help="choose parameters on each train window, trade them on the next")
    market_options(walk)
    walk.add_argument("--train", type=int, required=True, metavar="BARS", help="train window, bars")
    walk.add_argument("--test", type=int, required=True, metavar="BARS", help="test window, bars")
    walk.add_argument("--step", type=int, default=None, metavar="BARS",
                      help="bars between folds (default: --test)")
    walk.add_argument("--anchored", action="store_true", help="train from the first bar on")
    walk.add_argument("--objective", default="sharpe", help="what the choice maximizes (default sharpe)")
    research_outputs(walk, "write the folds and the summary as JSON here",
                     'exit 1 when the summary crosses a limit, e.g. "degradation<0.3"')

    stress = commands.add_parser(
        "stress", help="inject crashes into the data and see which leverage survives them")
    market_options(stress, grid=False)
    leverage_option(stress)
    stress.add_argument("--shock", action="append", default=[], metavar="NAME:K=V,...",
                        help='a shock (repeatable): "crash:at=2025-06-01,drop=0.3,bars=6,wick=0.05,'
                             'mark_divergence=0.02,depth_factor=0.1,funding_rate=-0.003,recovery=0.5"')
    research_outputs(stress, "write one row per (scenario, leverage) here",
                     'exit 1 when a row crosses a limit, e.g. "survives<1" or "loss>0.5"')

    data = commands.add_parser("data", help="inspect, validate or download market data")
    data.add_argument("--debug", **debug)
    actions = data.add_subparsers(dest="action", required=True)
    for action, text in (("info", "describe a data file (candles, mark, funding or tiers)"),
                         ("validate", "check a data file (exit 2 naming the file, column, row)")):
        command = actions.add_parser(action, help=text)
        command.add_argument("path", help="a data file, or a folder from `data download`")
        command.add_argument("--debug", **debug)
    fetch = actions.add_parser(
        "download", help="download perpetual candles, funding, mark prices and tiers (ccxt)",
        description="Download through ccxt (pip install -e \".[data]\") into "
                    "OUT/EXCHANGE/SYMBOL-TIMEFRAME/{candles,mark,funding}.parquet and tiers.json; "
                    "run it again to bring the folder up to date.")
    fetch.add_argument("symbols", nargs="+", metavar="SYMBOL", help="e.g. BTCUSDT or BTC/USDT:USDT")
    fetch.add_argument("--exchange", default="binanceusdm",
                       help="a ccxt exchange id: binanceusdm (default), bybit, okx, ...")
    fetch.add_argument("--timeframe", default="1h", help="bar length, e.g. 1h, 15m (default 1h)")
    fetch.add_argument("--since", default=None,
                       help="first date, UTC (e.g. 2024-01-01); optional once the folder has data")
    fetch.add_argument("--until", default=None, help="end date, UTC, exclusive (default: now)")
    fetch.add_argument("--out", default="data", help="root folder (default: data)")
    fetch.add_argument("--debug", **debug)
    fetch.set_defaults(path=None)
    return parser


# ----- parsing helpers ------------------------------------------------------------------------------


def parse_value(text: str):
    """``"3"`` → 3, ``"0.5"`` → 0.5, ``"true"`` → True, ``"none"`` → None, else the string."""
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
        key = key.strip()
        if not sep or not key or not value.strip():
            raise UsageError(f"--{what} {item!r}: expected key=value{'1,value2' if many else ''}")
        if key in out:
            raise UsageError(f"--{what} names {key!r} twice; give each parameter once")
        values = [parse_value(v) for v in value.split(",")] if many else parse_value(value)
        if many and any(isinstance(v, str) and not v.strip() for v in values):
            raise UsageError(f"--{what} {item!r}: an empty value in the list")
        out[key] = values
    return out


def parse_gate(text: str, known: tuple[str, ...] | None = None):
    """``"max_drawdown>0.35"`` → ("max_drawdown", ">", 0.35); known (``known``, by default the
    statistics), numeric metrics only."""
    from backtest.result import STAT_KEYS

    keys = known or STAT_KEYS
    match = GATE.match(text)
    if not match:
        raise UsageError(f"--fail-on {text!r}: expected METRIC OP NUMBER, e.g. 'max_drawdown>0.35'")
    key, op, number = match.groups()
    try:
        limit = float(number)
    except ValueError:
        raise UsageError(f"--fail-on {text!r}: {number!r} is not a number") from None
    if np.isnan(limit):
        raise UsageError(f"--fail-on {text!r}: the limit is NaN")
    if key not in keys:
        hint = difflib.get_close_matches(key, keys, n=1)
        raise UsageError(f"--fail-on: unknown metric {key!r}"
                         + (f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(keys)}"))
    if key in NON_NUMERIC_METRICS:
        raise UsageError(f"--fail-on {text!r}: {key} is {NON_NUMERIC_METRICS[key]}, not a number")
    return key, op, limit


def _import_file(path: Path):
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"strategy file {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(module_spec)
    setattr(module, LOADED_FROM_FILE, True)  # not importable elsewhere (e.g. on Dask workers)
    sys.modules[path.stem] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(path.stem, None)
        raise
    return module


def _import_strategy_module(target: str):
    """The module holding a strategy; whatever goes wrong on import becomes one UsageError."""
    where = f"strategy file {target}" if target.endswith(".py") else f"strategy module {target!r}"
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise UsageError(f"strategy file {path} not found")
            return _import_file(path)
        return importlib.import_module(target)
    except UsageError:
        raise
    except SyntaxError as exc:
        raise UsageError(f"{where}: syntax error at line {exc.lineno}: {exc.msg}") from exc
    except ImportError as exc:
        missing = f" (is {exc.name!r} installed?)" if exc.name and exc.name != target else ""
        raise UsageError(f"{where} cannot be imported: {exc}{missing}") from exc
    except SystemExit as exc:
        raise UsageError(f"{where} called sys.exit({exc.code!r}) while being imported") from exc
    except Exception as exc:
        raise UsageError(f"{where} raised {type(exc).__name__} while being imported: {exc}") from exc


def load_strategy_class(spec: str | None):
    """``module:Class`` or ``path/to/file.py:Class``; None → the flagship example."""
    from backtest.strategy import Strategy

    if spec is None:
        from strategies import FLAGSHIP

        return FLAGSHIP
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise UsageError(f"strategy {spec!r}: expected module:Class or path/to/file.py:Class")
    module = _import_strategy_module(target)
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise UsageError(f"{spec}: {name!r} is not a Strategy subclass in {target}")
    if cls is Strategy or cls.signals is Strategy.signals:
        raise UsageError(f"{spec}: {name} does not define signals(market), so it cannot run")
    return cls


def _make_strategy(cls, params: dict):
    try:
        strategy = cls(**params)
    except ValueError as exc:
        raise UsageError(f"--param: {exc}") from exc
    except Exception as exc:
        raise UsageError(f"{cls.__name__}(...) cannot be created: {type(exc).__name__}: {exc}") from exc
    try:
        strategy.with_params().validate()  # types and bounds, before any data is read
    except ValueError as exc:
        raise UsageError(f"--param: {exc}" if params else str(exc)) from exc
    return strategy


# ----- inputs and outputs -----------------------------------------------------------------------


def _data_paths(args) -> list:
    """The data files: the sample by default; globs and folders expanded."""
    import backtest
    from backtest.markets import expand_paths

    if args.data is None:
        return [backtest.sample_path("BTCUSDT")]
    from backtest.data.download import is_symbol_folder

    if any(not str(item).strip() for item in args.data):
        raise UsageError("--data is empty (an unset variable?); give a data file")
    # a downloaded symbol folder (candles, mark, funding, tiers) is one instrument, not a set
    return [path for item in args.data
            for path in ([Path(item)] if is_symbol_folder(item) else expand_paths([item]))]


def _inputs(args) -> list[tuple[str, str | None]]:
    strategy = args.strategy.rpartition(":")[0] if args.strategy else None
    data = [] if args.data is None else [("--data", item) for item in args.data
                                         if not any(ch in str(item) for ch in "*?[")]
    if args.data is not None:
        try:
            data += [("--data", str(path)) for path in _data_paths(args)]
        except (UsageError, FileNotFoundError):
            pass
    return [*data, ("--funding", args.funding), ("--mark", args.mark),
            ("--tiers", getattr(args, "tiers", None)),
            ("strategy", strategy if strategy and strategy.endswith(".py") else None)]


def _load(paths, funding=None, mark=None):
    """One Market for one file, Markets (one clock) for several."""
    import backtest

    paths = paths if isinstance(paths, list) else [paths]
    for flag, value in (("--funding", funding), ("--mark", mark)):
        if value is not None and not str(value).strip():
            raise UsageError(f"{flag} is empty; give a file or leave the flag out")
        if value is not None and len(paths) > 1:
            raise UsageError(f"{flag} goes with one --data file; with several, put mark and "
                             "funding columns in each file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", backtest.DataWarning)
        if len(paths) == 1:
            market = backtest.load(paths[0], funding=funding, mark=mark)
        else:
            market = backtest.Markets([backtest.load(path) for path in paths])
    for warning in caught:
        if issubclass(warning.category, backtest.DataWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
    return market


def _symbol(market) -> str | None:
    symbols = getattr(market, "symbols", None)
    return "+".join(symbols) if symbols else market.symbol


def _check_outputs(args) -> None:
    """Refuse unusable explicit output paths before anything is read or run."""
    from backtest.outputs import check_output

    inputs = _inputs(args)
    if args.json is not None:
        check_output(args.json, what="--json", inputs=inputs, others=[("--report", args.report)])
    if args.report is not None:
        check_output(args.report, what="--report", inputs=inputs)


def _claim_outputs(args, cls, symbol: str | None):
    """Check and claim the report and JSON paths before the run (see backtest.outputs)."""
    from backtest.outputs import check_output, claim_output

    inputs = _inputs(args)
    claims = []
    try:
        json_path = None
        if args.json is not None:
            json_path = check_output(args.json, what="--json", inputs=inputs,
                                     others=[("--report", args.report)])
        if args.report is not None:
            report = check_output(args.report, what="--report", inputs=inputs)
            claims.append(claim_output(report, what="--report", force=args.force))
        else:
            REPORTS_DIR.mkdir(exist_ok=True)
            default = check_output(REPORTS_DIR / f"{cls.__name__}-{symbol or 'market'}.html",
                                   what="report", inputs=inputs, others=[("--json", json_path)])
            claims.append(claim_output(default, what="report", force=args.force, numbered=True))
            if claims[0].path != default:
                print(f"note: {default} exists; writing {claims[0].path.name} instead "
                      "(--force replaces it)", file=sys.stderr)
        if json_path is not None:
            claims.append(claim_output(json_path, what="--json", force=args.force))
    except BaseException:
        for claim in claims:
            claim.release()
        raise
    return claims


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fits_in_memory(n_columns: int, n_bars: int, available: int | None = None) -> bool:
    """Whether a full run (records, per-bar series, report) of this size fits in memory."""
    available = _available_memory() if available is None else available
    return available is None or BYTES_PER_COLUMN_BAR * n_columns * n_bars <= MEMORY_HEADROOM * available


def check_memory(n_columns: int, n_bars: int, available: int | None = None) -> None:
    """Refuse at once a run that cannot fit in memory, with the estimate."""
    available = _available_memory() if available is None else available
    if not fits_in_memory(n_columns, n_bars, available):
        need = BYTES_PER_COLUMN_BAR * n_columns * n_bars
        raise UsageError(
            f"this run needs about {need / 2**30:.1f} GiB ({n_columns:,} column(s) × {n_bars:,} "
            f"bars) and {available / 2**30:.1f} GiB are available: use a shorter --data range "
            "or fewer instruments")


# ----- results ---------------------------------------------------------------------------------


def _json_value(value):
    if value is pd.NaT:
        return None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return None
        if np.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        return value.isoformat()
    return value


def label_params(label, names) -> dict:
    """A grid column's label as {parameter: value} (plain Python values).

    >>> label_params((12, 3.0), ["fast", "leverage"])
    {'fast': 12, 'leverage': 3.0}
    """
    values = label if isinstance(label, tuple) else (label,)
    names = [name if name is not None else f"level_{k}" for k, name in enumerate(names)]
    if len(names) != len(values):
        names = [f"level_{k}" for k in range(len(values))]
    return {str(name): _json_value(value) for name, value in zip(names, values, strict=True)}


def label_text(label, names) -> str:
    """``fast=12, leverage=3`` for a grid column: which combination, in words.

    >>> label_text((np.int64(12), 3.0), ["fast", "leverage"])
    'fast=12, leverage=3'
    """
    if all(name is None for name in names):  # unnamed rows (e.g. "leverage 3"): as they are
        return ", ".join(map(str, label)) if isinstance(label, tuple) else str(label)
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in label_params(label, names).items())


def stats_json(stats) -> str:
    """Stats as JSON. One run: one value per metric. A grid: ``{"combinations": [{"params":
    {"fast": 12, ...}, "stats": {...}, "undefined": {...}}, ...]}``, one object per column
    with its parameters by name. NaN is null and each undefined metric's reason is under
    ``"undefined"``; infinities are "inf"/"-inf"; counts are integers."""
    from backtest.result import undefined_metrics

    def values(row: pd.Series) -> dict:
        return {str(k): _json_value(v) for k, v in row.items()}

    if isinstance(stats, pd.Series):
        payload = values(stats)
        payload["undefined"] = undefined_metrics(stats)
    else:
        payload = {"combinations": [
            {"params": label_params(label, stats.index.names), "stats": values(row),
             "undefined": undefined_metrics(row)} for label, row in stats.iterrows()]}
    return json.dumps(payload, indent=1, allow_nan=False)


def check_gates(stats, gates, undefined: str = "fail") -> list[str]:
    """The gates that tripped, as readable lines. A gate on an undefined (NaN) metric trips
    unless ``undefined="pass"``: an absent Sharpe must not pass ``sharpe<0.5``."""
    from backtest.result import UNDEFINED_REASONS

    rows = stats.iterrows() if isinstance(stats, pd.DataFrame) else [(None, stats)]
    tripped = []
    for label, row in rows:
        where = "" if label is None else f"[{label_text(label, stats.index.names)}] "
        for key, op, limit in gates:
            value = float(row[key])
            if np.isnan(value):
                if undefined == "fail":
                    reason = UNDEFINED_REASONS.get(key, "not defined for this run")
                    tripped.append(f"{where}{key} is undefined ({reason}); --undefined pass lets it pass")
            elif OPERATORS[op](value, limit):
                tripped.append(f"{where}{key}={value:.6g} {op} {limit:g}")
    return tripped


def _gate_exit(stats, gates, undefined: str = "fail") -> int:
    """EXIT_GATE (the tripped gates on stderr) or EXIT_OK."""
    tripped = check_gates(stats, gates, undefined)
    if tripped:
        print("gate tripped: " + "; ".join(tripped), file=sys.stderr)
        return EXIT_GATE
    return EXIT_OK


@contextlib.contextmanager
def _claim(args, flag: str):
    """The ``--{flag}`` output path checked and claimed before the run (None when not given),
    released if the run fails (see backtest.outputs)."""
    from backtest.outputs import check_output, claim_output

    path = getattr(args, flag, None)
    if path is None:
        yield None
        return
    others = [(f"--{o}", getattr(args, o, None)) for o in ("json", "report") if o != flag]
    claim = claim_output(check_output(path, what=f"--{flag}", inputs=_inputs(args), others=others),
                         what=f"--{flag}", force=args.force)
    try:
        yield claim
    except BaseException:
        claim.release()
        raise


def _summary(stats) -> str:
    from backtest.report import format_metric

    return "  ".join(f"{k}={format_metric(k, stats[k])}" for k in SUMMARY_KEYS if k in stats.index)


def _data_command(action: str, path: str | None, args=None) -> int:
    if action == "download":
        from backtest.data.download import DownloadError, download

        try:
            done = download(args.symbols, exchange=args.exchange, timeframe=args.timeframe,
                            since=args.since, until=args.until, out=args.out)
        except DownloadError as exc:
            raise UsageError(str(exc)) from exc
        for item in done:
            print(item.summary())
        print(f"next: backtest run --data {done[0].folder}")
        return EXIT_OK
    if not path.strip():
        raise UsageError("the data path is empty; give a file")
    from backtest.data.readers import file_kind, load_funding, load_mark
    from backtest.engine.margin import load_tiers
    from backtest.market import timeframe_label

    kind = file_kind(path)
    if kind == "funding":
        rates = load_funding(path).dropna()
        if rates.empty:
            raise UsageError(f"{path}: a funding-rate file with no rates")
        spacing = timeframe_label(rates.index.to_series().diff().median().round("s"))
        print(f"{path}: funding-rate history, {len(rates)} payments every {spacing}, "
              f"{rates.index[0]} → {rates.index[-1]}")
        if action == "info":
            print(f"rate per payment: mean {rates.mean():.4%}, min {rates.min():.4%}, "
                  f"max {rates.max():.4%}; use it with --funding")
        return EXIT_OK
    if kind == "tiers":
        payload = json.loads(Path(path).read_text())
        symbols = list(payload) if isinstance(payload, dict) and "brackets" not in payload else [None]
        print(f"{path}: maintenance-margin tiers for {', '.join(map(str, symbols)) if symbols != [None] else 'one market'}; use it with --tiers")
        if action == "info":
            for symbol in symbols:
                table = load_tiers(path, symbol=symbol)
                print(f"{symbol or ''} {len(table)} brackets, up to {table['max_leverage'].max():g}x")
                print(table.to_string(index=False))
        return EXIT_OK
    if kind == "mark":
        mark = load_mark(path)
        print(f"{path}: mark-price candles, {len(mark)} bars, {mark.index[0]} → {mark.index[-1]}; "
              "use it with --mark")
        if action == "info":
            print(mark.describe().loc[["min", "max", "mean"]].to_string())
        return EXIT_OK
    market = _load([path])
    if action == "validate":
        print(f"{path}: OK, {len(market)} bars")
    else:
        print(repr(market))
        if market.description:
            print(market.description)
        print(market.ohlcv.describe().loc[["min", "max", "mean"]].to_string())
    return EXIT_OK


def _prepare(args):
    """Everything checked before the data is read: strategy, parameters, grid."""
    cls = load_strategy_class(args.strategy)
    params = _pairs(args.param, "param", many=False)
    grid = _pairs(getattr(args, "grid", []), "grid", many=True)
    both = set(params) & set(grid)
    if both:
        raise UsageError(f"{sorted(both)[0]!r} is given by --param and --grid; give it once")
    if getattr(args, "tiers", None) is not None:
        if "tiers" in params or "tiers" in grid:
            raise UsageError("'tiers' is given by --tiers and --param; give it once")
        params["tiers"] = _tiers_argument(args.tiers)
    elif "tiers" not in params and "tiers" not in grid and getattr(args, "data", None):
        from backtest.data.download import downloaded_tiers

        found = downloaded_tiers(_data_paths(args))  # a downloaded folder's own tiers.json
        if found is not None:
            params["tiers"] = found
    strategy = _make_strategy(cls, params)
    return cls, strategy, grid


def _tiers_argument(text: str) -> str:
    """``--tiers``: an existing JSON file, or the symbol of a shipped table."""
    from backtest.engine.margin import shipped_symbols

    text = text.strip()
    if not text:
        raise UsageError("--tiers is empty; give a JSON file or a symbol such as BTCUSDT")
    if Path(text).suffix:
        if not Path(text).is_file():
            raise UsageError(f"--tiers {text}: no such file")
        return text
    shipped = shipped_symbols()
    if text.upper() not in shipped:
        raise UsageError(f"--tiers {text}: no table shipped for this symbol; shipped: "
                         f"{', '.join(shipped)} (or give a ccxt fetch_leverage_tiers JSON file)")
    return text.upper()


def _check_lookahead_command(args) -> int:
    cls, strategy, grid = _prepare(args)
    market = _load(_data_paths(args), args.funding, args.mark)
    findings = strategy.check_lookahead(market, cuts=args.cuts, **grid)
    if findings:
        for line in findings:
            print(f"look-ahead: {line}")
        return EXIT_GATE
    print(f"{cls.__name__}: no look-ahead found (hooks compared on {args.cuts} cut points)")
    return EXIT_OK


def _montecarlo_command(args) -> int:
    from backtest.montecarlo import SUMMARY_METRICS, monte_carlo

    cls, strategy, _ = _prepare(args)
    leverages = _leverages(args.leverage)
    gates = [parse_gate(text, known=SUMMARY_METRICS) for text in args.fail_on]
    with _claim(args, "json") as claim, _claim(args, "report") as page:
        market = _load(_data_paths(args), args.funding, args.mark)
        if hasattr(market, "symbols"):
            raise UsageError("montecarlo resamples one instrument: give one --data file")
        result = monte_carlo(strategy, market, leverage=leverages, n_paths=args.paths,
                             mean_block=args.block, seed=args.seed, ruin=args.ruin,
                             drawdown=args.drawdown)
        if page is not None:
            from backtest.report import synthetic_note
            from backtest.report.research import write_montecarlo_page

            write_montecarlo_page(result, page.path, subject=f"{cls.__name__} on {_symbol(market)}",
                                  synthetic=synthetic_note(market))
        summary = result.summary()
        summary.index = [f"leverage {lev:g}" for lev in summary.index]
        if claim is not None:
            payload = {str(metric): {label: _json_value(v) for label, v in summary[metric].items()}
                       for metric in summary.columns}
            write_atomic(claim.path, json.dumps(payload, indent=1, allow_nan=False))
    print(f"{cls.__name__} on {_symbol(market)}: {args.paths} bootstrap paths of {len(market)} bars "
          f"(mean block {args.block:g} bars, seed {args.seed}); ruin below {args.ruin:g} × the "
          f"initial cash, drawdown beyond {args.drawdown:g}")
    columns = ["p_liquidation", "p_ruin", "p_drawdown", "final_equity_q05", "final_equity_median",
               "cagr_median"]
    print(summary[columns].to_string(float_format=lambda v: f"{v:.4g}"))
    if result.kelly_leverage is not None and np.isfinite(result.kelly_leverage):
        print(f"Kelly leverage of the strategy's 1x returns: {result.kelly_leverage:.3g} "
              f"(half-Kelly {result.kelly_leverage / 2:.3g})")
    if args.report is not None:
        print(f"report: {args.report}")
    return _gate_exit(summary, gates)


def _leverages(text: str) -> list[float]:
    """``--leverage 1,3,10`` as numbers, each positive."""
    leverages = []
    for item in text.split(","):
        value = parse_value(item.strip())
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise UsageError(f"--leverage: {item.strip()!r} is not a positive number")
        leverages.append(float(value))
    return leverages


def parse_shock(text: str):
    """``--shock "crash:at=2025-06-01,drop=0.3,bars=6,wick=0.05"`` → (name, Shock); the fields
    are :class:`backtest.stress.Shock`'s, and ``symbol=SOLUSDT`` (then (name, Shock, symbol))
    picks the instrument of a several-instrument account.

    >>> parse_shock("crash:at=2025-06-01,drop=0.3,bars=6")
    ('crash', Shock(at='2025-06-01', drop=0.3, bars=6, wick=0.0, recovery=0.0, mark_divergence=0.0, depth_factor=1.0, funding_rate=None))
    """
    import dataclasses

    from backtest.stress import Shock

    name, sep, body = text.partition(":")
    if not sep or not name.strip() or not body.strip():
        raise UsageError(f"--shock {text!r}: expected NAME:at=TIME,drop=FRACTION[,bars=N,...]")
    fields = {f.name for f in dataclasses.fields(Shock)} | {"symbol"}
    values = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in fields:
            hint = difflib.get_close_matches(key, sorted(fields), n=1)
            raise UsageError(f"--shock {name}: unknown field {key!r}"
                             + (f"; did you mean {hint[0]!r}?" if hint else f"; fields: {', '.join(sorted(fields))}"))
        values[key] = value.strip() if key == "at" else parse_value(value)
    missing = {"at", "drop"} - set(values)
    if missing:
        raise UsageError(f"--shock {name}: give {' and '.join(sorted(missing))}")
    symbol = values.pop("symbol", None)
    shock = Shock(**values)
    try:
        shock.check()
    except ValueError as exc:
        raise UsageError(f"--shock {name}: {exc}") from None
    return (name.strip(), shock) if symbol is None else (name.strip(), shock, str(symbol))


STRESS_METRICS = ("survives", "loss", "max_drawdown")


def _stress_command(args) -> int:
    from backtest.stress import stress_portfolio, stress_test

    cls, strategy, _ = _prepare(args)
    leverages = _leverages(args.leverage)
    parsed = [parse_shock(text) for text in args.shock]
    if not parsed:
        raise UsageError('give at least one --shock, e.g. --shock "crash:at=2025-06-01,drop=0.3,bars=6"')
    gates = [parse_gate(text, known=STRESS_METRICS) for text in args.fail_on]
    with _claim(args, "json") as claim, _claim(args, "report") as page:
        market = _load(_data_paths(args), args.funding, args.mark)
        if hasattr(market, "symbols"):  # one account over several instruments
            scenarios: dict = {}
            for name, shock, *symbol in parsed:
                if not symbol or symbol[0] not in market.symbols:
                    raise UsageError(f"--shock {name}: with several instruments name one with "
                                     f"symbol=... (one of {', '.join(market.symbols)})")
                scenarios.setdefault(name, {})[symbol[0]] = shock
            shocks = {name: "; ".join(f"{s}: {v}" for s, v in by.items()) for name, by in scenarios.items()}
            table = stress_portfolio(strategy, market, scenarios, leverage=leverages)
        else:
            shocks = {name: shock for name, shock, *_ in parsed}
            table = stress_test(strategy, market, shocks, leverage=leverages)
        if page is not None:
            from backtest.report import synthetic_note
            from backtest.report.research import write_stress_page

            write_stress_page(table, page.path, subject=f"{cls.__name__} on {_symbol(market)}",
                              shocks=shocks, synthetic=synthetic_note(market))
        table["survives"] = table["survives"].astype(int)
        if claim is not None:
            rows = [{"scenario": scenario, "leverage": _json_value(lev),
                     **{k: _json_value(v) for k, v in row.items()}}
                    for (scenario, lev), row in table.iterrows()]
            write_atomic(claim.path, json.dumps({"scenarios": rows}, indent=1, allow_nan=False))
    print(f"{cls.__name__} on {_symbol(market)}: {len(shocks)} shock(s) and the untouched data, "
          f"at leverage {', '.join(f'{x:g}' for x in leverages)}")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.report is not None:
        print(f"report: {args.report}")
    gated = table.copy()
    gated.index = [f"{scenario}, leverage {lev:g}" for scenario, lev in table.index]
    return _gate_exit(gated[list(STRESS_METRICS)], gates)


WALK_FORWARD_METRICS = ("degradation", "in_sample", "out_of_sample")


def _walk_forward_command(args) -> int:
    from backtest.walkforward import OBJECTIVES, walk_forward

    cls, strategy, grid = _prepare(args)
    if not grid:
        raise UsageError("walk-forward chooses among combinations: give at least one --grid")
    if args.objective not in OBJECTIVES:
        raise UsageError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {args.objective!r}")
    gates = [parse_gate(text, known=WALK_FORWARD_METRICS) for text in args.fail_on]
    with _claim(args, "json") as claim, _claim(args, "report") as page:
        market = _load(_data_paths(args), args.funding, args.mark)
        result = walk_forward(strategy, market, train=args.train, test=args.test, step=args.step,
                              anchored=args.anchored, objective=args.objective, **grid)
        if page is not None:
            from backtest.report import synthetic_note
            from backtest.report.research import write_walkforward_page

            write_walkforward_page(result, page.path, subject=f"{cls.__name__} on {_symbol(market)}",
                                   synthetic=synthetic_note(market))
        summary = result.summary()
        if claim is not None:
            folds = [{str(k): _json_value(v) for k, v in row.items()}
                     for row in result.folds.to_dict(orient="records")]
            payload = {"summary": {k: _json_value(v) for k, v in summary.items()},
                       "objective": args.objective, "folds": folds}
            write_atomic(claim.path, json.dumps(payload, indent=1, allow_nan=False))
    print(f"{cls.__name__} on {_symbol(market)}: {len(result.folds)} folds, {args.objective} "
          f"chosen on {args.train} bars, traded on the next {args.test}")
    print(result.folds.drop(columns=["train_start", "test_end"]).to_string(
        float_format=lambda v: f"{v:.4g}"))
    print("  ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    if args.report is not None:
        print(f"report: {args.report}")
    return _gate_exit(summary, gates)


def _run_command(args) -> int:
    cls, strategy, grid = _prepare(args)
    gates = [parse_gate(text) for text in args.fail_on]
    _check_outputs(args)
    market = _load(_data_paths(args), args.funding, args.mark)
    combos = int(np.prod([len(values) for values in grid.values()])) if grid else 1
    per_combo = len(getattr(market, "symbols", [None]))
    check_memory(per_combo, len(market))  # one combination must fit, whatever the grid
    as_sweep = not fits_in_memory(combos * per_combo, len(market))
    claims = _claim_outputs(args, cls, _symbol(market))
    try:
        if as_sweep:
            from backtest.report import best_label

            print(f"note: {combos:,} combinations × {len(market):,} bars do not fit in memory as one "
                  "run: statistics only, in chunks (Strategy.sweep); the report shows the best "
                  f"combination by {REPORT_METRIC} in full", file=sys.stderr)
            sweep = strategy.sweep(market, progress=True, **grid)
            stats = sweep.stats()
            best = best_label(stats, REPORT_METRIC)
            best = best if isinstance(best, tuple) else (best,)
            result = strategy.with_params(**dict(zip(sweep.axes, best, strict=True))).run(market)
            report = result.report(claims[0].path, grid_stats=stats, metric=REPORT_METRIC,
                                   force=True)  # the claimed name
        else:
            result = strategy.run(market, progress=True, **grid)
            stats = result.stats()
            report = result.report(claims[0].path, metric=REPORT_METRIC, force=True)
        if args.json is not None:
            write_atomic(claims[1].path, stats_json(stats))
    except BaseException:
        for claim in claims:
            claim.release()
        raise
    n_rows = len(stats) if isinstance(stats, pd.DataFrame) else 1
    print(f"{cls.__name__} on {_symbol(market)}: {len(market)} bars, {n_rows} combination(s)")
    rows = stats.iterrows() if isinstance(stats, pd.DataFrame) else [(None, stats)]
    for k, (label, row) in enumerate(rows):
        if k < MAX_PRINTED_ROWS:
            print(("" if label is None else f"[{label_text(label, stats.index.names)}] ")
                  + _summary(row))
        if float(row["total_return"]) > ABSURD_RETURN and float(row["cagr"]) > ABSURD_CAGR:
            print(f"warning: a total return of {float(row['total_return']):.3g}× the initial cash "
                  "is not believable: look-ahead likely — run `backtest check-lookahead` on this "
                  "strategy", file=sys.stderr)
    if n_rows == 1:
        from backtest.report import leverage_note

        print(leverage_note(result.settings, float(stats["max_effective_leverage"])))
    if n_rows > MAX_PRINTED_ROWS:
        print(f"... {n_rows - MAX_PRINTED_ROWS:,} more combination(s) in the report"
              + (" and the JSON" if args.json is not None else ""))
    print(f"report: {report}")
    return _gate_exit(stats, gates, args.undefined)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as the command's other messages: one line on stderr, no source location."""
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(args)


def _main(args) -> int:
    debug = getattr(args, "debug", False)
    try:
        if args.command == "data":
            return _data_command(args.action, args.path, args)
        if args.command == "check-lookahead":
            return _check_lookahead_command(args)
        if args.command == "montecarlo":
            return _montecarlo_command(args)
        if args.command == "walk-forward":
            return _walk_forward_command(args)
        if args.command == "stress":
            return _stress_command(args)
        return _run_command(args)
    except KeyboardInterrupt:
        print("interrupted: no output was left half-written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _one_line(exc: BaseException) -> str:
    """A one-line message: the exception's own for input errors, its type too otherwise."""
    from backtest.strategy import HookError

    text = " ".join(str(exc).split()) if str(exc) else ""
    if isinstance(exc, UsageError | ValueError | FileNotFoundError | OSError | HookError):
        return text or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory: use fewer --grid values or a shorter --data range"
    return f"{type(exc).__name__}: {text} (--debug shows the traceback)"


if __name__ == "__main__":
    sys.exit(main())

"""The ``Strategy`` base class: parameters, vectorized hooks, parameter grids.

A strategy is a class whose parameters are class attributes with defaults and whose hooks turn a
:class:`~backtest.market.Market` into arrays for :func:`backtest.simulate`:

- ``signals(market)`` → mapping with any of ``entries``, ``exits``, ``short_entries``,
  ``short_exits`` (boolean Series or arrays, one value per bar). The only hook you must write.
- ``stops(market)`` → mapping with any of ``sl_stop``, ``tp_stop``, ``trail_stop`` (fractions of
  the entry price) and ``sl_price``, ``tp_price`` (absolute levels per bar). Default: none.
- ``size(market)`` → mapping with ``size`` (scalar or per bar) and ``size_type``. Default:
  ``{"size": 1.0, "size_type": "equity"}``, all equity committed as margin.

Settings shared by every strategy (``leverage``, ``margin_mode``, ``fees``, ``slippage``,
``timing``, ``init_cash``, ``tiers``, ``mmr``, ``funding``, ``intrabar``) are class attributes
too; override them in the subclass or per run.

Parameters are public class attributes: plain (``fast = 10``, as in backtesting.py), annotated
(``fast: int = 10``) or, to add bounds, :class:`Param` (``fast = Param(10, ge=2)``); numbers,
bools and strings are parameters, and their type is the default's. They are stored unchanged and checked when the
strategy runs, with "did you mean" hints for misspelled names.

Hooks see the whole market but must not look ahead: the value at bar t may use data up to t's
close only; with the default ``timing="next_open"`` a signal at t fills at t+1's open.

Example — a complete strategy in a few lines:

>>> from backtest import indicators                           # doctest: +SKIP
>>> class SmaCross(Strategy):                                # doctest: +SKIP
...     fast: int = 20
...     slow: int = 50
...     leverage = 3.0
...     def signals(self, market):
...         fast = indicators.ma(market.close, self.fast)    # vectorbt's MA on the market's index
...         slow = indicators.ma(market.close, self.slow)
...         return {"entries": fast > slow, "exits": fast < slow}
>>> result = SmaCross().run(market, fast=[10, 20], slow=[50, 100])   # doctest: +SKIP
>>> result.stats()                                           # 4 columns  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import itertools
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from backtest.engine.coerce import by_index, signal

SIGNAL_KEYS = ("entries", "exits", "short_entries", "short_exits")
STOP_KEYS = ("sl_stop", "tp_stop", "trail_stop", "sl_price", "tp_price")
SIZE_KEYS = ("size", "size_type")

# Settings that simulate() accepts per column, so a grid may vary them.
PER_COLUMN_SETTINGS = ("leverage", "fees", "slippage", "init_cash")
# Settings that hold for the whole call.
CALL_SETTINGS = ("margin_mode", "timing", "tiers", "mmr", "funding", "intrabar")
SETTINGS = PER_COLUMN_SETTINGS + CALL_SETTINGS


@dataclass(frozen=True)
class Param:
    """A strategy parameter with a default and optional bounds or choices.

    >>> class Breakout(Strategy):
    ...     window = Param(20, ge=2, doc="Donchian channel length, bars")
    ...     def signals(self, market):
    ...         return {}
    >>> Breakout(window=1).validate()
    Traceback (most recent call last):
    ...
    ValueError: Breakout: parameter 'window' must be >= 2, got 1
    """

    default: Any
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    doc: str = ""

    def check(self, owner: str, name: str, value: Any) -> None:
        where = f"{owner}: parameter {name!r}"
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{where} must be one of {list(self.choices)}, got {value!r}")
            return
        if value is None:
            return
        for bound, ok, word in (
            (self.ge, lambda v, b: v >= b, ">="),
            (self.gt, lambda v, b: v > b, ">"),
            (self.le, lambda v, b: v <= b, "<="),
            (self.lt, lambda v, b: v < b, "<"),
        ):
            if bound is not None and not ok(value, bound):
                raise ValueError(f"{where} must be {word} {bound}, got {value!r}")


def _check_type(owner: str, name: str, expected: type, value: Any) -> Any:
    """Check ``value`` against a parameter's declared type; ints are accepted for floats."""
    where = f"{owner}: parameter {name!r}"
    if expected is bool:
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{where} must be a bool, got {value!r}")
        return bool(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{where} must be an int, got {value!r}")
        return int(value)
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if not np.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value!r}")
        return float(value)
    if expected is str and not isinstance(value, str):
        raise ValueError(f"{where} must be a str, got {value!r}")
    return value


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
# Names of parameters that are numbers of bars the hooks need before they give values.
_WINDOW_NAME = re.compile(r"window|period|length|lookback|span|fast|slow|bars")


def _plain_parameter(value: Any, name: str = "") -> bool:
    """A plain class attribute that is a parameter (backtesting.py's ``fast = 10``): a number,
    bool or string, not an UPPER_CASE constant."""
    return type(value) in (int, float, bool, str) and not name.isupper()


def warm_up_bars(strategy: Strategy) -> dict[str, int]:
    """The parameters that are windows of bars (an int parameter whose name says window, period,
    length, lookback, span, fast, slow or bars, or whose ``Param.doc`` mentions a window) and
    their values: the hooks give no value before that many bars.

    >>> class Cross(Strategy):
    ...     fast = 10
    ...     slow = 50
    ...     def signals(self, market):
    ...         return {}
    >>> warm_up_bars(Cross(slow=200))
    {'fast': 10, 'slow': 200}
    """
    out = {}
    for name in strategy.param_names():
        value = getattr(strategy, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            continue
        declared, _ = strategy._declaration(name)
        doc = declared.doc if declared is not None else ""
        if _WINDOW_NAME.search(name) or "window" in doc:
            out[name] = int(value)
    return out


def _warn_short_history(variants: list[Strategy], n_bars: int) -> None:
    """Warn once per parameter value that needs more bars than the data has (the run would
    trade nothing there, and nothing else would say why)."""
    import warnings

    seen = set()
    for variant in variants:
        for name, bars in warm_up_bars(variant).items():
            if bars >= n_bars and (name, bars) not in seen:
                seen.add((name, bars))
                warnings.warn(f"{type(variant).__name__}: parameter {name!r}={bars} needs {bars} "
                              f"bars of history and the data has {n_bars}: its hooks give no "
                              "value (and no trade) on this data", UserWarning, stacklevel=3)
_ARTICLE = {int: "an int", float: "a number", bool: "a bool", str: "a str"}


class Strategy:
    """Base class of every strategy; see the module docstring for the contract.

    >>> class AlwaysLong(Strategy):
    ...     def signals(self, market):
    ...         return {"entries": np.ones(len(market), dtype=bool)}
    >>> AlwaysLong(leverage=2.0).leverage
    2.0
    """

    portfolio: ClassVar[bool] = True  # on Markets: one account per combination, every instrument
    cross_sectional: ClassVar[bool] = False  # hooks take the whole Markets and return DataFrames

    leverage: float = 1.0
    margin_mode: str = "isolated"
    fees: float = 0.0005  # Binance USDⓈ-M taker fee, regular tier
    slippage: float = 0.0
    timing: str = "next_open"
    init_cash: float = 10_000.0
    tiers: Any = None
    mmr: float | None = None
    funding: Any = True
    intrabar: str = "auto"

    _settings_constraints: ClassVar[dict[str, Param]] = {
        "leverage": Param(1.0, gt=0),
        "margin_mode": Param("isolated", choices=("isolated", "cross")),
        "fees": Param(0.0, ge=0, lt=1),
        "slippage": Param(0.0, ge=0, lt=1),
        "timing": Param("next_open", choices=("next_open", "close")),
        "init_cash": Param(10_000.0, gt=0),
        "intrabar": Param("auto", choices=("auto", "pessimistic", "optimistic")),
    }

    def __getattribute__(self, name: str) -> Any:
        # While a hook runs for the grid's hook cache, note which instance values it reads.
        state = object.__getattribute__(self, "__dict__")
        reads = state.get("_reads")
        if reads is not None and name in state and name != "_reads":
            reads[name] = state[name]
        return object.__getattribute__(self, name)

    def __init__(self, **params: Any) -> None:
        defaults = self.params()
        known = tuple(defaults) + SETTINGS
        for name, value in defaults.items():
            setattr(self, name, value)
        for name, value in params.items():
            if name not in known:
                raise ValueError(self._unknown(name, known))
            setattr(self, name, value)

    # ----- parameter declarations -------------------------------------------------------------

    @classmethod
    def params(cls) -> dict[str, Any]:
        """Declared parameters and their defaults (``Param`` unwrapped), base classes first."""
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass in (Strategy, object):
                continue
            annotations = klass.__dict__.get("__annotations__", {})
            for name, value in vars(klass).items():
                if name.startswith("_") or name in SETTINGS or callable(value):
                    continue
                if isinstance(value, (classmethod, staticmethod, property)):
                    continue
                if name in _BASE_CLASS_ATTRIBUTES or "ClassVar" in str(annotations.get(name, "")):
                    continue
                if isinstance(value, Param) or name in annotations or _plain_parameter(value, name):
                    found[name] = value.default if isinstance(value, Param) else value
        return found

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(cls.params())

    @classmethod
    def _declaration(cls, name: str) -> tuple[Param | None, type | None]:
        for klass in cls.__mro__:
            if name in vars(klass):
                value = vars(klass)[name]
                annotation = klass.__dict__.get("__annotations__", {}).get(name)
                expected = _TYPES.get(annotation) if isinstance(annotation, str) else annotation
                if isinstance(value, Param):
                    if expected is None and value.default is not None:
                        expected = type(value.default) if type(value.default) in _TYPES.values() else None
                    return value, expected if expected in _TYPES.values() else None
                if expected is None and _plain_parameter(value, name):
                    expected = type(value)
                return None, expected if expected in _TYPES.values() else None
        return None, None

    @classmethod
    def _unknown(cls, name: str, known: tuple[str, ...]) -> str:
        hint = difflib.get_close_matches(name, known, n=1)
        suffix = f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(known)}"
        return f"{cls.__name__}: unknown parameter {name!r}{suffix}"

    def get_params(self) -> dict[str, Any]:
        """Current parameter values (defaults overridden by keyword arguments)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def get_settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTINGS}

    def validate(self) -> None:
        """Check every parameter and setting against its type and bounds; ValueError names it."""
        owner = type(self).__name__
        for name in self.param_names() + SETTINGS:
            value = getattr(self, name)
            constraint, expected = self._declaration(name)
            if name in self._settings_constraints:
                constraint = self._settings_constraints[name]
            if value is None and expected is not None and self._default(name) is not None:
                raise ValueError(f"{owner}: parameter {name!r} must be {_ARTICLE[expected]}, "
                                 "got None")
            if expected is not None and value is not None:
                value = _check_type(owner, name, expected, value)
                setattr(self, name, value)
            if constraint is not None:
                constraint.check(owner, name, value)
        self.check_params()

    @classmethod
    def _default(cls, name: str) -> Any:
        defaults = cls.params()
        if name in defaults:
            return defaults[name]
        return getattr(Strategy, name, None)

    def check_params(self) -> None:
        """Override for checks across parameters (e.g. ``fast < slow``); raise ValueError."""

    # ----- hooks ------------------------------------------------------------------------------

    def signals(self, market) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must define signals(market)")

    def stops(self, market) -> dict[str, Any]:
        return {}

    def size(self, market) -> dict[str, Any]:
        """Default: all the equity (one instrument); in a portfolio of N instruments each leg
        gets an even share of the account's leverage (exposure = leverage / N)."""
        legs = getattr(self, "_instruments", 1)
        if legs > 1:
            return {"size": float(self.leverage) / legs, "size_type": "exposure"}
        return {"size": 1.0, "size_type": "equity"}

    # ----- running ----------------------------------------------------------------------------

    def with_params(self, **params: Any) -> Strategy:
        """A copy with some parameters or settings replaced."""
        merged = {**self.get_params(), **self.get_settings(), **params}
        return type(self)(**merged)

    def trading_alone(self, **params: Any) -> Strategy:
        """A copy (``params`` replaced) whose instruments each trade in an account of their own
        (``portfolio = False``): for bootstrap paths or stress scenarios set side by side as the
        instruments of one Markets."""
        cls = type(self)
        alone = type(cls.__name__, (cls,), {"portfolio": False, "__module__": cls.__module__})
        return alone(**{**self.get_params(), **self.get_settings(), **params})

    def expand(self, **grid: Any):
        """(base strategy, grid axes, one validated strategy per combination, column labels)."""
        axes = {k: list(v) for k, v in grid.items() if isinstance(v, list | tuple | np.ndarray | range)}
        fixed = {k: v for k, v in grid.items() if k not in axes}
        for name, values in axes.items():
            if name in CALL_SETTINGS:
                raise ValueError(f"{type(self).__name__}: setting {name!r} holds for the whole "
                                 "run and cannot vary in a grid; run once per value instead")
            if not values:
                raise ValueError(f"{type(self).__name__}: grid for {name!r} is empty")
        base = self.with_params(**fixed)
        combos = list(itertools.product(*axes.values())) or [()]
        variants = [base.with_params(**dict(zip(axes, combo, strict=True))) for combo in combos]
        for variant in variants:
            variant.validate()
        return base, axes, variants, _grid_columns(axes, combos)

    def check_lookahead(self, market, *, cuts: int = 5, **grid: Any) -> list[str]:
        """Look-ahead in the hooks: their values at bars before a cut must not change when the
        bars after it are removed. Returns what changed (empty when nothing did); see
        :mod:`backtest.lookahead`.

        >>> MyStrategy().check_lookahead(market)          # doctest: +SKIP
        []
        """
        from backtest.lookahead import find_lookahead

        return find_lookahead(self, market, cuts=cuts, **grid)

    def run(self, market, *, progress: bool = False, per_bar=None, n_jobs=None, adl_price=None,
            adl_min_rank: float = 0.0, **grid: Any):
        """Run the strategy on a :class:`Market` or :class:`Markets`; any parameter given a list
        becomes a grid axis.

        All combinations (the cartesian product) — times the instruments, for Markets — are
        simulated as columns of ONE :func:`backtest.simulate` call; the result's columns carry a
        MultiIndex of the grid's parameter values (and the symbol). On Markets the hooks run
        once per instrument with that instrument's Market (a strategy written for one market
        runs unchanged on ten), or once on the whole set when the class sets
        ``cross_sectional = True`` (its hooks then return DataFrames with one column per
        symbol: rank, rotate, pair); with ``portfolio = True`` (the default) each parameter
        combination is one account holding every instrument, else each instrument trades alone.
        Scalars in ``grid`` override a parameter. ``progress=True`` shows a progress bar over the
        hook calls when stderr is a terminal; ``per_bar``, ``n_jobs``, ``adl_price`` and
        ``adl_min_rank`` (auto-deleveraging, see ``simulate``) go to ``simulate``.

        >>> result = MyStrategy().run(market, fast=[10, 20, 30], slow=[50, 100])  # doctest: +SKIP
        >>> result.equity.columns.names                                            # doctest: +SKIP
        FrozenList(['fast', 'slow'])
        """
        base, axes, variants, columns = self.expand(**grid)
        return _simulate_variants(market, base, axes, variants, columns, progress=progress,
                                  per_bar=per_bar, n_jobs=n_jobs, adl_price=adl_price,
                                  adl_min_rank=adl_min_rank)

    def sweep(self, market, *, chunk_size: int | None = None, n_jobs: int | None = None,
              client=None, progress: bool = False, **grid: Any):
        """Statistics of a large grid in bounded memory: the combinations run in chunks
        (statistics only, on ``n_jobs`` threads, or as tasks on a ``dask.distributed`` Client),
        one progress bar over the chunks. Returns a :class:`backtest.sweep.SweepResult`; the
        numbers equal ``run(...).stats()`` on the same grid. See :mod:`backtest.sweep`.

        >>> table = MyStrategy().sweep(market, fast=range(5, 200), slow=range(50, 500, 5)).stats()  # doctest: +SKIP
        """
        from backtest.sweep import sweep

        return sweep(self, market, chunk_size=chunk_size, n_jobs=n_jobs, client=client,
                     progress=progress, **grid)


# Class attributes of the base class (settings, ``portfolio``, hooks) are never parameters.
_BASE_CLASS_ATTRIBUTES = frozenset(vars(Strategy))


def _simulate_variants(market, base, axes, variants, columns, *, progress=False, per_bar=None,
                       n_jobs=None, adl_price=None, adl_min_rank=0.0):
    """Stack the variants' hook outputs (× instruments) and simulate them in ONE call."""
    from backtest.engine.simulate import simulate
    from backtest.markets import Markets

    extra = {}
    _warn_short_history(variants, len(market.index))
    if isinstance(market, Markets):
        kwargs, columns, extra = _stack_markets(base, variants, market, axes, columns, progress)
        repeat = len(market.symbols)
    else:
        kwargs = _stack_hooks(variants, market, columns, progress)
        repeat = 1
    settings = base.get_settings()
    per_account = extra.get("group_by") is not None
    for name in PER_COLUMN_SETTINGS:
        values = [getattr(v, name) for v in variants]
        if name not in axes:
            kwargs[name] = values[0]
        elif name == "init_cash" and per_account:
            kwargs[name] = np.asarray(values, dtype=float)
        else:
            kwargs[name] = np.repeat(np.asarray(values, dtype=float), repeat)[None, :]
    if "leverage" in axes:
        kwargs["leverage"] = kwargs["leverage"][0]
    if "init_cash" in axes and not per_account:
        kwargs["init_cash"] = kwargs["init_cash"][0]
    for name in CALL_SETTINGS:
        kwargs[name] = settings[name]
    result = simulate(market, columns=columns, per_bar=per_bar, n_jobs=n_jobs, adl_price=adl_price,
                      adl_min_rank=adl_min_rank, **extra, **kwargs)
    result.strategy_name = type(base).__name__
    result.params = {**base.get_params(), **{k: v for k, v in axes.items()}}
    return result


def _stack_markets(base, variants, markets, axes, columns, progress):
    """Hook outputs for every (combination, instrument) as (bars × columns) arguments on the
    markets' clock: per instrument by default, on the whole set for cross-sectional strategies.
    Before an instrument's first bar its signals are False and its sizes 0. Returns (kwargs,
    columns (params…, symbol), extra simulate arguments)."""
    symbols = markets.symbols
    index = markets.index
    n_bars = len(index)
    owner = type(base).__name__
    outputs: list[dict] = []  # one per column: combinations major, instruments minor
    cache = HookCache()
    for variant in _progress(variants, progress):
        variant._instruments = len(symbols) if base.portfolio else 1  # legs sharing an account
        outputs += _cross_sectional_outputs(variant, markets, cache) if base.cross_sectional else \
            [_instrument_outputs(variant, markets, symbol, cache) for symbol in symbols]
    size_types = {out.pop("size_type", "equity") for out in outputs}
    if len(size_types) > 1:
        raise ValueError(f"{owner}: size_type must be the same for every column, got {sorted(size_types)}")
    kwargs: dict[str, Any] = {"size_type": size_types.pop()}
    for key in sorted(set().union(*outputs)):
        is_signal = key in SIGNAL_KEYS
        fill = False if is_signal else (0.0 if key == "size" else np.nan)
        stacked = np.empty((n_bars, len(outputs)), dtype=bool if is_signal else float, order="F")
        for j, out in enumerate(outputs):
            stacked[:, j] = fill if out.get(key) is None else out[key]
        kwargs[key] = stacked
    if not axes:
        columns = pd.Index(symbols, name="symbol")
        group_by = True if base.portfolio else None
    else:
        combos = [c if isinstance(c, tuple) else (c,) for c in columns]
        columns = pd.MultiIndex.from_tuples([(*combo, symbol) for combo in combos for symbol in symbols],
                                            names=[*columns.names, "symbol"])
        group_by = list(axes) if base.portfolio else None
    instruments = [label[-1] if isinstance(label, tuple) else label for label in columns]
    return kwargs, columns, {"instruments": instruments, "group_by": group_by}


def _on_clock(value, market, key, where, index) -> np.ndarray | None:
    """A hook's per-bar value for one instrument, placed on the markets' clock."""
    column = _as_column(value, market, key, where)
    if column is None:
        return None
    is_signal = key in SIGNAL_KEYS
    full = np.full(len(index), False if is_signal else (0.0 if key == "size" else np.nan),
                   dtype=bool if is_signal else float)
    full[index.get_indexer(market.index)] = column
    return full


def _instrument_outputs(variant, markets, symbol, cache=None) -> dict:
    market = markets[symbol]
    out, wheres = _hook_outputs(variant, market, cache, scope=symbol)
    return {k: (v if k == "size_type" else _on_clock(v, market, k, f"{wheres[k]} on {symbol}", markets.index))
            for k, v in out.items()}


def _cross_sectional_outputs(variant, markets, cache=None) -> list[dict]:
    """Hooks called once with the Markets; DataFrames with a column per symbol (or one value
    for all) become one output per instrument."""
    out, wheres = _hook_outputs(variant, markets, cache)
    per_symbol = []
    for symbol in markets.symbols:
        mine = {}
        for key, value in out.items():
            if key == "size_type" or value is None or np.isscalar(value):
                mine[key] = value
                continue
            if isinstance(value, pd.DataFrame):
                if symbol not in value.columns:
                    raise ValueError(f"{wheres[key]}: {key!r} has no column {symbol!r}; a "
                                     "cross-sectional hook returns one column per symbol")
                value = value[symbol]
            mine[key] = _as_column(value, markets, key, wheres[key])
        per_symbol.append(mine)
    return per_symbol


class HookCache:
    """Hook outputs shared by the grid's combinations that a hook cannot tell apart.

    A hook is a function of the market and of the values it reads from its strategy. The first
    call of a hook records those reads (``Strategy.__getattribute__``); a later combination with
    the same values for every one of them gets the same output without the call: the signals of
    a sweep over ``leverage`` are computed once, those of ``fast × slow × leverage`` once per
    ``(fast, slow)``. One cache serves one market (or one instrument, ``scope``) in one stacking
    call, so it holds no more than the stacked arguments it feeds.
    """

    def __init__(self) -> None:
        # (hook, scope) -> {names read: {their values: output}}
        self._tables: dict[tuple, dict[tuple, dict]] = {}

    def call(self, hook, variant, market, where: str, scope=None) -> dict:
        state = vars(variant)
        tables = self._tables.setdefault((hook.__name__, scope), {})
        for names, table in tables.items():
            values = _hashable(tuple(state.get(name, _MISSING) for name in names))
            if values is not None and values in table:
                return dict(table[values])
        state["_reads"] = reads = {}
        try:
            produced = _call_hook(hook, market, where)
        finally:
            del state["_reads"]
        names = tuple(sorted(reads))
        values = _hashable(tuple(reads[name] for name in names))  # as read, not as left
        if values is not None:
            tables.setdefault(names, {})[values] = produced
        return dict(produced)


_MISSING = object()


def _hashable(values: tuple) -> tuple | None:
    """``values`` as a dictionary key; None when one cannot be hashed."""
    try:
        hash(values)
    except TypeError:
        return None
    return values


def _hook_outputs(variant, market, cache: HookCache | None = None, scope=None) -> tuple[dict, dict]:
    """Every hook's mapping merged, and which hook gave each key (for messages)."""
    owner = type(variant).__name__
    out, wheres = {}, {}
    for hook, keys in ((variant.signals, SIGNAL_KEYS), (variant.stops, STOP_KEYS),
                       (variant.size, SIZE_KEYS)):
        where = f"{owner}.{hook.__name__}()"
        produced = _call_hook(hook, market, where) if cache is None else \
            cache.call(hook, variant, market, where, scope)
        unknown = set(produced) - set(keys)
        if unknown:
            raise ValueError(f"{where} returned unknown keys {sorted(map(str, unknown))}; "
                             f"expected some of {list(keys)}")
        out.update(produced)
        wheres.update(dict.fromkeys(produced, where))
    if not any(out.get(k) is not None for k in ("entries", "short_entries")):
        raise ValueError(f"{owner}.signals() must return 'entries' or 'short_entries'")
    return out, wheres


def _grid_columns(axes: dict[str, list], combos: list[tuple]) -> pd.Index:
    if not axes:
        return pd.RangeIndex(1)
    if len(axes) == 1:
        (name,) = axes
        return pd.Index([combo[0] for combo in combos], name=name)
    return pd.MultiIndex.from_tuples(combos, names=list(axes))


def _as_column(value: Any, market, what: str, where: str) -> Any:
    """A hook's per-bar value as a 1-D array (or scalar): matched to the bars by index, checked
    for length, and for signals, boolean (the checks ``simulate`` makes, see ``coerce``)."""
    if value is None or (np.isscalar(value) and what not in SIGNAL_KEYS):
        return value
    n_bars = len(market)
    if isinstance(value, pd.DataFrame):
        raise ValueError(f"{where}: {what} must be one value per bar (a Series), got a DataFrame")
    value = by_index(value, market.index, f"{where}: {what}")
    array = np.asarray(value.to_numpy() if isinstance(value, pd.Series) else value)
    if array.ndim == 0 and what in SIGNAL_KEYS:
        array = np.full(n_bars, array.item(), dtype=array.dtype)
    if array.ndim != 1 or len(array) != n_bars:
        raise ValueError(f"{where}: {what} must be a scalar or one value per bar "
                         f"({n_bars}), got shape {array.shape}")
    if what in SIGNAL_KEYS:
        return signal(array, f"{where}: {what!r}", market.index)
    if array.dtype.kind not in "iufb":
        raise ValueError(f"{where}: {what} must be numeric, got {array.dtype} values "
                         f"such as {array[0]!r}")
    return array


class HookError(ValueError):
    """A strategy hook raised: names the hook; the original exception is its ``__cause__``."""


def _call_hook(hook, market, where: str) -> dict:
    """Call a hook; it must return a mapping (or None). Its own errors are named, not hidden."""
    try:
        produced = hook(market)
    except (ValueError, HookError):
        raise
    except Exception as exc:
        raise HookError(f"{where} raised {type(exc).__name__}: {exc}") from exc
    if produced is None:
        return {}
    if not isinstance(produced, Mapping):
        raise ValueError(f"{where} returned a {type(produced).__name__}; it must return a dict "
                         "such as {'entries': ..., 'exits': ...}")
    return dict(produced)


def _progress(items: list, enabled: bool):
    """tqdm over ``items`` (vectorbt installs it) on a terminal; the items as they are otherwise."""
    import sys

    if not enabled or len(items) < 2 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc="grid", unit="combination", leave=False)


def _stack_hooks(variants: list[Strategy], market, columns: pd.Index, progress: bool = False
                 ) -> dict[str, Any]:
    """Call every variant's hooks and stack their outputs into (bars × columns) arguments."""
    n_bars = len(market)
    per_variant: list[dict[str, Any]] = []
    cache = HookCache()
    for variant in _progress(variants, progress):
        out, wheres = _hook_outputs(variant, market, cache)
        per_variant.append({k: (v if k == "size_type" else _as_column(v, market, k, wheres[k]))
                            for k, v in out.items()})

    kwargs: dict[str, Any] = {}
    size_types = {pv.get("size_type", "equity") for pv in per_variant}
    if len(size_types) > 1:
        raise ValueError(f"size_type must be the same for every grid column, got {sorted(size_types)}")
    kwargs["size_type"] = size_types.pop()
    for key in SIGNAL_KEYS + STOP_KEYS + ("size",):
        values = [pv.get(key) for pv in per_variant]
        if all(v is None for v in values):
            continue
        is_signal = key in SIGNAL_KEYS
        fill = False if is_signal else (1.0 if key == "size" else np.nan)
        dtype = bool if is_signal else float
        if all(v is None or np.isscalar(v) for v in values) and len({repr(v) for v in values}) == 1:
            kwargs[key] = values[0]
            continue
        stacked = np.empty((n_bars, len(values)), dtype=dtype, order="F")
        for j, value in enumerate(values):
            stacked[:, j] = fill if value is None else value
        kwargs[key] = pd.DataFrame(stacked, index=market.index, columns=columns)
    return kwargs

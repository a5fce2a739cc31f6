"""``Result``: what a simulation produced, as pandas objects, and its statistics.

Per-bar series are per *account*: one per column, or one per group when columns share a cross
wallet (``group_by``); ``position`` and ``margin`` are always per column. Records come out of the
kernel as numpy structured arrays and are turned into DataFrames once, on first access.

Return and drawdown statistics come from vectorbt (``returns.vbt.returns`` and
``equity.vbt.drawdowns``), annualized on 365 days; margin, funding and liquidation figures come
from the engine's records.
"""

from __future__ import annotations

from functools import cached_property
from typing import NamedTuple

import numpy as np
import pandas as pd

from backtest.engine.records import REASON_NAMES, STATUS_NAMES, AccountStat, ColumnStat

DAYS_PER_YEAR = "365 days"


def _register_vectorbt() -> None:
    """Import vectorbt (seconds, so only when statistics are asked for): it registers ``.vbt``."""
    import vectorbt  # noqa: F401
SIDE_NAMES = {1: "long", -1: "short"}
STAT_KEYS = (
    "start", "end", "init_cash", "final_equity", "total_return", "cagr", "volatility", "sharpe",
    "sortino", "calmar", "max_drawdown", "max_drawdown_duration", "win_rate", "profit_factor",
    "expectancy", "trades", "time_in_market", "liquidations", "funding_paid", "fees_paid",
    "insurance_shortfall", "max_effective_leverage", "worst_margin_ratio", "rejected_orders",
)


# Why a metric can be undefined (NaN) in a run; gates on undefined metrics trip by default.
UNDEFINED_REASONS = {
    "sharpe": "the equity never moved (no return variance)",
    "sortino": "no bar lost money (no downside deviation)",
    "calmar": "there was no drawdown",
    "volatility": "too few bars",
    "cagr": "the account was wiped out or the period is empty",
    "win_rate": "no closed trades",
    "profit_factor": "no closed trades",
    "expectancy": "no closed trades",
    "max_effective_leverage": "per-bar values were not kept (per_bar=False)",
    "worst_margin_ratio": "per-bar values were not kept (per_bar=False)",
}


def undefined_metrics(stats: pd.Series) -> dict[str, str]:
    """The metrics of one account's ``stats()`` that are undefined (NaN), with the reason.

    >>> undefined_metrics(pd.Series({"sharpe": float("nan"), "trades": 0, "win_rate": 0.5}))
    {'sharpe': 'the equity never moved (no return variance)'}
    """
    out = {}
    for key, value in stats.items():
        if isinstance(value, float | np.floating) and np.isnan(value):
            out[str(key)] = UNDEFINED_REASONS.get(str(key), "not defined for this run")
    return out


class Records(NamedTuple):
    orders: np.ndarray
    trades: np.ndarray
    liquidations: np.ndarray
    funding: np.ndarray


class Result:
    """Outcome of :func:`backtest.simulate` (or ``Strategy.run``).

    Statistics come from accumulators the kernel keeps per account (exact, O(accounts) memory);
    records and per-bar series are kept or recomputed on first access (the kernel is
    deterministic, so a replay gives the same numbers).

    >>> result.equity.iloc[-1]          # doctest: +SKIP
    >>> result.trades.head()            # doctest: +SKIP
    >>> result.stats()["liquidations"]  # doctest: +SKIP
    """

    strategy_name: str | None = None
    params: dict | None = None

    def __init__(self, markets, market, columns, groups, col_instrument, col_order, group_start,
                 group_len, init_cash, run, kernel, settings, grouped=False):
        self.markets = markets
        self.market = market if market is not None else (
            markets[markets.symbols[0]] if len(markets.symbols) == 1 else None)
        self.index = markets.index
        self.freq = markets.freq
        self.columns = columns
        self.grouped = grouped
        self.accounts = groups if grouped else columns
        self.settings = settings
        self.init_cash = pd.Series(np.asarray(init_cash, dtype=float), index=self.accounts)
        self.col_instrument = np.asarray(col_instrument)
        self.symbols = list(markets.symbols)
        account_of_column = np.empty(len(columns), dtype=np.int64)
        for g, (start, length) in enumerate(zip(group_start, group_len, strict=True)):
            account_of_column[col_order[start:start + length]] = g
        self._account_of_column = account_of_column
        self._run = run
        self._kernel = kernel

    # ----- kept or replayed ---------------------------------------------------------------------

    def _full(self, need: str = "all"):
        """Records and per-bar series, replaying the run for what was not kept: ``need`` is
        "equity" (equity only), "records" or "all"."""
        run = self._run
        have_equity = run.per_bar is not None
        have_all = have_equity and "position" in run.per_bar
        missing = (need == "equity" and not have_equity) or (need == "records" and run.records is None) \
            or (need == "all" and (not have_all or run.records is None))
        if missing:
            if self._kernel is None:
                raise ValueError("per-bar values and records were not kept (a stats-only sweep): "
                                 "run again with per_bar=True for these columns")
            from backtest.engine.nb import PER_BAR_ALL, PER_BAR_EQUITY, PER_BAR_NONE

            level = {"records": PER_BAR_NONE, "equity": PER_BAR_EQUITY}.get(need, PER_BAR_ALL)
            replay = self._kernel.run(keep_records=run.records is None, per_bar=level)
            if level > (PER_BAR_ALL if have_all else PER_BAR_EQUITY if have_equity else PER_BAR_NONE):
                run.per_bar = replay.per_bar
            run.records = run.records if run.records is not None else replay.records
        return run

    def _wrap(self, values: np.ndarray, labels: pd.Index):
        if len(labels) == 1:
            return pd.Series(values[0], index=self.index, name=labels[0])
        return pd.DataFrame(values.T, index=self.index, columns=labels)

    @property
    def equity(self):
        """Equity at each bar's close (wallet + unrealized PnL), quote currency."""
        return self._wrap(self._full("equity").per_bar["equity"], self.accounts)

    @property
    def wallet(self):
        return self._wrap(self._full().per_bar["wallet"], self.accounts)

    @property
    def position(self):
        """Signed position in coins (long > 0), per column."""
        return self._wrap(self._full().per_bar["position"], self.columns)

    @property
    def margin(self):
        """Initial (isolated: current) margin of each column's position."""
        return self._wrap(self._full().per_bar["margin"], self.columns)

    @property
    def effective_leverage(self):
        """|net notional| / equity at the close."""
        return self._wrap(self._full().per_bar["effective_leverage"], self.accounts)

    @property
    def margin_ratio(self):
        """Maintenance margin / margin balance (Binance's margin ratio: 1.0 is liquidation)."""
        return self._wrap(self._full().per_bar["margin_ratio"], self.accounts)

    @property
    def returns(self):
        """Simple returns per bar; the first is relative to the initial cash."""
        equity = pd.DataFrame(self._full("equity").per_bar["equity"].T, index=self.index,
                              columns=self.accounts)
        previous = equity.shift(1)
        previous.iloc[0] = self.init_cash.to_numpy()
        returns = (equity / previous - 1.0).where(previous > 0, 0.0)
        return returns.iloc[:, 0] if len(self.accounts) == 1 else returns

    def columns_of(self, account) -> list:
        """The column labels of one account (just that column when ungrouped)."""
        position = self.accounts.get_loc(account)
        return list(np.asarray(self.columns)[self._account_of_column == position])

    def liquidation_triggers(self, account=None) -> pd.DataFrame:
        """Per liquidation event of an account: its time and the leg that lost the most then
        (the instrument that dragged the account down), with the account's total loss."""
        liqs = self.liquidations
        if account is not None:
            liqs = liqs[liqs["col"].isin(self.columns_of(account))]
        if liqs.empty:
            return pd.DataFrame(columns=["time", "col", "symbol", "loss", "legs"])
        rows = []
        for time, event in liqs.groupby("time", sort=True):
            worst = event.loc[event["loss"].idxmax()]
            rows.append({"time": time, "col": worst["col"],
                         "symbol": worst["symbol"] if "symbol" in event else (self.symbols[0]),
                         "loss": event["loss"].sum(), "legs": len(event)})
        return pd.DataFrame(rows)

    # ----- records ----------------------------------------------------------------------------

    def records(self) -> Records:
        """The raw record arrays (numpy structured arrays, dtypes in ``engine/records.py``, in the
        order the kernel wrote them: account by account, bar by bar), ``col`` being the column's
        position. The DataFrames below are built from these."""
        return Records(*self._full("records").records)

    def per_bar(self, name: str) -> np.ndarray:
        """A per-bar array as (bars × accounts) or (bars × columns) numpy, without pandas."""
        return self._full("equity" if name == "equity" else "all").per_bar[name].T

    def _times(self, bars) -> pd.DatetimeIndex:
        return self.index[np.asarray(bars, dtype=np.int64)]

    def _labels(self, cols) -> np.ndarray:
        return np.asarray(self.columns)[np.asarray(cols, dtype=np.int64)]

    def _symbol_column(self, cols) -> dict:
        if len(self.symbols) == 1:
            return {}
        return {"symbol": np.asarray(self.symbols)[self.col_instrument[np.asarray(cols, dtype=np.int64)]]}

    @cached_property
    def orders(self) -> pd.DataFrame:
        r = self._full("records").records[0]
        return pd.DataFrame({
            "col": self._labels(r["col"]), **self._symbol_column(r["col"]),
            "time": self._times(r["bar"]),
            "side": pd.Series(r["side"]).map(SIDE_NAMES).to_numpy(), "qty": r["qty"],
            "price": r["price"], "fee": r["fee"], "status": STATUS_NAMES[r["status"]],
            "reason": REASON_NAMES[r["reason"]],
        })

    @cached_property
    def trades(self) -> pd.DataFrame:
        """Closed trades (and any still open at the end, ``exit_reason == "end"``).

        ``pnl`` is the trader's, net of fees and funding; ``return`` is pnl over the trade's
        initial margin; ``insurance_shortfall`` the loss beyond the collateral (the isolated
        margin, or the wallet of a cross account with nothing else open) that the exchange's
        insurance fund bore, not the trader: ``pnl`` = price PnL + shortfall − fees − funding.
        """
        r = self._full("records").records[1]
        frame = pd.DataFrame({
            "col": self._labels(r["col"]), **self._symbol_column(r["col"]),
            "entry_time": self._times(r["entry_bar"]), "exit_time": self._times(r["exit_bar"]),
            "side": pd.Series(r["side"]).map(SIDE_NAMES).to_numpy(), "qty": r["qty"],
            "entry_price": r["entry_price"], "exit_price": r["exit_price"], "pnl": r["pnl"],
            "return": np.divide(r["pnl"], r["margin"], out=np.full(len(r), np.nan), where=r["margin"] > 0),
            "fees": r["fees"], "funding": r["funding"], "insurance_shortfall": r["shortfall"],
            "exit_reason": REASON_NAMES[r["exit_reason"]],
        })
        return frame.sort_values(["entry_time", "exit_time"], kind="stable").reset_index(drop=True)

    @cached_property
    def liquidations(self) -> pd.DataFrame:
        """Liquidations: price, the trader's loss, the clearance fee, the insurance shortfall."""
        r = self._full("records").records[2]
        return pd.DataFrame({
            "col": self._labels(r["col"]), **self._symbol_column(r["col"]),
            "time": self._times(r["bar"]),
            "side": pd.Series(r["side"]).map(SIDE_NAMES).to_numpy(), "qty": r["qty"],
            "price": r["price"], "loss": r["loss"], "fee": r["fee"],
            "insurance_shortfall": r["shortfall"],
        })

    @cached_property
    def funding(self) -> pd.DataFrame:
        """Funding payments; ``payment`` > 0 means the account paid."""
        r = self._full("records").records[3]
        return pd.DataFrame({
            "col": self._labels(r["col"]), **self._symbol_column(r["col"]),
            "time": self._times(r["bar"]), "qty": r["qty"],
            "price": r["price"], "rate": r["rate"], "payment": r["payment"],
        })

    # ----- statistics -------------------------------------------------------------------------

    def stats(self, column=None, *, frame: bool = False):
        """Summary metrics: a Series for one account (or ``column``), else one row per account
        (``frame=True``: always a DataFrame).

        Keys (fractions, not percents): ``STAT_KEYS``. Returns are per bar (the first against the
        initial cash), annualized on 365 days, with vectorbt's definitions (Sharpe and
        volatility with ddof 1, Sortino on the root-mean-square of losing bars, CAGR from the
        compounded returns, drawdowns as vectorbt records them on the equity); ``max_drawdown``
        is positive; ``worst_margin_ratio`` the highest maintenance/margin-balance ratio seen (1 =
        liquidated). Ratios with a zero denominator are NaN (see ``undefined_metrics``).
        """
        a = self._run.account_stats
        S = AccountStat
        bars = a[:, S.bars]
        ann = pd.Timedelta(DAYS_PER_YEAR) / self.freq if self.freq > pd.Timedelta(0) else np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            centred = a[:, S.sum_returns] / bars  # mean - shift
            mean = a[:, S.shift] + centred
            std = np.where(bars >= 2, np.sqrt(np.maximum(a[:, S.sum_squares] - bars * centred ** 2, 0.0)
                                              / (bars - 1.0)), np.nan)
            downside = np.sqrt(a[:, S.downside_sq] / bars) * np.sqrt(ann)
            cagr = a[:, S.growth] ** (ann / bars) - 1.0
            max_dd = a[:, S.max_drawdown]
            trades = a[:, S.trades]
            table = pd.DataFrame({
                "start": self.index[0], "end": self.index[-1],
                "init_cash": self.init_cash.to_numpy(),
                "final_equity": a[:, S.last_equity],
                "total_return": a[:, S.last_equity] / self.init_cash.to_numpy() - 1.0,
                "cagr": cagr,
                "volatility": std * np.sqrt(ann),
                "sharpe": np.where(std > 0, mean / std * np.sqrt(ann), np.nan),
                "sortino": np.where((bars >= 2) & (downside > 0), mean * ann / downside, np.nan),
                "calmar": np.where(max_dd < 0, cagr / np.abs(max_dd), np.nan),
                "max_drawdown": 0.0 - np.nan_to_num(max_dd, nan=0.0),  # no "-0.00%"
                "max_drawdown_duration": pd.to_timedelta(a[:, S.max_drawdown_bars] * self.freq.value, unit="ns"),
                "win_rate": np.where(trades > 0, a[:, S.wins] / trades, np.nan),
                "profit_factor": np.where(trades > 0, np.where(a[:, S.gross_loss] > 0,
                                                               a[:, S.gross_profit] / a[:, S.gross_loss],
                                                               np.inf), np.nan),
                "expectancy": np.where(trades > 0, a[:, S.pnl] / trades, np.nan),
                "trades": trades.astype(int),
                # share of bars holding a position (not size_type="exposure", a position size)
                "time_in_market": a[:, S.exposed_bars] / len(self.index),
                "liquidations": a[:, S.liquidations].astype(int),
                "funding_paid": a[:, S.funding],
                "fees_paid": a[:, S.fees],
                "insurance_shortfall": a[:, S.shortfall],
                "max_effective_leverage": a[:, S.max_leverage],
                "worst_margin_ratio": a[:, S.worst_margin_ratio],
                "rejected_orders": a[:, S.rejected].astype(int),
            }, index=self.accounts)[list(STAT_KEYS)]
        if column is not None:
            return table.loc[column]
        return table.iloc[0] if len(self.accounts) == 1 and not frame else table

    def instruments(self) -> pd.DataFrame:
        """Per account and instrument: net PnL (positions still open marked at the end), fees,
        funding, liquidations, closed trades and time in market (share of bars holding it)."""
        c = self._run.column_stats
        frame = pd.DataFrame({
            "account": np.asarray(self.accounts)[self._account_of_column],
            "symbol": np.asarray(self.symbols)[self.col_instrument],
            "pnl": c[:, ColumnStat.pnl], "fees": c[:, ColumnStat.fees],
            "funding": c[:, ColumnStat.funding],
            "liquidations": c[:, ColumnStat.liquidations].astype(int),
            "trades": c[:, ColumnStat.trades].astype(int),
            "exposed_bars": c[:, ColumnStat.exposed_bars],
        })
        table = frame.groupby(["account", "symbol"], sort=False).agg(
            pnl=("pnl", "sum"), fees=("fees", "sum"), funding=("funding", "sum"),
            liquidations=("liquidations", "sum"), trades=("trades", "sum"),
            time_in_market=("exposed_bars", "max"))
        table["time_in_market"] /= len(self.index)
        return table

    def drawdowns(self, top: int = 5, column=None) -> pd.DataFrame:
        """The ``top`` deepest drawdowns: peak, valley, recovery (NaT if not yet), depth, duration."""
        _register_vectorbt()
        equity = self.equity if column is None else self.equity[column]
        if isinstance(equity, pd.DataFrame):
            raise ValueError("several accounts: pass column=<label> to drawdowns()")
        records = equity.vbt(freq=self.freq).drawdowns.records_readable
        if records.empty:
            return pd.DataFrame(columns=["peak", "valley", "recovery", "depth", "duration"])
        recovered = records["Status"].eq("Recovered")
        table = pd.DataFrame({
            "peak": records["Peak Timestamp"], "valley": records["Valley Timestamp"],
            "recovery": records["End Timestamp"].where(recovered),
            "depth": 1.0 - records["Valley Value"] / records["Peak Value"],
        })
        table["duration"] = table["recovery"].fillna(self.index[-1]) - table["peak"]
        return table.sort_values("depth", ascending=False).head(top).reset_index(drop=True)

    def report(self, path, *, column=None, metric: str = "sharpe", title: str | None = None,
               grid_stats=None, force: bool = False, interactive: bool = True):
        """Write the self-contained HTML report (see :mod:`backtest.report`); returns its path.

        An existing file is not replaced unless ``force=True`` (as the command line refuses
        without ``--force``): a report someone kept is not lost to a rerun.
        ``interactive=False`` writes the static version (PNG charts, no JavaScript).
        """
        from pathlib import Path

        from backtest.report import write_report

        if Path(path).exists() and not force:
            raise FileExistsError(f"{path} exists; pass force=True to replace it")
        return write_report(self, path, column=column, metric=metric, title=title,
                            grid_stats=grid_stats, interactive=interactive)

    def _repr_html_(self) -> str:
        """Key metrics as a small HTML table (Jupyter shows it for a result): one column for a
        single account, the first rows of ``stats()`` for a grid (see
        :func:`backtest.report.metrics_html`).

        >>> result                     # doctest: +SKIP   (in a notebook: the table)
        """
        from backtest.report import metrics_html

        return metrics_html(self)

    def plot(self, column=None):
        """Interactive plotly figure (``plotly.graph_objects.Figure``): equity with buy-and-hold
        of the first instrument above, drawdown (%) below, on one shared time axis; long runs
        are downsampled for display (each bucket's low and high kept). ``column`` picks the
        account of a grid (default: the first).

        >>> result.plot()                       # doctest: +SKIP   (shown inline in a notebook)
        >>> result.plot(column=(12, 48)).write_html("equity.html")   # doctest: +SKIP
        """
        from backtest.report import equity_plot

        return equity_plot(self, column)

    def __repr__(self) -> str:
        name = self.strategy_name or "simulate"
        trades = int(self._run.account_stats[:, AccountStat.trades].sum())
        liqs = int(self._run.column_stats[:, ColumnStat.liquidations].sum())
        return (f"Result({name}: {len(self.columns)} column(s), {len(self.index)} bars, "
                f"{trades} closed trades, {liqs} liquidated legs)")

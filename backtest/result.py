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

import numpy as np
import pandas as pd

from backtest.engine.records import REASON_NAMES, STATUS_NAMES, Reason

DAYS_PER_YEAR = "365 days"


def _register_vectorbt() -> None:
    """Import vectorbt (seconds, so only when statistics are asked for): it registers ``.vbt``."""
    import vectorbt  # noqa: F401
SIDE_NAMES = {1: "long", -1: "short"}
STAT_KEYS = (
    "start", "end", "init_cash", "final_equity", "total_return", "cagr", "volatility", "sharpe",
    "sortino", "calmar", "max_drawdown", "max_drawdown_duration", "win_rate", "profit_factor",
    "expectancy", "trades", "exposure", "liquidations", "funding_paid", "fees_paid",
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


class Result:
    """Outcome of :func:`backtest.simulate` (or ``Strategy.run``).

    >>> result.equity.iloc[-1]          # doctest: +SKIP
    >>> result.trades.head()            # doctest: +SKIP
    >>> result.stats()["liquidations"]  # doctest: +SKIP
    """

    strategy_name: str | None = None
    params: dict | None = None

    def __init__(self, market, columns, groups, col_order, group_start, group_len, init_cash, out,
                 settings, grouped=False):
        self.market = market
        self.columns = columns
        self.grouped = grouped
        self.accounts = groups if grouped else columns
        self.settings = settings
        self.init_cash = pd.Series(np.asarray(init_cash, dtype=float), index=self.accounts)
        account_of_column = np.empty(len(columns), dtype=np.int64)
        for g, (start, length) in enumerate(zip(group_start, group_len, strict=True)):
            account_of_column[col_order[start:start + length]] = g
        self._account_of_column = account_of_column
        (self._equity, self._wallet, self._position, self._margin, self._effective_leverage,
         self._margin_ratio, self._orders, self._trades, self._liquidations, self._funding) = out

    # ----- per bar ----------------------------------------------------------------------------

    def _wrap(self, values: np.ndarray, labels: pd.Index):
        if values.shape[0] == 0:
            raise ValueError("per-bar values were not kept: run simulate(..., per_bar=True)")
        if len(labels) == 1:
            return pd.Series(values[:, 0], index=self.market.index, name=labels[0])
        return pd.DataFrame(values, index=self.market.index, columns=labels)

    @property
    def equity(self):
        """Equity at each bar's close (wallet + unrealized PnL), quote currency."""
        return self._wrap(self._equity, self.accounts)

    @property
    def wallet(self):
        return self._wrap(self._wallet, self.accounts)

    @property
    def position(self):
        """Signed position in coins (long > 0)."""
        return self._wrap(self._position, self.columns)

    @property
    def margin(self):
        """Initial (isolated: current) margin of each column's position."""
        return self._wrap(self._margin, self.columns)

    @property
    def effective_leverage(self):
        """|notional| / equity at the close."""
        return self._wrap(self._effective_leverage, self.accounts)

    @property
    def margin_ratio(self):
        """Maintenance margin / margin balance (Binance's margin ratio: 1.0 is liquidation)."""
        return self._wrap(self._margin_ratio, self.accounts)

    @property
    def returns(self):
        """Simple returns per bar; the first is relative to the initial cash."""
        equity = pd.DataFrame(self._equity, index=self.market.index, columns=self.accounts)
        previous = equity.shift(1)
        previous.iloc[0] = self.init_cash.to_numpy()
        returns = (equity / previous - 1.0).where(previous > 0, 0.0)
        return returns.iloc[:, 0] if len(self.accounts) == 1 else returns

    # ----- records ----------------------------------------------------------------------------

    def _times(self, bars) -> pd.DatetimeIndex:
        return self.market.index[np.asarray(bars, dtype=np.int64)]

    def _labels(self, cols) -> np.ndarray:
        return np.asarray(self.columns)[np.asarray(cols, dtype=np.int64)]

    @cached_property
    def orders(self) -> pd.DataFrame:
        r = self._orders
        return pd.DataFrame({
            "col": self._labels(r["col"]), "time": self._times(r["bar"]),
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
        r = self._trades
        frame = pd.DataFrame({
            "col": self._labels(r["col"]), "entry_time": self._times(r["entry_bar"]),
            "exit_time": self._times(r["exit_bar"]),
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
        r = self._liquidations
        return pd.DataFrame({
            "col": self._labels(r["col"]), "time": self._times(r["bar"]),
            "side": pd.Series(r["side"]).map(SIDE_NAMES).to_numpy(), "qty": r["qty"],
            "price": r["price"], "loss": r["loss"], "fee": r["fee"],
            "insurance_shortfall": r["shortfall"],
        })

    @cached_property
    def funding(self) -> pd.DataFrame:
        """Funding payments; ``payment`` > 0 means the account paid."""
        r = self._funding
        return pd.DataFrame({
            "col": self._labels(r["col"]), "time": self._times(r["bar"]), "qty": r["qty"],
            "price": r["price"], "rate": r["rate"], "payment": r["payment"],
        })

    # ----- statistics -------------------------------------------------------------------------

    def _per_account(self, records: np.ndarray, values: np.ndarray, how: str) -> pd.Series:
        accounts = self._account_of_column[records["col"]] if len(records) else np.empty(0, np.int64)
        frame = pd.DataFrame({"account": accounts, "value": values})
        grouped = frame.groupby("account")["value"].agg(how)
        return grouped.reindex(range(len(self.accounts)), fill_value=0.0).set_axis(self.accounts)

    def _trade_stats(self) -> pd.DataFrame:
        r = self._trades[self._trades["exit_reason"] != Reason.end]
        accounts = self._account_of_column[r["col"]]
        pnl = pd.Series(r["pnl"]).groupby(accounts)
        wins = pd.Series(np.where(r["pnl"] > 0, r["pnl"], 0.0)).groupby(accounts).sum()
        losses = pd.Series(np.where(r["pnl"] < 0, -r["pnl"], 0.0)).groupby(accounts).sum()
        table = pd.DataFrame({
            "trades": pnl.count(), "win_rate": pd.Series(r["pnl"] > 0).groupby(accounts).mean(),
            "profit_factor": wins / losses.replace(0.0, np.nan), "expectancy": pnl.mean(),
        }).reindex(range(len(self.accounts)))
        table["trades"] = table["trades"].fillna(0).astype(int)
        table.loc[(losses.reindex(table.index) == 0) & (table["trades"] > 0), "profit_factor"] = np.inf
        return table.set_axis(self.accounts)

    def _exposure(self) -> pd.Series:
        if self._position.shape[0]:
            held = pd.DataFrame(self._position != 0.0).T.groupby(self._account_of_column).any().T
            return pd.Series(held.mean(axis=0).to_numpy(), index=self.accounts)
        r = self._trades
        bars = (r["exit_bar"] - r["entry_bar"] + 1).astype(float)
        return self._per_account(r, bars, "sum") / len(self.market)

    def stats(self, column=None):
        """Summary metrics: a Series for one account (or ``column``), else one row per account.

        Keys (fractions, not percents): ``STAT_KEYS``. ``max_drawdown`` is positive;
        ``worst_margin_ratio`` the highest maintenance/margin-balance ratio seen (1 = liquidated).
        """

        _register_vectorbt()
        equity = pd.DataFrame(self._equity, index=self.market.index, columns=self.accounts)
        returns = self.returns
        returns = returns.to_frame() if isinstance(returns, pd.Series) else returns
        accessor = returns.vbt.returns(freq=self.market.freq, year_freq=DAYS_PER_YEAR)
        drawdowns = equity.vbt(freq=self.market.freq).drawdowns
        trade_stats = self._trade_stats()
        liq = self._liquidations
        table = pd.DataFrame({
            "start": self.market.index[0], "end": self.market.index[-1],
            "init_cash": self.init_cash,
            "final_equity": equity.iloc[-1],
            "total_return": equity.iloc[-1] / self.init_cash - 1.0,
            "cagr": accessor.annualized(),
            "volatility": accessor.annualized_volatility(),
            "sharpe": accessor.sharpe_ratio(),
            "sortino": accessor.sortino_ratio(),
            "calmar": accessor.calmar_ratio(),
            "max_drawdown": -drawdowns.max_drawdown().fillna(0.0),
            "max_drawdown_duration": pd.to_timedelta(drawdowns.max_duration()).fillna(pd.Timedelta(0)),
            "win_rate": trade_stats["win_rate"],
            "profit_factor": trade_stats["profit_factor"],
            "expectancy": trade_stats["expectancy"],
            "trades": trade_stats["trades"],
            "exposure": self._exposure(),
            "liquidations": self._per_account(liq, np.ones(len(liq)), "sum").astype(int),
            "funding_paid": self._per_account(self._funding, self._funding["payment"], "sum"),
            "fees_paid": self._per_account(self._orders, self._orders["fee"], "sum"),
            "insurance_shortfall": self._per_account(self._trades, self._trades["shortfall"], "sum"),
            "max_effective_leverage": self._max_or_nan(self._effective_leverage),
            "worst_margin_ratio": self._max_or_nan(self._margin_ratio),
            "rejected_orders": self._per_account(
                self._orders, (self._orders["status"] == 1).astype(float), "sum").astype(int),
        }, index=self.accounts)[list(STAT_KEYS)]
        self._undefine_ratios(table, returns)
        if column is not None:
            return table.loc[column]
        return table.iloc[0] if len(self.accounts) == 1 else table

    @staticmethod
    def _undefine_ratios(table: pd.DataFrame, returns: pd.DataFrame) -> None:
        """Ratios with a zero denominator are undefined (NaN), never ±∞: Sharpe without return
        variance, Sortino without a losing bar, Calmar without a drawdown."""
        flat = (returns.std().fillna(0.0) == 0.0).to_numpy()
        no_loss = ~(returns < 0).any().to_numpy()
        table.loc[flat, "sharpe"] = np.nan
        table.loc[flat | no_loss, "sortino"] = np.nan
        table.loc[(table["max_drawdown"] == 0).to_numpy(), "calmar"] = np.nan
        for key in ("sharpe", "sortino", "calmar"):
            table.loc[np.isinf(table[key].astype(float)).to_numpy(), key] = np.nan

    def _max_or_nan(self, values: np.ndarray) -> pd.Series:
        if values.shape[0] == 0:
            return pd.Series(np.nan, index=self.accounts)
        return pd.Series(values.max(axis=0), index=self.accounts)

    def drawdowns(self, top: int = 5, column=None) -> pd.DataFrame:
        """The ``top`` deepest drawdowns: peak, valley, recovery (NaT if not yet), depth, duration."""
        _register_vectorbt()
        equity = self.equity if column is None else self.equity[column]
        if isinstance(equity, pd.DataFrame):
            raise ValueError("several accounts: pass column=<label> to drawdowns()")
        records = equity.vbt(freq=self.market.freq).drawdowns.records_readable
        if records.empty:
            return pd.DataFrame(columns=["peak", "valley", "recovery", "depth", "duration"])
        recovered = records["Status"].eq("Recovered")
        table = pd.DataFrame({
            "peak": records["Peak Timestamp"], "valley": records["Valley Timestamp"],
            "recovery": records["End Timestamp"].where(recovered),
            "depth": 1.0 - records["Valley Value"] / records["Peak Value"],
        })
        table["duration"] = table["recovery"].fillna(self.market.index[-1]) - table["peak"]
        return table.sort_values("depth", ascending=False).head(top).reset_index(drop=True)

    def report(self, path, *, column=None, metric: str = "sharpe", title: str | None = None):
        """Write the self-contained HTML report (see :mod:`backtest.report`); returns its path."""
        from backtest.report import write_report

        return write_report(self, path, column=column, metric=metric, title=title)

    def __repr__(self) -> str:
        name = self.strategy_name or "simulate"
        return (f"Result({name}: {len(self.columns)} column(s), {len(self.market)} bars, "
                f"{len(self._trades)} trades, {len(self._liquidations)} liquidations)")

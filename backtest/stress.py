"""Stress scenarios: inject a crash into a market and see which leverage survives it.

A :class:`Shock` rewrites the bars from ``at`` for ``bars`` bars: the price falls by ``drop``
(log-linearly; a negative ``drop`` is a squeeze up), the bottom bar's low wicks ``wick``
further, and then the price recovers ``recovery`` of the fall by the window's end (1: all of
it, 0: none). Within the window the mark price's extreme can diverge a further
``mark_divergence`` from the traded one, the order-book depth is multiplied by
``depth_factor`` (0.1: the October 2025 books), and funding events pay ``funding_rate``
(one is added at the window's last bar when it holds none). Bars before the window are
untouched; bars after it too when the price recovers fully, else they are scaled by the level
the shock left (their own moves intact).

**Auto-deleveraging.** With ``adl_at`` (a fraction of the window, 0 to 1) the exchange, its
insurance fund emptied by the cascade, auto-deleverages at the close of the window's bar
``at + floor(adl_at × bars)`` (the last bar for 1): profitable positions on the opposite side
are closed at the bankruptcy price of the liquidated ones, taken as the shock's extreme reached
by then — the lowest low of the window up to that bar in a crash (the bottom, wick included,
once ``adl_at`` reaches the bottom bar), the highest high in a squeeze, the bar's close for
``drop=0`` — without fee (``simulate(adl_price=...)``; :func:`adl_series` gives the series,
:func:`inject_markets` shocks instruments of a :class:`Markets` and gives the ADL prices of
those whose shock has ``adl_at``).

>>> import backtest
>>> from strategies import TrendFollowing
>>> market = backtest.load(backtest.sample_path("BTCUSDT"))                           # doctest: +SKIP
>>> crash = Shock(at="2025-06-01", drop=0.3, bars=6, wick=0.05, depth_factor=0.1)      # doctest: +SKIP
>>> stress_test(TrendFollowing(), market, {"crash": crash}, leverage=[1, 3, 10])       # doctest: +SKIP

A portfolio: the alt leg crashes, the exchange auto-deleverages the ETH shorts mid-crash.

>>> markets = backtest.Markets([backtest.load(backtest.sample_path(s)) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")])  # doctest: +SKIP
>>> shocked, adl = inject_markets(markets, {"SOLUSDT": Shock(at="2025-06-01", drop=0.5, bars=6),
...                                          "ETHUSDT": Shock(at="2025-06-01", drop=0.15, bars=6, adl_at=0.5)})  # doctest: +SKIP
>>> backtest.simulate(shocked, ..., adl_price=adl)                                    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.market import Market
from backtest.markets import Markets
from backtest.montecarlo import leverage_list, original_tiers

PRICES = ["open", "high", "low", "close"]


@dataclass(frozen=True)
class Shock:
    """A crash (or squeeze) injected from bar time ``at`` for ``bars`` bars; see the module."""

    at: str | pd.Timestamp
    drop: float
    bars: int = 1
    wick: float = 0.0
    recovery: float = 0.0
    mark_divergence: float = 0.0
    depth_factor: float = 1.0
    funding_rate: float | None = None
    adl_at: float | None = None  # fraction of the window where ADL hits (None: no ADL)

    def check(self) -> None:
        if not -1.0 < self.drop < 1.0:
            raise ValueError(f"Shock: drop is a fraction in (-1, 1), got {self.drop}")
        if int(self.bars) != self.bars or self.bars < 1:
            raise ValueError(f"Shock: bars must be a whole number, at least 1, got {self.bars}")
        for name in ("wick", "mark_divergence"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"Shock: {name} is a fraction in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.recovery <= 1.0:
            raise ValueError(f"Shock: recovery is a fraction in [0, 1], got {self.recovery}")
        if not self.depth_factor > 0.0:
            raise ValueError(f"Shock: depth_factor must be positive, got {self.depth_factor}")
        if self.adl_at is not None and not 0.0 <= self.adl_at <= 1.0:
            raise ValueError(f"Shock: adl_at is a fraction of the window in [0, 1] (None for no "
                             f"ADL), got {self.adl_at}")


def _factors(shock: Shock) -> tuple[np.ndarray, float]:
    """Price multipliers at the window's bar boundaries (``bars + 1`` of them) and after it."""
    n = int(shock.bars)
    bottom = np.log1p(-shock.drop)
    end = np.log1p(-shock.drop * (1.0 - shock.recovery))
    down = n if shock.recovery == 0.0 else max(1, n // 2)
    path = np.r_[np.linspace(0.0, bottom, down + 1), np.linspace(bottom, end, n - down + 1)[1:]]
    return np.exp(path), float(np.exp(end))


def _shock_candles(candles: np.ndarray, start: int, factors: np.ndarray, after: float,
                   wick: float, bottom_bar: int, falling: bool) -> np.ndarray:
    """OHLC rows (bars × 4) with the window scaled bar by bar and the bars after by ``after``."""
    out = candles.copy()
    for k in range(len(factors) - 1):
        row = start + k
        if row >= len(out):
            break
        f_open, f_close = factors[k], factors[k + 1]
        o, h, lo, c = candles[row]
        new_open, new_close = o * f_open, c * f_close
        new_high = max(h * max(f_open, f_close), new_open, new_close)
        new_low = min(lo * min(f_open, f_close), new_open, new_close)
        if k == bottom_bar:  # the wick: past the bottom, against the move
            if falling:
                new_low *= 1.0 - wick
            else:
                new_high *= 1.0 + wick
        out[row] = (new_open, new_high, new_low, new_close)
    end = start + len(factors) - 1
    if end < len(out):
        out[end:] = candles[end:] * after
    return out


def _start(market: Market, shock: Shock) -> int:
    """The first bar of the shock's window."""
    at = pd.Timestamp(shock.at)
    start = int(market.index.searchsorted(at.tz_localize("UTC") if at.tzinfo is None else at))
    if start >= len(market):
        raise ValueError(f"Shock: at {shock.at} is after the market's last bar {market.index[-1]}")
    return start


def inject(market: Market, shock: Shock, symbol: str | None = None) -> Market:
    """``market`` with ``shock`` injected (see the module docstring)."""
    shock.check()
    start = _start(market, shock)
    factors, after = _factors(shock)
    falling = shock.drop > 0
    bottom_bar = int(np.argmin(factors[1:]) if falling else np.argmax(factors[1:]))
    ohlcv = market.ohlcv.copy()
    ohlcv[PRICES] = _shock_candles(ohlcv[PRICES].to_numpy(float), start, factors, after,
                                   shock.wick, bottom_bar, falling)
    window = np.zeros(len(market), dtype=bool)
    window[start: start + int(shock.bars)] = True
    mark = None
    if market.mark is not None:
        values = _shock_candles(market.mark[PRICES].to_numpy(float), start, factors, after,
                                shock.wick, bottom_bar, falling)
        extreme = 2 if falling else 1  # the mark's low in a crash, its high in a squeeze
        values[window, extreme] *= (1.0 - shock.mark_divergence) if falling else (1.0 + shock.mark_divergence)
        mark = pd.DataFrame(values, index=market.index, columns=PRICES)
    depth = None
    if market.depth is not None:
        depth = market.depth.copy()
        depth[window] *= shock.depth_factor
    funding = None if market.funding is None else market.funding.copy()
    if shock.funding_rate is not None:
        if funding is None:
            funding = pd.Series(np.nan, index=market.index)
        events = window & funding.notna().to_numpy()
        if not events.any():
            events[min(start + int(shock.bars), len(market)) - 1] = True
        funding[events] = shock.funding_rate
    return Market(ohlcv, mark=mark, funding=funding, depth=depth,
                  symbol=symbol or market.symbol, validate=False)


def adl_series(shocked: Market, shock: Shock) -> pd.Series:
    """The ADL price on the bars of ``shocked`` (``inject``'s result for ``shock``): NaN but at
    the ADL bar (see the module docstring); all NaN when ``shock.adl_at`` is None."""
    shock.check()
    out = pd.Series(np.nan, index=shocked.index, name="adl_price")
    if shock.adl_at is None:
        return out
    start = _start(shocked, shock)
    stop = min(start + int(shock.bars), len(shocked))  # the window may run past the last bar
    bar = min(start + int(np.floor(shock.adl_at * int(shock.bars))), stop - 1)
    if shock.drop > 0.0:
        price = float(shocked.low.iloc[start: bar + 1].min())
    elif shock.drop < 0.0:
        price = float(shocked.high.iloc[start: bar + 1].max())
    else:
        price = float(shocked.close.iloc[bar])
    out.iloc[bar] = price
    return out


def inject_markets(markets: Markets, shocks: dict[str, Shock]) -> tuple[Markets, pd.DataFrame | None]:
    """``markets`` with each shock injected into its instrument (the others untouched), and the
    ADL prices (``simulate``'s ``adl_price``: one column per instrument whose shock has
    ``adl_at``, on the markets' clock; None when none has). A shock with ``drop=0`` puts ADL on
    an instrument that does not move itself (at its close)."""
    unknown = set(shocks) - set(markets.symbols)
    if unknown:
        raise ValueError(f"inject_markets: no instrument {sorted(unknown)[0]!r} in the markets "
                         f"({', '.join(markets.symbols)})")
    shocked = {symbol: inject(markets[symbol], shocks[symbol], symbol) if symbol in shocks
               else markets[symbol] for symbol in markets.symbols}
    out = Markets(shocked)
    return out, _adl_prices(shocked, shocks, out.index)


def _adl_prices(shocked: dict[str, Market], shocks: dict[str, Shock], index) -> pd.DataFrame | None:
    """``simulate``'s ``adl_price`` for instruments (by name) injected with ``shocks``: one
    column per shock with ``adl_at``, on ``index``; None when no shock has one."""
    adl = {name: adl_series(shocked[name], shock).reindex(index)
           for name, shock in shocks.items() if shock.adl_at is not None}
    return pd.DataFrame(adl, index=index) if adl else None


def _outcome(scenario: str, leverage: float, stats: pd.Series, first_liquidation) -> dict:
    """One (scenario, leverage) row of a stress table."""
    return {"scenario": scenario, "leverage": float(leverage),
            "survives": int(stats["liquidations"]) == 0, "liquidated_at": first_liquidation,
            "loss": 1.0 - float(stats["final_equity"]) / float(stats["init_cash"]),
            "max_drawdown": float(stats["max_drawdown"])}


def stress_test(strategy, market: Market, shocks: dict[str, Shock], *, leverage,
                n_jobs: int | None = None, adl_min_rank: float = 0.0) -> pd.DataFrame:
    """Run ``strategy`` at every ``leverage`` on ``market`` with each shock injected (and
    untouched, as "none"); one row per (scenario, leverage): ``survives`` (never
    liquidated), ``liquidated_at`` (the first liquidation's time), ``loss`` (fraction of the
    initial cash lost at the end), ``max_drawdown``. Shocks with ``adl_at`` auto-deleverage
    their scenario (see the module docstring); ``adl_min_rank`` spares positions ranked below
    it."""
    leverages = leverage_list(leverage)
    scenarios = {"none": market, **{name: inject(market, shock, name) for name, shock in shocks.items()}}
    base = strategy.trading_alone()
    own_tiers = original_tiers(base, market)
    tiers = base.tiers if own_tiers is None else dict.fromkeys(scenarios, own_tiers)
    markets = Markets(scenarios)
    result = base.run(markets, adl_price=_adl_prices(scenarios, shocks, markets.index),
                      adl_min_rank=adl_min_rank, leverage=leverages, n_jobs=n_jobs, tiers=tiers)
    liquidations = result.liquidations
    # the first liquidation of each column (records name their column by its label)
    first = {} if not len(liquidations) else liquidations.groupby("col")["time"].min().to_dict()
    rows = [_outcome(name, lev, row, first.get((lev, name), pd.NaT))
            for (lev, name), row in result.stats().iterrows()]
    return pd.DataFrame(rows).set_index(["scenario", "leverage"]).sort_index()


def stress_portfolio(strategy, markets: Markets, scenarios: dict[str, dict[str, Shock]], *,
                     leverage, n_jobs: int | None = None, adl_min_rank: float = 0.0) -> pd.DataFrame:
    """:func:`stress_test` for an account holding several instruments: each scenario shocks
    some of them (``{"alt crash": {"SOLUSDT": Shock(...)}}``; ``adl_at`` on a shock
    auto-deleverages that instrument), and the strategy runs at every ``leverage`` as one
    account over all of them (``portfolio = True``: cross margin shares the collateral). One
    row per (scenario, leverage): ``survives``, ``liquidated_at``, ``trigger`` (the leg that
    lost the most at the first liquidation: the altcoin that killed the account), ``loss``,
    ``max_drawdown``; "none" is the markets untouched.

    >>> alt = {"SOLUSDT": Shock(at="2025-06-01", drop=0.5, bars=6, wick=0.1)}        # doctest: +SKIP
    >>> stress_portfolio(TrendFollowing(margin_mode="cross"), markets, {"alt crash": alt},
    ...                  leverage=[2, 5])                                             # doctest: +SKIP
    """
    leverages = leverage_list(leverage)
    if not type(strategy).portfolio:
        raise ValueError(f"{type(strategy).__name__} trades each instrument alone "
                         "(portfolio = False): use stress_test per instrument")
    rows = []
    for name, shocks in {"none": {}, **scenarios}.items():
        shocked, adl = inject_markets(markets, shocks) if shocks else (markets, None)
        result = strategy.run(shocked, leverage=leverages, adl_price=adl, adl_min_rank=adl_min_rank,
                              n_jobs=n_jobs)
        stats = result.stats(frame=True)
        for account, row in stats.iterrows():
            triggers = result.liquidation_triggers(account)
            first = triggers.iloc[0] if len(triggers) else None
            rows.append({**_outcome(name, account, row, pd.NaT if first is None else first["time"]),
                         "trigger": None if first is None else first["symbol"]})
    columns = ["survives", "liquidated_at", "trigger", "loss", "max_drawdown"]
    return pd.DataFrame(rows).set_index(["scenario", "leverage"])[columns]

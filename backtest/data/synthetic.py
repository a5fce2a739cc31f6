"""Deterministic generator of the SYNTHETIC sample data in ``data/`` (not real prices).

Two correlated perpetual-futures-like markets, BTCUSDT and ETHUSDT, hourly from 2024-01-01 00:00
to 2025-12-31 23:00 UTC, with mark prices, 8-hourly funding and 2%-order-book depth, so the
product runs on a fresh clone with no network. All parameters are the constants and dataclasses
below; ``data/README.md`` states the model in plain text. Per hour t and symbol:

- **Innovations** ``z_t``: bivariate Student-t (``T_DF`` degrees of freedom, unit variance,
  correlation ``CORRELATION``); one shared chi-square draw per hour makes both tails fat at the
  same time, as BTC and ETH crash together.
- **Volatility** ``σ²_t = ω + α ε²_{t-1} + β σ²_{t-1}`` (GARCH(1,1) on ``ε = σ z``), ω set by
  the symbol's long-run annual volatility.
- **Index** (the spot index the exchange references): log return
  ``r_t = β_trend μ_t + σ_t z_t`` with a shared slow trend ``μ_t = φ μ_{t-1} + η_t``. Inside
  the hour the log index follows a Brownian bridge through ``SUBSTEPS_PER_HOUR`` points from the
  hour's open to its close, so highs and lows come from a path, not from a formula.
- **Premium** (perp − index basis, a fraction): ``p_t = k · EMA(r)_{t-1} + AR(1) noise``; longs
  pay up in rallies, the perp trades at a discount after crashes. The traded (last) price path is
  ``index · (1 + p_t + u)`` with microstructure noise ``u`` per path point, so a bar's open is
  the previous close plus a tick or two of noise.
- **Mark price**: ``index · (1 + p_t)``: the traded path without its noise (Binance's mark is the
  index plus a smoothed basis), so mark candles sit within a few basis points of the traded ones
  and wick a little less.
- **Funding** at 00:00, 08:00 and 16:00 UTC, Binance's shape: with ``P`` the mean premium of the
  8 hours that just ended, ``rate = P + clamp(0.01% − P, ±0.05%)``, capped at ±0.75%; NaN on
  other bars. The first funding time (no interval behind it) pays the interest part only.
- **Volume** (base asset) = ``volume_usd_per_hour / close`` × (σ_t/σ̄) × (1 + |r_t|/σ_t)/2 ×
  time-of-day and weekend factors × lognormal noise: it rises with volatility and big moves.
- **2% depth** (USD, both sides, aggregated across the large venues) =
  ``depth_usd × (σ̄/σ_t)^0.7`` × lognormal noise: books thin when volatility rises.

**The cascade day**, modelled on 10 October 2025: on ``CASCADE.day`` from ``CASCADE.hour``:00
UTC the index falls along a V for ``CASCADE.fall_minutes`` and then recovers a share of the fall
over the following hours; liquidations push the traded price a further ``cascade_overshoot``
below the index at the bottom (the mark, built on the index, wicks less). The depth of the fall
is solved so that the traded low is at least ``cascade_drop_from_high`` below the day's high and
the mark low at least ``cascade_mark_drop_from_open`` below the pre-crash mark (BTC 9% and 5%,
ETH 20% and 20%: far enough to liquidate any 5x ETH long, whatever the seed); after the bottom
the index path is reflected above the low, so the crash low is the day's low. Volatility
spikes and decays, volume jumps ``CASCADE.volume_mult`` times the previous day's median, the 2%
depth falls to ``CASCADE.depth_floor`` of normal and recovers over a day, and funding turns
negative as the premium follows the fall.

Randomness comes only from ``np.random.default_rng(seed)`` (one child stream shared by both
symbols, one per symbol); the same seed and date range give identical values on any machine.
Regenerate the committed files (refuses to overwrite files that differ unless ``--force``)::

    python -m backtest.data.synthetic [--out data/] [--seed 14] [--force]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 14  # picked among seeds 1-20 for a path like 2024-25: a bull run, then drawdowns
START, END = "2024-01-01 00:00", "2025-12-31 23:00"
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
HOURS_PER_YEAR = 365 * 24
SUBSTEPS_PER_HOUR = 30  # 2-minute path points inside each bar
# Inside the bar prices overshoot and revert, so the range is wider than a random walk with the
# bar-to-bar volatility gives: real hourly perp bars have mean ln(high/low) ≈ 1.6 × std of hourly
# returns (measured on Binance XRPUSDT perpetual 1h bars); a bridge at 1.25 σ gives ≈ 1.5.
INTRABAR_VOL_RATIO = 1.25
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "mark_open", "mark_high",
           "mark_low", "mark_close", "funding_rate", "depth_2pct_usd")
PARQUET_COMPRESSION = "zstd"

# innovations and volatility
T_DF = 4.0
CORRELATION = 0.8
GARCH_ALPHA, GARCH_BETA = 0.06, 0.92
TREND_PERSISTENCE = 0.997  # per hour: trends last weeks
TREND_SHOCK_STD = 7.0e-6  # per hour, log return

# premium (perp − index basis) and funding
PREMIUM_EMA_HOURS = 72
PREMIUM_PER_MOMENTUM = 0.6  # premium per unit of EMA hourly log return
PREMIUM_NOISE_STD = 1.0e-4  # stationary std of the AR(1) part
PREMIUM_NOISE_PERSISTENCE = 0.95
FUNDING_HOURS = (0, 8, 16)
FUNDING_INTERVAL_HOURS = 8
FUNDING_INTEREST = 0.0001  # 0.03% a day, Binance's interest rate per 8 h
FUNDING_PREMIUM_CLAMP = 0.0005
FUNDING_CAP = 0.0075
FUNDING_DECIMALS = 8

# volume and depth
VOLUME_DAILY_AMPLITUDE = 0.25  # ± around the mean over the day
VOLUME_PEAK_HOUR_UTC = 15  # US and European hours overlap
WEEKEND_VOLUME_FACTOR = 0.7
VOLUME_NOISE = 0.3  # lognormal sigma
VOLUME_DECIMALS = 3
DEPTH_VOL_ELASTICITY = 0.7
DEPTH_NOISE = 0.15  # lognormal sigma
DEPTH_ROUND_USD = 1_000


@dataclass(frozen=True)
class SymbolModel:
    """One market's parameters (prices in USDT, rates as fractions)."""

    start_price: float
    annual_vol: float  # long-run GARCH volatility, annualized over 365 days
    trend_beta: float  # exposure to the shared trend
    tick: float  # price tick; all prices are rounded to it
    volume_usd_per_hour: float  # scale of the traded notional per hour (median hour: ~60%)
    depth_usd: float  # typical 2% depth, both sides, aggregated across large venues
    micro_noise: float  # std of the traded price around index·(1 + premium), per path point
    cascade_drop_from_high: float  # traded low at least this far under the cascade day's high
    cascade_mark_drop_from_open: float  # mark low at least this far under the pre-crash mark
    cascade_overshoot: float  # extra fall of the traded price under the index at the bottom
    cascade_depth_floor: float = 0.1  # 2% depth falls to this share of normal in the cascade
    correlation_to_btc: float | None = None  # None: drawn with the BTC/ETH pair


@dataclass(frozen=True)
class CascadeModel:
    """The liquidation cascade of 10 October 2025 (times UTC)."""

    day: str = "2025-10-10"
    hour: int = 21
    fall_minutes: int = 20  # open of the crash bar to the bottom
    recovery_share: float = 0.55  # share of the fall regained ...
    recovery_minutes: float = 90.0  # ... with this time constant
    overshoot_minutes: float = 10.0  # time constant of the traded price's return to the index
    vol_spike: float = 3.0  # volatility after the crash, × the long-run level (added as ...
    vol_decay_hours: float = 8.0  # ... variance, decaying with this time constant)
    volume_mult: float = 8.0  # volume multiple of the previous day's median, decaying ...
    volume_decay_hours: float = 4.0
    volume_noise: float = 0.1
    depth_floor: float = 0.1  # 2% depth falls to a tenth, recovering ...
    depth_recovery_hours: float = 6.0  # ... with this time constant (95% back within a day)
    window_hours: int = 24  # hours from the crash whose volume follows the cascade profile
    low_hold_margin: float = 0.005  # later index prices that day stay this far (log) above the low


SYMBOLS = {
    "BTCUSDT": SymbolModel(
        start_price=42_000.0, annual_vol=0.55, trend_beta=1.0, tick=0.1,
        volume_usd_per_hour=600e6, depth_usd=400e6, micro_noise=1.0e-4,
        cascade_drop_from_high=0.09, cascade_mark_drop_from_open=0.05, cascade_overshoot=0.008),
    "ETHUSDT": SymbolModel(
        start_price=2_300.0, annual_vol=0.70, trend_beta=1.25, tick=0.01,
        volume_usd_per_hour=350e6, depth_usd=200e6, micro_noise=1.5e-4,
        cascade_drop_from_high=0.20, cascade_mark_drop_from_open=0.20, cascade_overshoot=0.006),
    # an altcoin: more volatile, thinner, and its cascade far deeper than BTC's (−30% to −40%
    # intraday on 10 October 2025), its book thinning most
    "SOLUSDT": SymbolModel(
        start_price=100.0, annual_vol=0.95, trend_beta=1.6, tick=0.001,
        volume_usd_per_hour=120e6, depth_usd=40e6, micro_noise=2.5e-4,
        cascade_drop_from_high=0.36, cascade_mark_drop_from_open=0.30, cascade_overshoot=0.015,
        cascade_depth_floor=0.04, correlation_to_btc=0.75),
}
PAIR = ("BTCUSDT", "ETHUSDT")  # drawn together; the others follow BTC with their own correlation
CASCADE = CascadeModel()
CASCADE_DAY = CASCADE.day


# ----- building blocks ------------------------------------------------------------------------------


def _correlated_t(rng: np.random.Generator, n: int) -> np.ndarray:
    """(2, n) unit-variance Student-t innovations with correlation ``CORRELATION``."""
    normal = rng.standard_normal((2, n))
    normal[1] = CORRELATION * normal[0] + np.sqrt(1.0 - CORRELATION**2) * normal[1]
    mixing = np.sqrt(rng.chisquare(T_DF, n) / T_DF)
    return normal / mixing * np.sqrt((T_DF - 2.0) / T_DF)


def _ar1(shocks: np.ndarray, persistence: float) -> np.ndarray:
    out = np.empty_like(shocks)
    level = 0.0
    for t, shock in enumerate(shocks):
        level = persistence * level + shock
        out[t] = level
    return out


def _garch_sigma(z: np.ndarray, annual_vol: float) -> np.ndarray:
    """Hourly conditional volatility σ_t of a GARCH(1,1) fed by ``ε = σ z``."""
    long_run = annual_vol**2 / HOURS_PER_YEAR
    omega = long_run * (1.0 - GARCH_ALPHA - GARCH_BETA)
    sigma = np.empty_like(z)
    variance = long_run
    for t, shock in enumerate(z):
        sigma[t] = np.sqrt(variance)
        variance = omega + GARCH_ALPHA * variance * shock * shock + GARCH_BETA * variance
    return sigma


def _brownian_bridge(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, K+1) unit-variance-per-hour Brownian bridges, zero at both ends of each hour."""
    steps = rng.standard_normal((n, SUBSTEPS_PER_HOUR)) / np.sqrt(SUBSTEPS_PER_HOUR)
    walk = np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1)
    return walk - _fractions() * walk[:, -1:]


def _fractions() -> np.ndarray:
    return np.arange(SUBSTEPS_PER_HOUR + 1) / SUBSTEPS_PER_HOUR


def _v_shape(hours_since: np.ndarray, fall_hours: float, recovery_share: float,
             recovery_hours: float) -> np.ndarray:
    """A unit fall, linear over ``fall_hours``, then an exponential recovery of a share of it."""
    falling = np.clip(hours_since, 0.0, fall_hours) / fall_hours
    after = np.maximum(hours_since - fall_hours, 0.0)
    recovered = recovery_share * (1.0 - np.exp(-after / recovery_hours))
    return np.where(hours_since <= fall_hours, -falling, recovered - 1.0)


def _premium(hourly_returns: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Premium of each hour from the momentum up to the previous hour (no look-ahead)."""
    weight = 2.0 / (PREMIUM_EMA_HOURS + 1.0)
    momentum = _ar1(weight * hourly_returns, 1.0 - weight)  # an EMA that starts from 0
    lagged = np.r_[0.0, momentum[:-1]]
    return PREMIUM_PER_MOMENTUM * lagged + noise


def _funding(index: pd.DatetimeIndex, premium: np.ndarray) -> np.ndarray:
    """Rate paid at each funding time from the interval that just ended; NaN elsewhere."""
    interval = pd.Series(premium).rolling(FUNDING_INTERVAL_HOURS).mean().shift(1)
    mean_premium = interval.fillna(0.0).to_numpy()
    rate = mean_premium + np.clip(FUNDING_INTEREST - mean_premium,
                                  -FUNDING_PREMIUM_CLAMP, FUNDING_PREMIUM_CLAMP)
    rate = np.round(np.clip(rate, -FUNDING_CAP, FUNDING_CAP), FUNDING_DECIMALS)
    return np.where(np.isin(index.hour, FUNDING_HOURS), rate, np.nan)


def _candles(log_path: np.ndarray, tick: float) -> tuple[np.ndarray, ...]:
    """Open, high, low, close rounded to the tick (rounding is monotone, so OHLC stay ordered)."""
    decimals = max(0, int(round(-np.log10(tick))))

    def on_tick(log_price):
        return np.round(np.round(np.exp(log_price) / tick) * tick, decimals)

    return (on_tick(log_path[:, 0]), on_tick(log_path.max(axis=1)),
            on_tick(log_path.min(axis=1)), on_tick(log_path[:, -1]))


def _cascade_bar(index: pd.DatetimeIndex) -> int | None:
    """Position of the crash bar, when the range holds the whole cascade day."""
    day = pd.Timestamp(CASCADE.day, tz="UTC")
    crash = day + pd.Timedelta(hours=CASCADE.hour)
    if index[0] > day or index[-1] < day + pd.Timedelta(days=1):
        return None
    return int(index.get_loc(crash))


# ----- one symbol ------------------------------------------------------------------------------------


def _cascade_depth(model: SymbolModel, crash: int, index_path, premium, micro) -> float:
    """Log depth of the index's V so the traded and mark lows reach the model's targets."""
    bottom = _bottom_step()
    day_start = crash - CASCADE.hour
    traded_before = (index_path[day_start:crash + 1] + premium[day_start:crash + 1, None]
                     + micro[day_start:crash + 1])
    day_high = max(traded_before[:-1].max(), traded_before[-1, 0])  # up to the crash bar's open
    mark_open = index_path[crash, 0] + premium[crash]
    # the traded bottom = index bottom + premium + noise − overshoot; the mark bottom lacks the last two
    index_for_traded = (day_high + np.log1p(-model.cascade_drop_from_high) - premium[crash]
                        - micro[crash, bottom] + model.cascade_overshoot)
    index_for_mark = mark_open + np.log1p(-model.cascade_mark_drop_from_open) - premium[crash]
    return max(0.0, float(index_path[crash, bottom] - min(index_for_traded, index_for_mark)))


def _cascade_multipliers(n: int, crash: int | None, depth_floor: float = CascadeModel.depth_floor,
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per hour: extra variance (× the long-run variance), depth and volume multiples.

    Without a cascade: no extra variance, depth × 1, volume NaN (= not overridden).
    """
    variance, depth, volume = np.zeros(n), np.ones(n), np.full(n, np.nan)
    if crash is not None:
        hours = np.arange(n - crash, dtype=float)
        # the crash bar's own move is the scripted V; the random part spikes from the next bar,
        # added as variance so it does not compound with a GARCH volatility that is already high
        variance[crash + 1:] = (CASCADE.vol_spike**2 - 1.0) * np.exp(
            -hours[:-1] / CASCADE.vol_decay_hours)
        depth[crash:] = 1.0 - (1.0 - depth_floor) * np.exp(
            -hours / CASCADE.depth_recovery_hours)
        window = hours[:CASCADE.window_hours]
        volume[crash:crash + len(window)] = 1.0 + (CASCADE.volume_mult - 1.0) * np.exp(
            -window / CASCADE.volume_decay_hours)
    return variance, depth, volume


def _add_cascade(model: SymbolModel, crash: int, index_path: np.ndarray,
                 premium_noise: np.ndarray, micro: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The index path with the cascade's V, and the traded price's overshoot below the index."""
    since = (np.arange(len(index_path)) - crash)[:, None] + _fractions()[None, :]
    fall_hours = CASCADE.fall_minutes / 60
    premium = _premium(index_path[:, -1] - index_path[:, 0], premium_noise)
    depth_of_fall = _cascade_depth(model, crash, index_path, premium, micro)
    index_path = index_path + depth_of_fall * _v_shape(
        since, fall_hours, CASCADE.recovery_share, CASCADE.recovery_minutes / 60)
    # the low holds for the rest of the day: the path after the bottom is reflected above it, and
    # what follows the day keeps its increments from the reflected end (no jump at midnight)
    floor = index_path[crash, _bottom_step()] + CASCADE.low_hold_margin
    day_left = 24 - CASCADE.hour
    rest_of_day = (since > fall_hours) & (since <= day_left)
    end_of_day = index_path[crash + day_left, 0]
    below = rest_of_day & (index_path < floor)
    index_path[below] = 2 * floor - index_path[below]
    index_path[since > day_left] += index_path[crash + day_left, 0] - end_of_day
    overshoot = model.cascade_overshoot * _v_shape(since, fall_hours, 1.0,
                                                   CASCADE.overshoot_minutes / 60)
    return index_path, overshoot


def _bottom_step() -> int:
    """Path point of the crash bar at which the V bottoms."""
    return round(CASCADE.fall_minutes / 60 * SUBSTEPS_PER_HOUR)


def _simulate(index: pd.DatetimeIndex, model: SymbolModel, z: np.ndarray, trend: np.ndarray,
              rng: np.random.Generator, crash: int | None) -> pd.DataFrame:
    n = len(index)
    # all draws up front, the cascade's included, so the cascade changes no other bar's draws
    bridge = _brownian_bridge(rng, n)
    micro = model.micro_noise * rng.standard_normal((n, SUBSTEPS_PER_HOUR + 1))
    premium_noise = _ar1(PREMIUM_NOISE_STD * np.sqrt(1.0 - PREMIUM_NOISE_PERSISTENCE**2)
                         * rng.standard_normal(n), PREMIUM_NOISE_PERSISTENCE)
    volume_noise, depth_noise, cascade_noise = rng.standard_normal((3, n))

    sigma = _garch_sigma(z, model.annual_vol)
    long_run = model.annual_vol / np.sqrt(HOURS_PER_YEAR)
    extra_variance, depth_mult, volume_mult = _cascade_multipliers(n, crash, model.cascade_depth_floor)
    sigma_now = np.sqrt(sigma**2 + extra_variance * long_run**2)
    returns = model.trend_beta * trend + sigma_now * z
    log_open = np.log(model.start_price) + np.r_[0.0, np.cumsum(returns)[:-1]]
    wander = INTRABAR_VOL_RATIO * sigma_now[:, None] * bridge
    index_path = log_open[:, None] + _fractions() * returns[:, None] + wander

    overshoot = np.zeros_like(index_path)
    if crash is not None:
        index_path, overshoot = _add_cascade(model, crash, index_path, premium_noise, micro)
    hourly_returns = index_path[:, -1] - index_path[:, 0]
    premium = _premium(hourly_returns, premium_noise)  # unchanged before the crash: it lags

    mark_path = index_path + premium[:, None]
    open_, high, low, close = _candles(mark_path + micro + overshoot, model.tick)
    mark_open, mark_high, mark_low, mark_close = _candles(mark_path, model.tick)
    # the premium index sees the liquidation discount too
    funding = _funding(index, premium + overshoot.mean(axis=1))

    hour, weekday = index.hour.to_numpy(), index.day_of_week.to_numpy()
    daily = 1.0 + VOLUME_DAILY_AMPLITUDE * np.cos(2 * np.pi * (hour - VOLUME_PEAK_HOUR_UTC) / 24)
    weekly = np.where(weekday >= 5, WEEKEND_VOLUME_FACTOR, 1.0)
    activity = (sigma_now / long_run) * (1.0 + np.abs(hourly_returns) / sigma_now) / 2.0
    volume_usd = (model.volume_usd_per_hour * daily * weekly * activity
                  * np.exp(VOLUME_NOISE * volume_noise - VOLUME_NOISE**2 / 2))
    volume = volume_usd / close
    if crash is not None:  # the cascade's volume is a multiple of the previous day's median
        baseline = np.median(volume[max(0, crash - 24):crash])
        in_window = ~np.isnan(volume_mult)
        volume[in_window] = (baseline * volume_mult[in_window]
                             * np.exp(CASCADE.volume_noise * cascade_noise[in_window]))
    depth = (model.depth_usd * (long_run / sigma) ** DEPTH_VOL_ELASTICITY * depth_mult
             * np.exp(DEPTH_NOISE * depth_noise - DEPTH_NOISE**2 / 2))

    return pd.DataFrame({
        "timestamp": index.as_unit("ns"), "open": open_, "high": high, "low": low, "close": close,
        "volume": np.round(volume, VOLUME_DECIMALS).astype(np.float32),
        "mark_open": mark_open, "mark_high": mark_high, "mark_low": mark_low,
        "mark_close": mark_close, "funding_rate": funding,
        "depth_2pct_usd": (np.round(depth / DEPTH_ROUND_USD) * DEPTH_ROUND_USD).astype(np.float32),
    }, columns=list(COLUMNS))


# ----- public API ------------------------------------------------------------------------------------


def generate_pair(*, seed: int = SEED, start: str = START, end: str = END) -> dict[str, pd.DataFrame]:
    """Every modelled symbol (BTCUSDT, ETHUSDT and the altcoin SOLUSDT), correlated, as
    DataFrames in the sample-file layout.

    Hourly bars from ``start`` to ``end`` (UTC, inclusive); the cascade is included when the range
    holds 2025-10-10 from 00:00 through 21:00. The seed fixes the values for a given range.

    >>> frames = generate_pair(start="2025-10-01", end="2025-10-31 23:00")
    >>> sorted(frames), len(frames["BTCUSDT"])
    (['BTCUSDT', 'ETHUSDT', 'SOLUSDT'], 744)
    >>> list(frames["ETHUSDT"].columns[:5])
    ['timestamp', 'open', 'high', 'low', 'close']
    """
    index = pd.date_range(pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"), freq="h")
    if len(index) < 2:
        raise ValueError(f"need at least two hourly bars between {start} and {end}")
    shared, *own = np.random.default_rng(seed).spawn(1 + len(SYMBOLS))  # children by position
    z = _correlated_t(shared, len(index))
    trend = _ar1(TREND_SHOCK_STD * shared.standard_normal(len(index)), TREND_PERSISTENCE)
    crash = _cascade_bar(index)
    frames = {}
    for k, (symbol, model) in enumerate(SYMBOLS.items()):
        if symbol in PAIR:
            innovations = z[PAIR.index(symbol)]
        else:  # Student-t like the pair, correlated with BTC's, from the symbol's own stream
            rho = model.correlation_to_btc
            innovations = rho * z[0] + np.sqrt(1.0 - rho**2) * _correlated_t(own[k], len(index))[0]
        frames[symbol] = _simulate(index, model, innovations, trend, own[k], crash)
    return frames


def generate(symbol: str, *, seed: int = SEED, start: str = START, end: str = END) -> pd.DataFrame:
    """One symbol of :func:`generate_pair` (the same values as in the pair).

    >>> day = generate("BTCUSDT", start="2024-01-01", end="2024-01-01 23:00")
    >>> len(day), bool((day["high"] >= day[["open", "close"]].max(axis=1)).all())
    (24, True)
    """
    if symbol not in SYMBOLS:
        raise ValueError(f"unknown symbol {symbol!r}; the generator models {', '.join(SYMBOLS)}")
    return generate_pair(seed=seed, start=start, end=end)[symbol]


SAMPLE_DESCRIPTION = (
    "SYNTHETIC sample data, not real prices: a seeded model of an hourly perpetual future "
    "(GARCH volatility, fat tails, correlated BTC/ETH/SOL, mark price, 8-hourly funding and 2% "
    "book depth) with a liquidation cascade on 2025-10-10 modelled on the real one; see "
    "data/README.md. Use it to learn the tool, not to judge a strategy.")


def _with_note(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame marked, in its own metadata, as synthetic (reports and ``data info`` say so)."""
    from backtest.data.readers import DESCRIPTION_ATTR, SYNTHETIC_ATTR

    frame.attrs.update({SYNTHETIC_ATTR: True, DESCRIPTION_ATTR: SAMPLE_DESCRIPTION})
    return frame


def _same_as_file(path: Path, frame: pd.DataFrame) -> bool:
    try:
        existing = pd.read_parquet(path)
    except (OSError, ValueError):  # not a Parquet file we can read: it differs
        return False
    return (list(existing.columns) == list(frame.columns) and existing.equals(frame)
            and existing.attrs == frame.attrs)


def write_sample_data(out_dir=DATA_DIR, *, seed: int = SEED, force: bool = False) -> list[Path]:
    """Write ``{symbol}-1h.parquet`` for every modelled symbol into ``out_dir``; returns the paths.

    A file that already holds exactly these values is left untouched. A file that differs is not
    replaced unless ``force`` (raises :class:`FileExistsError` before writing anything).

    >>>     >>> with tempfile.TemporaryDirectory() as folder:             # doctest: +SKIP
    ...     [p.name for p in write_sample_data(folder)]
    ['BTCUSDT-1h.parquet', 'ETHUSDT-1h.parquet', 'SOLUSDT-1h.parquet']
    """
    out_dir = Path(out_dir)
    frames = {symbol: _with_note(frame) for symbol, frame in generate_pair(seed=seed).items()}
    paths = {symbol: out_dir / f"{symbol}-1h.parquet" for symbol in frames}
    differing = [path for symbol, path in paths.items()
                 if path.exists() and not _same_as_file(path, frames[symbol])]
    if differing and not force:
        raise FileExistsError(f"{', '.join(map(str, differing))} exist and differ from what seed "
                              f"{seed} generates; pass --force (force=True) to overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    for symbol, path in paths.items():
        if path.exists() and path not in differing:
            continue
        # write beside the target and rename, so an interrupted run leaves no half file
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            frames[symbol].to_parquet(temporary, index=False, compression=PARQUET_COMPRESSION)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return list(paths.values())


def main(argv=None) -> int:
    """Command line: ``python -m backtest.data.synthetic [--out DIR] [--seed N] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="python -m backtest.data.synthetic",
        description="Regenerate the SYNTHETIC sample data (BTCUSDT, ETHUSDT and SOLUSDT, hourly).")
    parser.add_argument("--out", default=str(DATA_DIR), help="folder to write (default: data/)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--force", action="store_true", help="overwrite files that differ")
    args = parser.parse_args(argv)
    try:
        paths = write_sample_data(args.out, seed=args.seed, force=args.force)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

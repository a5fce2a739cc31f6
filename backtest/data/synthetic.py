"""Deterministic generator of the SYNTHETIC sample data in ``data/`` (not real prices).

Two correlated perpetual-futures-like markets, BTCUSDT and ETHUSDT, hourly from 2024-01-01 to
2025-12-31 (UTC), with mark prices, 8-hourly funding and 2%-order-book depth. The model, per hour t
and symbol (parameters in :data:`SYMBOLS` and the constants below):

- innovations ``z`` are Student-t (``T_DF`` degrees of freedom, scaled to unit variance),
  correlated across symbols with ``CORRELATION`` (Cholesky);
- volatility clusters: ``σ²_t = ω + α ε²_{t-1} + β σ²_{t-1}`` (GARCH(1,1)), ω set so the
  long-run variance gives the symbol's annual volatility;
- a slowly mean-reverting trend ``μ_t = φ μ_{t-1} + η_t`` shared across symbols (β to it per
  symbol), so there are trends to follow;
- log return ``r_t = μ_t + σ_t z_t``; open = previous close × (1 + tiny noise); wicks beyond
  the body are ``|N| × σ_t × WICK_SCALE`` on each side; volume grows with ``|r_t| / σ_t``;
- funding every 8 h (00:00, 08:00, 16:00) follows the premium, an EMA of recent returns:
  ``rate = P + clamp(0.01% - P, ±0.05%)``, clamped to ±0.75% (Binance's formula shape);
- mark price: close to the traded price (basis noise of ``MARK_BASIS_NOISE``), its wicks a
  fraction ``MARK_WICK_SHARE`` of the traded ones (the index-based mark wicks less);
- 2% depth in USD: the symbol's typical depth × (long-run σ / σ_t)^0.7 × lognormal noise.

The cascade day, modelled on 10 October 2025: on 2025-10-10 from 21:00 UTC BTC falls about 9%
from the day's high, ETH about 20%, with long lower wicks that partly recover in the next hours;
volume jumps ~8x, 2% depth collapses to a tenth and recovers over a day, funding turns negative.

Regenerate (refuses to overwrite different files unless ``--force``)::

    python -m backtest.data.synthetic --out data/ [--seed 20251010] [--force]
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20251010
START, END = "2024-01-01 00:00", "2025-12-31 23:00"
HOURS_PER_YEAR = 365 * 24
T_DF = 4.0
CORRELATION = 0.8
GARCH_ALPHA, GARCH_BETA = 0.06, 0.92
TREND_PHI = 0.997
TREND_NOISE = 7.0e-6  # per-hour std of the trend shocks (log return)
OPEN_NOISE = 1.0e-4
WICK_SCALE = 0.6
VOLUME_NOISE = 0.35
MARK_BASIS_NOISE = 1.5e-4
MARK_WICK_SHARE = 0.7
MARK_WICK_SHARE_CASCADE = 0.45
FUNDING_HOURS = (0, 8, 16)
FUNDING_INTEREST = 0.0001  # 0.01% per 8 h
FUNDING_PREMIUM_CLAMP = 0.0005
FUNDING_CAP = 0.0075
PREMIUM_EMA_HOURS = 24
PREMIUM_PER_RETURN = 0.012  # premium per unit of EMA hourly return × hours (momentum → basis)
DEPTH_VOL_ELASTICITY = 0.7
DEPTH_NOISE = 0.15
CASCADE_DAY = "2025-10-10"
CASCADE_HOUR = 21
CALM_BEFORE_CASCADE = 0.3  # returns of the cascade day's first hours are damped by this
CASCADE_VOLUME_MULT = 8.0
CASCADE_DEPTH_FLOOR = 0.1  # depth falls to a tenth
CASCADE_DEPTH_RECOVERY_HOURS = 24
PARQUET_COMPRESSION = "zstd"


@dataclass(frozen=True)
class SymbolModel:
    start_price: float
    annual_vol: float
    trend_beta: float
    tick: float
    base_volume: float  # coins per hour
    depth_usd: float  # typical 2% depth, both sides, USD (single large venue)
    # cascade path relative to the 20:00 close: closes of 21, 22, 23 h, and the 21 h low
    cascade_closes: tuple[float, float, float]
    cascade_low: float


SYMBOLS = {
    "BTCUSDT": SymbolModel(42_000.0, 0.55, 1.0, 0.1, 900.0, 300e6,
                           (0.955, 0.945, 0.958), 0.915),
    "ETHUSDT": SymbolModel(2_300.0, 0.70, 1.25, 0.01, 15_000.0, 120e6,
                           (0.90, 0.87, 0.895), 0.80),
}


def _student_t(rng, shape):
    return rng.standard_t(T_DF, size=shape) / np.sqrt(T_DF / (T_DF - 2.0))


def _garch(z: np.ndarray, annual_vol: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns (σ_t, ε_t) for standardized innovations z."""
    long_run = annual_vol**2 / HOURS_PER_YEAR
    omega = long_run * (1.0 - GARCH_ALPHA - GARCH_BETA)
    sigma2 = np.empty_like(z)
    eps = np.empty_like(z)
    sigma2[0] = long_run
    eps[0] = np.sqrt(long_run) * z[0]
    for t in range(1, len(z)):
        sigma2[t] = omega + GARCH_ALPHA * eps[t - 1] ** 2 + GARCH_BETA * sigma2[t - 1]
        eps[t] = np.sqrt(sigma2[t]) * z[t]
    return np.sqrt(sigma2), eps


def _round(values: np.ndarray, tick: float) -> np.ndarray:
    return np.round(np.round(values / tick) * tick, 10)


def _candles(close: np.ndarray, sigma: np.ndarray, rng, tick: float, wick_scale: np.ndarray):
    open_ = np.r_[close[0], close[:-1]] * (1.0 + OPEN_NOISE * rng.standard_normal(len(close)))
    up = np.abs(rng.standard_normal(len(close))) * sigma * wick_scale * close
    down = np.abs(rng.standard_normal(len(close))) * sigma * wick_scale * close
    open_, close = _round(open_, tick), _round(close, tick)
    high = _round(np.maximum(open_, close) + up, tick)
    low = _round(np.maximum(np.minimum(open_, close) - down, tick), tick)
    high = np.maximum(high, np.maximum(open_, close))
    low = np.minimum(low, np.minimum(open_, close))
    return open_, high, low, close


def _apply_cascade(index, close, sigma, model: SymbolModel):
    """Force the cascade path; returns (close, sigma, cascade mask, low overrides)."""
    day = index.normalize() == pd.Timestamp(CASCADE_DAY, tz="UTC")
    start = int(np.flatnonzero(day)[0])
    anchor = start + CASCADE_HOUR - 1  # 20:00 of the day
    close = close.copy()
    reference = close[anchor]
    path = reference * np.asarray(model.cascade_closes)
    cascade = np.arange(anchor + 1, anchor + 1 + len(path))
    after = cascade[-1] + 1
    scale = path[-1] / close[cascade[-1]]
    close[cascade] = path
    close[after:] *= scale
    lows = {int(cascade[0]): reference * model.cascade_low}
    sigma = sigma.copy()
    sigma[cascade] *= 4.0
    return close, sigma, cascade, lows


def generate_pair(*, seed: int = SEED, start: str = START, end: str = END) -> dict[str, pd.DataFrame]:
    """Both symbols, correlated, as DataFrames in the sample-file layout (see module docstring).

    >>> frames = generate_pair(start="2025-10-01", end="2025-10-31 23:00")
    >>> sorted(frames), len(frames["BTCUSDT"])
    (['BTCUSDT', 'ETHUSDT'], 744)
    """
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, end, freq="1h", tz="UTC")
    n = len(index)
    base = _student_t(rng, (2, n))
    z = np.vstack([base[0], CORRELATION * base[0] + np.sqrt(1 - CORRELATION**2) * base[1]])
    trend = np.empty(n)
    trend[0] = 0.0
    shocks = TREND_NOISE * rng.standard_normal(n)
    for t in range(1, n):
        trend[t] = TREND_PHI * trend[t - 1] + shocks[t]
    has_cascade = index[0] <= pd.Timestamp(CASCADE_DAY, tz="UTC") and \
        index[-1] >= pd.Timestamp(CASCADE_DAY, tz="UTC") + pd.Timedelta(hours=CASCADE_HOUR + 4)

    frames = {}
    for k, (symbol, model) in enumerate(SYMBOLS.items()):
        sigma, eps = _garch(z[k], model.annual_vol)
        log_returns = model.trend_beta * trend + eps
        if has_cascade:  # a quiet day before the crash, so the drop is measured from ~20:00
            quiet = (index.normalize() == pd.Timestamp(CASCADE_DAY, tz="UTC")) & (index.hour < CASCADE_HOUR)
            log_returns[quiet] *= CALM_BEFORE_CASCADE
        close = model.start_price * np.exp(np.cumsum(log_returns))
        wick = np.full(n, WICK_SCALE)
        cascade, lows = np.empty(0, dtype=int), {}
        if has_cascade:
            close, sigma, cascade, lows = _apply_cascade(index, close, sigma, model)
            wick[cascade] *= 2.0
        open_, high, low, close = _candles(close, sigma, rng, model.tick, wick)
        for position, value in lows.items():
            low[position] = min(low[position], _round(np.array([value]), model.tick)[0])
        returns = np.r_[0.0, np.diff(np.log(close))]
        frames[symbol] = _frame(index, open_, high, low, close, returns, sigma, cascade, model, rng)
    return frames


def _frame(index, open_, high, low, close, returns, sigma, cascade, model, rng) -> pd.DataFrame:
    n = len(index)
    long_run = model.annual_vol / np.sqrt(HOURS_PER_YEAR)
    volume = model.base_volume * (0.5 + np.abs(returns) / long_run) * np.exp(
        VOLUME_NOISE * rng.standard_normal(n))
    volume[cascade] *= CASCADE_VOLUME_MULT
    depth = model.depth_usd * (long_run / sigma) ** DEPTH_VOL_ELASTICITY * np.exp(
        DEPTH_NOISE * rng.standard_normal(n))
    if len(cascade):
        hours_after = np.arange(n) - cascade[0]
        recovering = (hours_after >= 0) & (hours_after < CASCADE_DEPTH_RECOVERY_HOURS)
        factor = CASCADE_DEPTH_FLOOR + (1 - CASCADE_DEPTH_FLOOR) * hours_after[recovering] / CASCADE_DEPTH_RECOVERY_HOURS
        depth[recovering] *= factor
        depth[cascade] = model.depth_usd * CASCADE_DEPTH_FLOOR * np.exp(DEPTH_NOISE * rng.standard_normal(len(cascade)))

    basis = MARK_BASIS_NOISE * rng.standard_normal((2, n))
    share = np.full(n, MARK_WICK_SHARE)
    share[cascade] = MARK_WICK_SHARE_CASCADE
    mark_open = _round(open_ * (1 + basis[0]), model.tick)
    mark_close = _round(close * (1 + basis[1]), model.tick)
    mark_high = _round(np.maximum(mark_open, mark_close) + share * (high - np.maximum(open_, close)), model.tick)
    mark_low = _round(np.minimum(mark_open, mark_close) - share * (np.minimum(open_, close) - low), model.tick)
    mark_high = np.maximum(mark_high, np.maximum(mark_open, mark_close))
    mark_low = np.minimum(mark_low, np.minimum(mark_open, mark_close))

    ema = pd.Series(returns).ewm(span=PREMIUM_EMA_HOURS, adjust=False).mean().to_numpy()
    premium = PREMIUM_PER_RETURN * ema * PREMIUM_EMA_HOURS
    rate = premium + np.clip(FUNDING_INTEREST - premium, -FUNDING_PREMIUM_CLAMP, FUNDING_PREMIUM_CLAMP)
    rate = np.round(np.clip(rate, -FUNDING_CAP, FUNDING_CAP), 8)
    # the rate paid at a funding time is the premium of the interval that just ended
    previous = np.r_[rate[0], rate[:-1]]
    is_funding = np.isin(index.hour, FUNDING_HOURS)
    funding = np.where(is_funding, previous, np.nan)

    return pd.DataFrame({
        "timestamp": index, "open": open_, "high": high, "low": low, "close": close,
        "volume": np.round(volume, 3).astype(np.float32), "mark_open": mark_open,
        "mark_high": mark_high, "mark_low": mark_low, "mark_close": mark_close,
        "funding_rate": funding, "depth_2pct_usd": np.round(depth, -3).astype(np.float32),
    })


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression=PARQUET_COMPRESSION)
    return buffer.getvalue()


def write_sample_data(out_dir, *, seed: int = SEED, force: bool = False) -> list[Path]:
    """Write ``{symbol}-1h.parquet`` files; refuse to replace different files unless ``force``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = generate_pair(seed=seed)
    paths = []
    for symbol, frame in frames.items():
        path = out_dir / f"{symbol}-1h.parquet"
        if path.exists() and not force:
            existing = pd.read_parquet(path)
            if not existing.equals(frame):
                raise FileExistsError(f"{path} exists and differs from what seed {seed} generates; "
                                      "pass --force to overwrite it")
            paths.append(path)
            continue
        path.write_bytes(_parquet_bytes(frame))
        paths.append(path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the synthetic sample data.")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "data"))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--force", action="store_true", help="overwrite files that differ")
    args = parser.parse_args(argv)
    try:
        for path in write_sample_data(args.out, seed=args.seed, force=args.force):
            print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

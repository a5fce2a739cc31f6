"""Position sizing, vectorized and without look-ahead.

Every size here is an **exposure**: target position notional / equity (2.0 = a position worth
twice the equity), a per-bar float the Strategy layer hands to the engine as
``simulate(..., size=exposure, size_type="exposure")``; the engine turns it into a notional at fill
time from the equity it has then. Exposures are magnitudes (the direction comes from the
signals), capped at ``max_leverage``, and NaN while an indicator is warming up (no trade is sized
then). The value at bar t uses data up to t's close only.

Outputs mirror the input: scalars give a float, Series a Series on the same index, arrays an array.

>>> risk_per_trade(100.0, 95.0, risk=0.01)
0.2
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

DAYS_PER_YEAR = 365
TIER_COLUMNS = ("min_notional", "max_notional", "mmr", "maintenance_amount", "max_leverage")


def _check_positive(name, value, allow_inf=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0
    if not ok or np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_prices(name, values):
    """Prices must be positive where given (NaN allowed: it means 'no value at this bar')."""
    arr = np.asarray(values, dtype=float)
    bad = ~np.isnan(arr) & ~((arr > 0) & np.isfinite(arr))
    if bad.any():
        raise ValueError(f"{name} must be positive and finite, got {arr[bad].flat[0]!r}")


def _same_index(**named):
    series = [(k, v) for k, v in named.items() if isinstance(v, pd.Series)]
    for name, s in series[1:]:
        if not s.index.equals(series[0][1].index):
            raise ValueError(f"{name} is not on the same index as {series[0][0]}")


def _cap(exposure, max_leverage):
    """Cap at max_leverage; an infinite exposure (zero stop distance or zero vol) becomes the cap.

    ``np.minimum`` keeps NaN (warm-up) as NaN.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        capped = np.minimum(exposure, max_leverage)
    return float(capped) if np.ndim(capped) == 0 else capped


def _market_field(obj, field):
    return getattr(obj, field) if hasattr(obj, field) and not isinstance(obj, pd.Series) else None


def risk_per_trade(entry_price, stop_price, risk=0.01, max_leverage=10):
    """Exposure that loses ``risk`` of equity if the stop is hit: ``risk / (|entry − stop| / entry)``.

    Works for either side (the stop may lie below or above the entry). A stop at the entry gives
    ``max_leverage``; NaN entry or stop gives NaN.

    >>> risk_per_trade(100.0, 95.0, risk=0.01)
    0.2
    >>> risk_per_trade(pd.Series([100.0, 100.0]), pd.Series([99.9, 105.0])).tolist()
    [10.0, 0.2]
    """
    risk = _check_positive("risk", risk)
    max_leverage = _check_positive("max_leverage", max_leverage)
    _check_prices("entry_price", entry_price)
    _check_prices("stop_price", stop_price)
    _same_index(entry_price=entry_price, stop_price=stop_price)
    if not isinstance(entry_price, pd.Series):
        entry_price = np.asarray(entry_price, dtype=float)  # numpy: x / 0 is inf, not an error
    with np.errstate(divide="ignore"):
        exposure = risk * entry_price / abs(entry_price - stop_price)
    return _cap(exposure, max_leverage)


def atr_risk(high, low=None, close=None, risk=0.01, atr_window=14, atr_mult=2.0, max_leverage=10):
    """Risk-per-trade exposure with the stop ``atr_mult`` × ATR away from the close.

    ``exposure = risk / (atr_mult × ATR / close)``, capped; NaN for the first ``atr_window - 1``
    bars (ATR warm-up). ATR is vectorbt's (Wilder-style exponential). ``high`` may be a
    Market-like object.

    >>> import numpy as np
    >>> close = pd.Series(np.full(20, 100.0))
    >>> float(atr_risk(close + 1, close - 1, close, atr_window=5).iloc[-1])  # ATR 2, stop 4% away
    0.25
    """
    if _market_field(high, "close") is not None and low is None:
        high, low, close = high.high, high.low, high.close
    if low is None or close is None:
        raise ValueError("low and close are required (or pass a Market-like object as high)")
    risk = _check_positive("risk", risk)
    atr_window = _check_int("atr_window", atr_window, 1)
    atr_mult = _check_positive("atr_mult", atr_mult)
    max_leverage = _check_positive("max_leverage", max_leverage)
    _same_index(high=high, low=low, close=close)
    for name, values in (("high", high), ("low", low), ("close", close)):
        _check_prices(name, values)
    is_series = isinstance(close, pd.Series)
    h, lo, c = (np.asarray(x, dtype=float) for x in (high, low, close))
    if not len(h) == len(lo) == len(c):
        raise ValueError(f"high, low and close lengths differ: {len(h)}, {len(lo)}, {len(c)}")
    from backtest.indicators import atr as average_true_range

    atr = average_true_range(h, lo, c, window=atr_window)
    with np.errstate(divide="ignore"):
        exposure = _cap(risk * c / (atr_mult * atr), max_leverage)
    return pd.Series(exposure, index=close.index, name="exposure") if is_series else exposure


def _periods_per_year(index):
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        raise ValueError("periods_per_year is required unless close has a DatetimeIndex of 2+ bars")
    bar = pd.Series(index).diff().median()  # the bar length; robust to a few gaps
    if not bar > pd.Timedelta(0):
        raise ValueError("periods_per_year cannot be inferred: the index does not increase")
    return pd.Timedelta(days=DAYS_PER_YEAR) / bar


def target_volatility(
    close, target_vol=0.5, window=720, periods_per_year=None, max_leverage=10, min_periods=None
):
    """Exposure that targets an annualized volatility: ``target_vol / realized_vol``.

    ``realized_vol[t]`` = sample std (ddof 1) of the log returns of the ``window`` bars up to and
    including t, × sqrt(periods_per_year). ``periods_per_year`` defaults to 365 days / the bar
    length (the median spacing of the DatetimeIndex). NaN until ``min_periods`` (default
    ``window``) returns exist, i.e. for the first ``min_periods`` bars. Zero volatility gives
    ``max_leverage``. ``close`` may be a Market-like object.

    >>> idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    >>> close = pd.Series([100.0, 110.0, 100.0, 110.0, 100.0], index=idx)
    >>> round(float(target_volatility(close, target_vol=1.0, window=4).iloc[-1]), 4)  # vol 2.1026
    0.4756
    """
    if _market_field(close, "close") is not None:
        close = close.close
    target_vol = _check_positive("target_vol", target_vol)
    window = _check_int("window", window, 2)
    min_periods = window if min_periods is None else _check_int("min_periods", min_periods, 2)
    if min_periods > window:
        raise ValueError(f"min_periods ({min_periods}) must be <= window ({window})")
    max_leverage = _check_positive("max_leverage", max_leverage)
    _check_prices("close", close)
    is_series = isinstance(close, pd.Series)
    if periods_per_year is None:
        periods_per_year = _periods_per_year(close.index if is_series else None)
    periods_per_year = _check_positive("periods_per_year", periods_per_year)
    series = close.astype(float) if is_series else pd.Series(np.asarray(close, dtype=float))
    log_returns = np.log(series).diff()
    vol = log_returns.rolling(window, min_periods=min_periods).std() * np.sqrt(periods_per_year)
    with np.errstate(divide="ignore"):
        exposure = _cap(target_vol / vol.to_numpy(), max_leverage)
    return pd.Series(exposure, index=close.index, name="exposure") if is_series else exposure


def tier_capped(exposure, equity, leverage, tiers):
    """Cap exposure so the notional fits the bracket table at the chosen leverage.

    With leverage L the largest allowed notional is the ``max_notional`` of the last bracket whose
    ``max_leverage >= L`` (brackets: rows of ``min_notional, max_notional, mmr,
    maintenance_amount, max_leverage``, as the engine's Binance tables). The result is
    ``min(|exposure|, L, that notional / equity)`` with the sign of ``exposure`` — above L the
    margin (notional / L) exceeds the equity. ``equity`` is the account equity the order will see
    (a scalar estimate or a per-bar Series); NaN stays NaN.

    >>> tiers = pd.DataFrame({"min_notional": [0, 10_000, 100_000],
    ...                       "max_notional": [10_000, 100_000, 1_000_000],
    ...                       "mmr": [0.004, 0.005, 0.01], "maintenance_amount": [0, 10, 510],
    ...                       "max_leverage": [50, 20, 10]})
    >>> tier_capped(5.0, equity=4_000, leverage=20, tiers=tiers)   # 20k notional allowed up to 100k
    5.0
    >>> tier_capped(5.0, equity=40_000, leverage=25, tiers=tiers)  # 25x allowed up to 10k notional
    0.25
    """
    if not isinstance(tiers, pd.DataFrame) or not set(TIER_COLUMNS) <= set(tiers.columns):
        raise ValueError(f"tiers must be a DataFrame with columns {list(TIER_COLUMNS)}")
    if tiers.empty:
        raise ValueError("tiers must have at least one bracket")
    leverage = _check_positive("leverage", leverage)
    max_leverage = tiers["max_leverage"].to_numpy(dtype=float)
    allowed = max_leverage >= leverage
    if not allowed.any():
        raise ValueError(
            f"leverage {leverage:g} exceeds every bracket's max_leverage (max {max_leverage.max():g})"
        )
    max_notional = float(tiers["max_notional"].to_numpy(dtype=float)[allowed].max())
    equity_arr = np.asarray(equity, dtype=float)
    if (equity_arr <= 0).any():
        raise ValueError("equity must be positive")
    _same_index(exposure=exposure, equity=equity)
    if not isinstance(exposure, pd.Series | numbers.Real):
        exposure = np.asarray(exposure, dtype=float)
    limit = np.minimum(leverage, max_notional / equity)
    magnitude = np.minimum(abs(exposure), limit)
    capped = np.sign(exposure) * magnitude
    return float(capped) if np.ndim(capped) == 0 else capped


def kelly_fraction(trade_returns, *, window=50, fraction=0.5, cap=1.0, index=None, min_trades=None):
    """Rolling (fractional) Kelly fraction from closed-trade returns.

    ``trade_returns``: Series of trade returns (fractions) indexed by exit time. Over the last
    ``window`` trades known at each exit: p = share of winning trades (return > 0), q = 1 − p,
    b = mean win / |mean loss| (loss: return < 0; breakeven trades count in p's denominator only),
    ``f = (b·p − q) / b``, × ``fraction``, clipped to ``[0, cap]``. No loss in the window means
    ``f = p``; no win means 0. Too few trades: NaN until ``min_trades`` (default ``window``) trades
    have closed. f is the Kelly share of equity to *risk* per trade: pass it as ``risk`` to
    :func:`risk_per_trade`, or use ``f / |mean loss|`` as an exposure.

    Without ``index`` the result is one value per trade (on the trades' index, sorted by exit
    time). With a bar ``index`` it is forward-filled onto bars strictly after each exit (a trade
    closing at bar t informs sizes from bar t + 1 on); NaN before.

    >>> r = pd.Series([0.03, -0.02, 0.03, -0.02, 0.03],
    ...               index=pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC"))
    >>> round(float(kelly_fraction(r, window=5, fraction=1.0).iloc[-1]), 4)   # p 0.6, b 1.5
    0.3333
    """
    if not isinstance(trade_returns, pd.Series):
        raise ValueError("trade_returns must be a Series indexed by exit time")
    window = _check_int("window", window, 1)
    min_trades = window if min_trades is None else _check_int("min_trades", min_trades, 1)
    if min_trades > window:
        raise ValueError(f"min_trades ({min_trades}) must be <= window ({window})")
    fraction = _check_positive("fraction", fraction)
    cap = _check_positive("cap", cap)
    returns = trade_returns.astype(float)
    if not np.isfinite(returns.to_numpy()).all():
        raise ValueError("trade_returns must be finite")
    returns = returns.sort_index(kind="stable")

    def rolling_sum(values):
        return values.rolling(window, min_periods=min_trades).sum()

    n = rolling_sum(pd.Series(1.0, index=returns.index))
    wins = rolling_sum((returns > 0).astype(float))
    losses = rolling_sum((returns < 0).astype(float))
    win_sum = rolling_sum(returns.clip(lower=0))
    loss_sum = -rolling_sum(returns.clip(upper=0))
    p = wins / n
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (win_sum / wins) / (loss_sum / losses)
        kelly = np.where(losses > 0, p - (1 - p) / b, p)
    kelly = np.where(wins > 0, kelly, 0.0)
    kelly = np.where(n.notna(), np.clip(kelly * fraction, 0.0, cap), np.nan)
    result = pd.Series(kelly, index=returns.index, name="kelly_fraction")
    if index is None:
        return result
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError("index must be a DatetimeIndex (the bars)")
    if not isinstance(returns.index, pd.DatetimeIndex):
        raise ValueError("trade_returns must be indexed by exit time (a DatetimeIndex) with index")
    known = returns.index.searchsorted(index, side="left")  # trades with exit < bar
    values = np.where(known > 0, result.to_numpy()[np.maximum(known - 1, 0)], np.nan)
    return pd.Series(values, index=index, name="kelly_fraction")


def kelly_leverage(returns, *, fraction=1.0):
    """Growth-optimal multiple of a return stream: ``fraction × mean / variance`` of its per-bar
    returns (the continuous-time Kelly leverage μ/σ²), from the strategy's own returns at
    leverage 1 — beyond it, more leverage lowers the long-run growth rate; twice it, growth is
    zero. Half-Kelly (``fraction=0.5``) keeps ~75% of the growth at half the volatility. NaN
    when the returns do not vary; negative when they lose money (no leverage grows them).

    >>> r = pd.Series([0.01, -0.005, 0.01, -0.005])
    >>> round(kelly_leverage(r), 2), round(kelly_leverage(r, fraction=0.5), 2)
    (33.33, 16.67)
    """
    fraction = _check_positive("fraction", fraction)
    values = np.asarray(returns, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if len(values) < 2:
        raise ValueError(f"returns must hold at least 2 finite values, got {len(values)}")
    variance = values.var(ddof=1)
    return float(fraction * values.mean() / variance) if variance > 0 else float("nan")

"""Finding look-ahead in a strategy's hooks, as freqtrade's lookahead-analysis does.

A decision at bar t may use data up to t's close only. So the hooks' outputs (signals, stops,
sizes) for the bars before a cut point must be the same whether the market ends at the cut or
goes on: :func:`find_lookahead` runs the hooks on the full market and on prefixes ending at a
few cut points, and reports every value that changed — ``close.shift(-1)``, a rolling window
that is centred, a normalisation by the whole sample's mean all show up.

>>> findings = find_lookahead(MyStrategy(), market)    # doctest: +SKIP
>>> findings                                          # doctest: +SKIP
["MyStrategy.signals()['entries'] at bar 1233 (2025-02-21 09:00:00+00:00): True with all 2000 bars, False when the data ends at bar 1400"]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_PREFIX_BARS = 50  # shorter prefixes leave indicators' windows empty
RTOL = 1e-9


def cut_points(n_bars: int, cuts: int) -> list[int]:
    """``cuts`` prefix lengths spread over the second half of the data (distinct, ≥ 50 bars)."""
    if n_bars <= MIN_PREFIX_BARS:
        return []
    points = np.linspace(max(MIN_PREFIX_BARS, n_bars // 2), n_bars - 1, cuts).astype(int)
    return sorted(set(points.tolist()))


def _values(value, n_columns: int, n_bars: int) -> np.ndarray:
    if isinstance(value, pd.DataFrame | pd.Series):
        value = value.to_numpy()
    array = np.asarray(value)
    if array.ndim == 0:
        return np.broadcast_to(array, (n_bars, n_columns))
    return array.reshape(n_bars, -1)


def _first_difference(full: np.ndarray, part: np.ndarray) -> tuple[int, int] | None:
    if full.dtype == bool or part.dtype == bool:
        differs = full != part
    else:
        full, part = full.astype(float), part.astype(float)
        both_nan = np.isnan(full) & np.isnan(part)
        close = np.isclose(full, part, rtol=RTOL, atol=0.0)
        differs = ~(both_nan | close)
    if not differs.any():
        return None
    bar, column = np.argwhere(differs)[0]
    return int(bar), int(column)


def find_lookahead(strategy, market, *, cuts: int = 5, **grid) -> list[str]:
    """Values of the hooks at bars before a cut that change when later bars are removed."""
    from backtest.strategy import _stack_hooks

    _, _, variants, columns = strategy.expand(**grid)
    name = type(strategy).__name__
    full = _stack_hooks(variants, market, columns)
    findings = []
    for cut in cut_points(len(market), cuts):
        part = _stack_hooks(variants, market[:cut], columns)
        for key in sorted(set(full) | set(part)):
            if key == "size_type":
                continue
            if (key in full) != (key in part):
                findings.append(f"{name}: {key!r} is returned on one length of data and not on "
                                f"the other (full data vs data ending at bar {cut})")
                continue
            whole = _values(full[key], len(columns), len(market))[:cut]
            prefix = _values(part[key], len(columns), cut)
            found = _first_difference(whole, prefix)
            if found is not None:
                bar, column = found
                label = "" if len(columns) == 1 else f" (column {columns[column]!r})"
                findings.append(
                    f"{name} {key!r}{label} at bar {bar} ({market.index[bar]}): "
                    f"{whole[bar, column]!r} with all {len(market)} bars, {prefix[bar, column]!r} "
                    f"when the data ends at bar {cut}: the value uses later data (look-ahead)")
        if findings:
            break
    return findings

"""Margin math for linear (USDT-margined) perpetuals: tiers, liquidation and bankruptcy prices.

One implementation serves numba kernels (``*_nb``) and Python (the public wrappers).

For an account holding signed quantity ``q`` (long > 0) at entry ``e`` with collateral ``W``
(the isolated margin, or the cross wallet), the margin balance at mark price P is ``W + q (P - e)``
and the maintenance margin ``|q| P mmr - cum``, where ``mmr`` and the maintenance amount ``cum``
come from the bracket holding the notional ``|q| P`` *at that price*. The account is liquidated
when the first falls to the second:

    f(P) = W + q (P - e) - |q| P mmr(P) + cum(P)

Within one bracket f is linear, ``A + B P`` with ``A = W - q e + cum`` and ``B = q - |q| mmr``, so
``LP = -A / B``: Binance's published formula ``LP = (WB + cum - s Q EP) / (Q mmr - s Q)``. Across
brackets the maintenance amounts make the maintenance margin continuous (each ``cum`` is the
previous one plus ``floor × Δmmr``) and, the rates growing with the notional, convex; so f is
continuous and concave, the set of prices where an account survives is one interval, and a price
path leaves it at most once per monotone stretch. :func:`check_tiers` enforces exactly these
properties. :func:`liquidation_price` with ``tiers`` finds the bracket whose notional range holds
``Q × LP`` itself, as Binance's calculator does. The bankruptcy price is where the margin balance
is zero: ``BP = e - W / q``.

>>> round(liquidation_price(1, 1456.84, 3683.979, 1535443.01, 0.10, 135365.0), 2)
1114.78
>>> tiers = pd.DataFrame({"min_notional": [0.0, 100e3], "max_notional": [100e3, 1e9],
...                       "mmr": [0.01, 0.10], "maintenance_amount": [0.0, 9000.0],
...                       "max_leverage": [10.0, 5.0]})
>>> round(liquidation_price(-1, 100.0, 900.0, 45_000.0, tiers=tiers), 4)   # the 10% bracket's
145.4545
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from backtest.engine.records import DEFAULT_MAX_LEVERAGE

TIERS_DIR = Path(__file__).with_name("tiers")
TIER_COLUMNS = ["min_notional", "max_notional", "mmr", "maintenance_amount", "max_leverage"]
CUM_TOLERANCE_USD = 1e-6  # published maintenance amounts are exact to the cent; allow rounding


@njit(cache=True)
def bracket_nb(notional: float, max_notional: np.ndarray) -> int:
    """Index of the bracket holding ``notional``: brackets are ``[min, max)`` (the last one for
    anything beyond)."""
    for k in range(max_notional.shape[0]):
        if notional < max_notional[k]:
            return k
    return max_notional.shape[0] - 1


@njit(cache=True)
def liquidation_price_nb(side: int, entry_price: float, qty: float, wallet_balance: float,
                         mmr: float, maintenance_amount: float) -> float:
    """Binance's LP = (WB + cum - s·Q·EP) / (Q·mmr - s·Q) for one position; NaN if none."""
    denominator = qty * mmr - side * qty
    if qty <= 0.0 or denominator == 0.0:
        return np.nan
    price = (wallet_balance + maintenance_amount - side * qty * entry_price) / denominator
    return max(price, 0.0)


@njit(cache=True)
def bankruptcy_price_nb(side: int, entry_price: float, qty: float, wallet_balance: float) -> float:
    """Price at which the margin balance is zero: EP - WB / (s·Q)."""
    if qty <= 0.0:
        return np.nan
    return max(entry_price - wallet_balance / (side * qty), 0.0)


@njit(cache=True)
def tiered_liquidation_price_nb(side: int, entry_price: float, qty: float, wallet_balance: float,
                                max_notional: np.ndarray, mmr: np.ndarray,
                                maintenance_amount: np.ndarray) -> float:
    """LP computed with the bracket that holds the notional ``qty × LP`` itself.

    With a table that passes :func:`check_tiers` exactly one bracket is consistent (two at a
    boundary, giving the same price); NaN when there is no position.
    """
    for k in range(max_notional.shape[0]):
        price = liquidation_price_nb(side, entry_price, qty, wallet_balance, mmr[k],
                                     maintenance_amount[k])
        if not np.isnan(price) and bracket_nb(qty * price, max_notional) == k:
            return price
    return np.nan


# ----- tier tables -----------------------------------------------------------------------------


def shipped_symbols() -> list[str]:
    """The symbols whose tier tables ship with the package.

    >>> shipped_symbols()
    ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'XRPUSDT']
    """
    return sorted(p.stem for p in TIERS_DIR.glob("*.json"))


def load_tiers(symbol_or_path, symbol: str | None = None) -> pd.DataFrame:
    """A maintenance-bracket table: ``min_notional, max_notional, mmr, maintenance_amount,
    max_leverage`` (notional in USDT), for a shipped symbol (BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT)
    or a JSON file: ours (``{"brackets": [...]}``), or ccxt's ``fetch_leverage_tiers`` layout —
    a list of tiers, or a dict by symbol (pick one with ``symbol``, e.g. "SOLUSDT" or
    "SOL/USDT:USDT"), each tier with ``minNotional, maxNotional, maintenanceMarginRate,
    maxLeverage`` and the maintenance amount in ``info.cum``.

    >>> load_tiers("BTCUSDT").iloc[0].tolist()
    [0.0, 50000.0, 0.004, 0.0, 125.0]
    """
    path = Path(symbol_or_path)
    if not path.suffix:
        path = TIERS_DIR / f"{str(symbol_or_path).upper()}.json"
        if not path.is_file():
            raise ValueError(f"tiers: no table shipped for {symbol_or_path!r}; shipped: "
                             f"{', '.join(shipped_symbols())} (or pass a DataFrame or a JSON path)")
    payload = json.loads(path.read_text())
    if isinstance(payload, dict) and "brackets" in payload:
        return check_tiers(pd.DataFrame(payload["brackets"]), source=str(path))
    if isinstance(payload, dict):  # ccxt: {symbol: [tiers]}
        wanted = {_plain_symbol(key): key for key in payload}
        key = wanted.get(_plain_symbol(symbol)) if symbol else (next(iter(payload)) if len(payload) == 1 else None)
        if key is None:
            raise ValueError(f"{path}: holds tiers for {', '.join(payload)}; pass symbol= to pick one")
        payload = payload[key]
    if payload and isinstance(payload[0], dict) and "maintenanceMarginRate" in payload[0]:
        payload = [_from_ccxt(tier, path) for tier in payload]
    return check_tiers(pd.DataFrame(payload), source=str(path))


def _plain_symbol(symbol) -> str:
    """"SOL/USDT:USDT" and "SOLUSDT" alike: base and quote, upper case."""
    text = str(symbol).upper().split(":")[0]
    return text.replace("/", "")


def _from_ccxt(tier: dict, path) -> dict:
    try:
        return {"min_notional": float(tier["minNotional"]), "max_notional": float(tier["maxNotional"]),
                "mmr": float(tier["maintenanceMarginRate"]),
                "maintenance_amount": float((tier.get("info") or {}).get("cum", 0.0)),
                "max_leverage": float(tier["maxLeverage"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: a ccxt tier lacks {exc} (minNotional, maxNotional, "
                         "maintenanceMarginRate, maxLeverage, info.cum)") from exc


def check_tiers(tiers: pd.DataFrame, source: str = "tiers") -> pd.DataFrame:
    """Validate a bracket table and return it as floats in the engine's column order.

    Brackets must be ordered and contiguous (each ``min_notional`` the previous
    ``max_notional``, the first at 0), with rates in [0, 1) that never fall, maximum leverage
    ≥ 1 that never rises, and maintenance amounts that keep the maintenance margin continuous
    (``cum[k] = cum[k-1] + min_notional[k] × (mmr[k] - mmr[k-1])``, as in every exchange table):
    the engine's liquidation search relies on these.

    >>> check_tiers(pd.DataFrame({"min_notional": [0.0], "max_notional": [np.inf], "mmr": [0.01],
    ...                           "maintenance_amount": [0.0], "max_leverage": [50.0]})).shape
    (1, 5)
    """
    missing = [c for c in TIER_COLUMNS if c not in tiers.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}")
    table = tiers[TIER_COLUMNS].astype(float).reset_index(drop=True)
    if len(table) == 0:
        raise ValueError(f"{source}: the table is empty")
    low, high = table["min_notional"].to_numpy(), table["max_notional"].to_numpy()
    mmr, cum = table["mmr"].to_numpy(), table["maintenance_amount"].to_numpy()
    leverage = table["max_leverage"].to_numpy()

    def fail(row, problem):
        raise ValueError(f"{source}: bracket {row + 1}: {problem}")

    if low[0] != 0.0:
        fail(0, f"the first bracket must start at 0 notional, not {low[0]:g}")
    for k in range(len(table)):
        if not high[k] > low[k]:
            fail(k, "max_notional must be above min_notional")
        if not 0.0 <= mmr[k] < 1.0:
            fail(k, f"mmr {mmr[k]:g} is not a fraction in [0, 1)")
        if not leverage[k] >= 1.0:
            fail(k, f"max_leverage {leverage[k]:g} is below 1")
        if k == 0:
            if cum[0] != 0.0:
                fail(0, f"maintenance_amount must be 0 in the first bracket, not {cum[0]:g}")
            continue
        if not np.isclose(low[k], high[k - 1], rtol=1e-12, atol=0.0):
            fail(k, f"min_notional {low[k]:g} must equal the previous max_notional {high[k - 1]:g}")
        if mmr[k] < mmr[k - 1]:
            fail(k, f"mmr {mmr[k]:g} is below the previous bracket's {mmr[k - 1]:g}")
        if leverage[k] > leverage[k - 1]:
            fail(k, f"max_leverage {leverage[k]:g} is above the previous bracket's {leverage[k - 1]:g}")
        expected = cum[k - 1] + low[k] * (mmr[k] - mmr[k - 1])
        if abs(cum[k] - expected) > CUM_TOLERANCE_USD * max(1.0, abs(expected)):
            fail(k, f"maintenance_amount {cum[k]:g} should be {expected:.10g} (previous amount + "
                    "min_notional × the rise in mmr) for the maintenance margin to be continuous")
    return table


def flat_tiers(mmr: float, max_leverage: float = DEFAULT_MAX_LEVERAGE) -> pd.DataFrame:
    """A single bracket with a flat maintenance rate, capped at ``max_leverage``."""
    return pd.DataFrame([[0.0, np.inf, float(mmr), 0.0, float(max_leverage)]], columns=TIER_COLUMNS)


def resolve_tiers(tiers, symbol: str | None = None) -> pd.DataFrame:
    """A table from a shipped symbol, a JSON path (a ccxt file by symbol: ``symbol`` picks) or
    a DataFrame (validated)."""
    if isinstance(tiers, pd.DataFrame):
        return check_tiers(tiers)
    return load_tiers(tiers, symbol=symbol)


# ----- public scalar/array wrappers --------------------------------------------------------------


def _side(side) -> np.ndarray:
    side = np.asarray(side)
    if not np.isin(side, (1, -1)).all():
        raise ValueError(f"side must be +1 (long) or -1 (short), got {side}")
    return side


def liquidation_price(side, entry_price, qty, wallet_balance, mmr=None, maintenance_amount=0.0, *,
                      tiers=None):
    """Liquidation price of an isolated (or single cross) linear position, Binance's formula.

    ``side`` +1 long / -1 short; ``qty`` > 0 in coins; ``wallet_balance`` the collateral backing
    the position (isolated margin, or the cross wallet). Either a flat ``mmr`` (with its
    ``maintenance_amount``), or ``tiers`` (a shipped symbol, a JSON path or a DataFrame), in
    which case the bracket is the one holding the notional at the liquidation price itself.
    Scalars or numpy arrays.

    >>> round(liquidation_price(1, 32481.98, 109.488, 1535443.01, 0.025, 16300.0), 2)
    18778.73
    >>> round(liquidation_price(-1, 100.0, 1.0, 10.0, 0.005), 4)   # 10x short
    109.4527
    >>> round(liquidation_price(1, 100.0, 520.0, 2600.0, tiers="BTCUSDT"), 5)  # 0.4% bracket at LP
    95.38153
    """
    side = _side(side)
    if (mmr is None) == (tiers is None):
        raise ValueError("give either mmr (with maintenance_amount) or tiers")
    if tiers is not None:
        table = resolve_tiers(tiers)
        arrays = [table[c].to_numpy(float) for c in ("max_notional", "mmr", "maintenance_amount")]
        sides, entries, qtys, wallets = np.broadcast_arrays(side, np.asarray(entry_price, float),
                                                            np.asarray(qty, float),
                                                            np.asarray(wallet_balance, float))
        price = np.array([tiered_liquidation_price_nb(int(s), e, q, w, *arrays) for s, e, q, w in
                          zip(sides.ravel(), entries.ravel(), qtys.ravel(), wallets.ravel(),
                              strict=True)]).reshape(sides.shape)
        return float(price) if np.ndim(price) == 0 else price
    qty = np.asarray(qty, dtype=float)
    price = (np.asarray(wallet_balance, float) + maintenance_amount - side * qty * entry_price) / (
        qty * np.asarray(mmr, float) - side * qty)
    price = np.maximum(price, 0.0)
    return float(price) if np.ndim(price) == 0 else price


def bankruptcy_price(side, entry_price, qty, wallet_balance):
    """Price at which the position's margin balance reaches zero: ``EP - WB / (side·Q)``.

    >>> bankruptcy_price(1, 100.0, 1.0, 10.0)   # 10x long loses its margin at -10%
    90.0
    """
    side = _side(side)
    price = np.maximum(np.asarray(entry_price, float) - np.asarray(wallet_balance, float)
                       / (side * np.asarray(qty, float)), 0.0)
    return float(price) if np.ndim(price) == 0 else price

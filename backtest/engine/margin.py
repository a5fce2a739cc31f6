"""Margin math for linear (USDT-margined) perpetuals: tiers, liquidation and bankruptcy prices.

One implementation serves numba kernels (``*_nb``) and Python (the public wrappers).

For an account holding signed quantity ``q`` (long > 0) at entry ``e`` with collateral ``W``
(the isolated margin, or the cross wallet), the margin balance at price P is ``W + q (P - e)``
and the maintenance margin ``|q| P mmr - cum`` (``cum``: the bracket's maintenance amount). The
account is liquidated when the first falls to the second:

    f(P) = W + q (P - e) - |q| P mmr + cum = A + B P,   A = W - q e + cum,   B = q - |q| mmr

so ``LP = -A / B``, which for one position is Binance's published formula
``LP = (WB + cum - s Q EP) / (Q mmr - s Q)``. A long (B > 0) is liquidated when the price falls
to LP, a short (B < 0) when it rises to it. Several positions in one cross account on the same
instrument add their A and B terms. The bankruptcy price is where the margin balance is zero:
``BP = e - W / q``.

Tiers (maintenance brackets) are chosen by the position's notional at the price considered;
:func:`liquidation_price` searches the bracket whose notional range contains ``|q| LP``, as
Binance's calculator does.

>>> round(liquidation_price(1, 1456.84, 3683.979, 1535443.01, 0.10, 135365.0), 2)
1114.78
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

TIERS_DIR = Path(__file__).with_name("tiers")
TIER_COLUMNS = ["min_notional", "max_notional", "mmr", "maintenance_amount", "max_leverage"]


@njit(cache=True)
def bracket_nb(notional: float, max_notional: np.ndarray) -> int:
    """Index of the bracket holding ``notional`` (the last one for anything beyond)."""
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
    """LP with the bracket that holds the notional at LP itself (self-consistent)."""
    fallback = np.nan
    for k in range(max_notional.shape[0]):
        price = liquidation_price_nb(side, entry_price, qty, wallet_balance, mmr[k],
                                     maintenance_amount[k])
        if np.isnan(price):
            continue
        if k == 0 or np.isnan(fallback):
            fallback = price
        if bracket_nb(qty * price, max_notional) == k:
            return price
    return fallback


# ----- tier tables -----------------------------------------------------------------------------


def load_tiers(symbol_or_path) -> pd.DataFrame:
    """A maintenance-bracket table: ``min_notional, max_notional, mmr, maintenance_amount,
    max_leverage`` (notional in USDT), for a shipped symbol ("BTCUSDT", "ETHUSDT") or a JSON file.

    >>> load_tiers("BTCUSDT").iloc[0].tolist()
    [0.0, 50000.0, 0.004, 0.0, 125.0]
    """
    path = Path(symbol_or_path)
    if not path.suffix:
        path = TIERS_DIR / f"{str(symbol_or_path).upper()}.json"
        if not path.is_file():
            shipped = sorted(p.stem for p in TIERS_DIR.glob("*.json"))
            raise ValueError(f"tiers: no table shipped for {symbol_or_path!r}; shipped: "
                             f"{', '.join(shipped)} (or pass a DataFrame or a JSON path)")
    payload = json.loads(path.read_text())
    rows = payload["brackets"] if isinstance(payload, dict) else payload
    return check_tiers(pd.DataFrame(rows))


def check_tiers(tiers: pd.DataFrame) -> pd.DataFrame:
    """Validate a bracket table: ordered, contiguous, rates in [0, 1), leverage ≥ 1."""
    missing = [c for c in TIER_COLUMNS if c not in tiers.columns]
    if missing:
        raise ValueError(f"tiers: missing column(s) {', '.join(missing)}")
    table = tiers[TIER_COLUMNS].astype(float).reset_index(drop=True)
    if len(table) == 0:
        raise ValueError("tiers: the table is empty")
    if not (table["max_notional"] > table["min_notional"]).all():
        raise ValueError("tiers: every bracket needs max_notional > min_notional")
    if not np.allclose(table["min_notional"].iloc[1:].to_numpy(), table["max_notional"].iloc[:-1].to_numpy()):
        raise ValueError("tiers: brackets must be contiguous (each min_notional = previous max_notional)")
    if not ((table["mmr"] >= 0) & (table["mmr"] < 1)).all():
        raise ValueError("tiers: mmr must be in [0, 1)")
    if not (table["max_leverage"] >= 1).all():
        raise ValueError("tiers: max_leverage must be >= 1")
    return table


def flat_tiers(mmr: float) -> pd.DataFrame:
    """A single bracket with a flat maintenance rate and no leverage cap."""
    return pd.DataFrame([[0.0, np.inf, float(mmr), 0.0, np.inf]], columns=TIER_COLUMNS)


# ----- public scalar/array wrappers --------------------------------------------------------------


def _side(side) -> np.ndarray:
    side = np.asarray(side)
    if not np.isin(side, (1, -1)).all():
        raise ValueError(f"side must be +1 (long) or -1 (short), got {side}")
    return side


def liquidation_price(side, entry_price, qty, wallet_balance, mmr, maintenance_amount=0.0):
    """Liquidation price of an isolated (or single cross) linear position, Binance's formula.

    ``side`` +1 long / -1 short; ``qty`` > 0 in coins; ``wallet_balance`` the collateral backing
    the position (isolated margin, or the cross wallet); ``mmr`` and ``maintenance_amount`` from
    the bracket of the position's notional. Scalars or numpy arrays.

    >>> round(liquidation_price(1, 32481.98, 109.488, 1535443.01, 0.025, 16300.0), 2)
    18778.73
    >>> round(liquidation_price(-1, 100.0, 1.0, 10.0, 0.005), 4)   # 10x short
    109.4527
    """
    side = _side(side)
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

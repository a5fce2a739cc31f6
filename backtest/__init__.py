"""Backtesting for leveraged crypto perpetual futures.

Data flows top to bottom: :class:`Market` (validated OHLCV, mark price, funding, depth) →
:class:`Strategy` (signals, stops, sizing) → :func:`simulate` (numba margin engine) →
:class:`Result` (stats, records) → HTML report.

>>> import backtest
>>> market = backtest.load(backtest.sample_path("BTCUSDT"))  # doctest: +SKIP
"""

from backtest.data.readers import load, load_funding, load_mark, sample_path
from backtest.engine.margin import bankruptcy_price, liquidation_price, load_tiers
from backtest.engine.simulate import simulate
from backtest.errors import DataError, DataWarning
from backtest.market import Market
from backtest.markets import Markets, load_markets
from backtest.montecarlo import monte_carlo
from backtest.result import Result
from backtest.strategy import Param, Strategy
from backtest.walkforward import walk_forward

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DataWarning",
    "Market",
    "Markets",
    "Param",
    "Result",
    "Strategy",
    "__version__",
    "monte_carlo",
    "bankruptcy_price",
    "load",
    "load_funding",
    "load_markets",
    "load_mark",
    "load_tiers",
    "liquidation_price",
    "sample_path",
    "simulate",
    "walk_forward",
]

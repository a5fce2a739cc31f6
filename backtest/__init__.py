"""Backtesting for leveraged crypto perpetual futures.

Data flows top to bottom: :class:`Market` (validated OHLCV, mark price, funding, depth) →
:class:`Strategy` (signals, stops, sizing) → :func:`simulate` (numba margin engine) →
:class:`Result` (stats, records) → HTML report.

>>> import backtest
>>> market = backtest.load(backtest.sample_path("BTCUSDT"))  # doctest: +SKIP
"""

from backtest.data.readers import load, load_funding, load_mark, sample_path
from backtest.errors import DataError, DataWarning
from backtest.market import Market

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DataWarning",
    "Market",
    "__version__",
    "load",
    "load_funding",
    "load_mark",
    "sample_path",
]

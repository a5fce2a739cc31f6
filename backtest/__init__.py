"""Backtesting for leveraged crypto perpetual futures.

Data flows top to bottom: :class:`Market` (validated OHLCV, mark price, funding, depth) →
:class:`Strategy` (signals, stops, sizing) → :func:`simulate` (numba margin engine) →
:class:`Result` (stats, records) → HTML report.

>>> import backtest
>>> market = backtest.load(backtest.sample_path("BTCUSDT"))  # doctest: +SKIP
"""

from backtest.errors import DataError, DataWarning

__version__ = "0.1.0"

__all__ = ["DataError", "DataWarning", "__version__"]

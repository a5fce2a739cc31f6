"""Sweeps that outgrow one call: a grid's combinations in chunks, statistics only.

Each chunk stacks its combinations' hook outputs and simulates them in one kernel call that keeps
only the statistics (``per_bar=False``), so memory is bounded by the chunk, not the grid: a
grid of 100,000 combinations runs in the memory of a few hundred. Chunks run on threads (the
kernel releases the GIL; each account is simulated on its own, so the result is the same for any
chunking or thread count) or, given a ``dask.distributed`` Client, as tasks on a cluster — the
markets are scattered to the workers once. Either way the statistics equal ``Strategy.run(...)
.stats()`` on the same grid.

>>> from strategies import TrendFollowing                                        # doctest: +SKIP
>>> result = TrendFollowing().sweep(market, fast=range(5, 100), slow=range(100, 400, 10))  # doctest: +SKIP
>>> result.best("sharpe")                                                        # doctest: +SKIP
{'fast': 24, 'slow': 210}

On a cluster (``pip install -e ".[dask]"``)::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")          # or Client() for a local cluster
    result = TrendFollowing().sweep(market, client=client, fast=range(5, 200), slow=range(50, 500))
"""

from __future__ import annotations

import importlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

LOADED_FROM_FILE = "__backtest_loaded_from_file__"  # set by the CLI on strategy files it loads
CHUNK_COLUMN_BARS = 40_000_000  # columns × bars per chunk: a few hundred MB of stacked signals


@dataclass
class SweepResult:
    """Statistics of every combination of a sweep (one row each), and how to get back to one."""

    table: pd.DataFrame
    strategy: object
    market: object
    axes: dict

    def stats(self) -> pd.DataFrame:
        return self.table

    def best(self, metric: str = "sharpe") -> dict:
        """Parameters of the combination with the highest ``metric`` (undefined values skipped)."""
        values = self.table[metric].astype(float)
        if values.notna().sum() == 0:
            raise ValueError(f"{metric} is undefined for every combination")
        label = values.idxmax()
        label = label if isinstance(label, tuple) else (label,)
        return dict(zip(self.axes, label, strict=True))

    def run_best(self, metric: str = "sharpe"):
        """The full :class:`Result` (records, per-bar series, report) of the best combination."""
        return self.strategy.with_params(**self.best(metric)).run(self.market)


def chunk_size_for(n_columns_per_combo: int, n_bars: int) -> int:
    return max(1, CHUNK_COLUMN_BARS // max(1, n_columns_per_combo * n_bars))


def _chunk_stats(market, base, axes, variants, columns) -> pd.DataFrame:
    """Statistics of one chunk of combinations (one kernel call, statistics only)."""
    from backtest.strategy import _simulate_variants

    result = _simulate_variants(market, base, axes, variants, columns, per_bar=False, n_jobs=1)
    return result.stats(frame=True)


def _chunk_stats_packed(market, packed: bytes) -> pd.DataFrame:
    """``_chunk_stats`` on a worker: the strategies arrive as cloudpickle bytes (by value when
    their module cannot be imported there)."""
    import cloudpickle

    return _chunk_stats(market, *cloudpickle.loads(packed))


def _progress(total: int, enabled: bool):
    if not enabled or total < 2 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep", unit="chunk", leave=False)


def _pickle_by_value_if_needed(cls) -> None:
    """Strategies loaded from a file (the CLI's ``file.py:Class``) are not importable on Dask
    workers: ship their module by value."""
    module = sys.modules.get(cls.__module__)
    if module is None:
        return
    from_file = getattr(module, LOADED_FROM_FILE, False) or cls.__module__ == "__main__"
    if not from_file:
        try:
            importlib.import_module(cls.__module__)
        except ImportError:
            from_file = True
    if from_file:
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)


def sweep(strategy, market, *, chunk_size=None, n_jobs=None, client=None, progress=False, **grid):
    """See the module docstring; ``Strategy.sweep`` is the usual entry."""
    from backtest.markets import Markets

    base, axes, variants, columns = strategy.expand(**grid)
    per_combo = len(market.symbols) if isinstance(market, Markets) else 1
    size = chunk_size or chunk_size_for(per_combo, len(market))
    bounds = [(start, min(start + size, len(variants))) for start in range(0, len(variants), size)]
    bar = _progress(len(bounds), progress)
    parts: list[pd.DataFrame | None] = [None] * len(bounds)
    if client is not None:
        _pickle_by_value_if_needed(type(base))
        import cloudpickle
        from dask.distributed import as_completed

        shared = client.scatter(market, broadcast=True)
        futures = {client.submit(_chunk_stats_packed, shared,
                                 cloudpickle.dumps((base, axes, variants[a:b], columns[a:b])),
                                 pure=False): k for k, (a, b) in enumerate(bounds)}
        for future in as_completed(futures):
            parts[futures[future]] = future.result()
            if bar is not None:
                bar.update()
    else:
        workers = n_jobs or os.cpu_count() or 1

        def one(k):
            a, b = bounds[k]
            return _chunk_stats(market, base, axes, variants[a:b], columns[a:b])

        if workers == 1 or len(bounds) == 1:
            for k in range(len(bounds)):
                parts[k] = one(k)
                if bar is not None:
                    bar.update()
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(bounds))) as pool:
                for k, part in enumerate(pool.map(one, range(len(bounds)))):
                    parts[k] = part
                    if bar is not None:
                        bar.update()
    if bar is not None:
        bar.close()
    table = pd.concat(parts)
    if isinstance(columns, pd.MultiIndex):
        table.index = pd.MultiIndex.from_tuples(list(table.index), names=columns.names)
    else:
        table.index.name = columns.name
    return SweepResult(table, base, market, {name: values for name, values in axes.items()}
                       if axes else {})


__all__ = ["SweepResult", "sweep"]

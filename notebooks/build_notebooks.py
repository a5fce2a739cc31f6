"""Writes and executes the example notebooks, saved with their outputs (run: python
notebooks/build_notebooks.py, needs the ``notebooks`` extra); the tests execute them again and
check the committed files match this script."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    new_markdown_cell("# Quickstart\n\nLoad the sample market, run the flagship strategy, read its "
                      "statistics and look at its report — the whole flow in a few cells. The sample "
                      "data is **synthetic** (see `data/README.md`): learn the tool on it, do not "
                      "judge a strategy by it."),
    new_code_cell("import backtest\nfrom strategies import TrendFollowing\n\n"
                  "market = backtest.load(backtest.sample_path('BTCUSDT'))\nmarket"),
    new_markdown_cell("A strategy is a class: parameters are class attributes, hooks return signals, "
                      "stops and sizes. `run` accepts lists to sweep a grid in one vectorized call."),
    new_code_cell("grid = TrendFollowing().run(market, fast=[12, 24, 48], slow=[120, 240])\n"
                  "stats = grid.stats()\n"
                  "stats[['total_return', 'sharpe', 'max_drawdown', 'trades', 'liquidations', "
                  "'funding_paid']]"),
    new_markdown_cell("Pick the best column by a metric you name — here the Sharpe ratio, the "
                      "*highest* value — and run it alone. A result shows its key metrics."),
    new_code_cell("metric = 'sharpe'\n"
                  "fast, slow = stats[metric].idxmax()\n"
                  "print(f'best by {metric}: fast={fast}, slow={slow} ({stats[metric].max():.3f})')\n"
                  "best = TrendFollowing(fast=fast, slow=slow).run(market)\n"
                  "best"),
    new_code_cell("best.trades.tail()"),
    new_markdown_cell("`best.plot()` gives the interactive equity and drawdown chart (zoom, hover, "
                      "toggle series) when the notebook runs; the full report is one self-contained "
                      "HTML file."),
    new_code_cell("best.plot()"),
    new_code_cell("from pathlib import Path\n\n"
                  "path = best.report(Path('..') / 'reports' / 'quickstart.html', force=True)\n"
                  "print(f'report: {path} ({path.stat().st_size / 1e6:.1f} MB, open it in a browser)')"),
]

LEVERAGE = [
    new_markdown_cell(
        "# Leverage and liquidation\n\n"
        "The same long position in ETH at 1x, 3x, 10x and 25x, through the synthetic replay of the "
        "10 October 2025 cascade (ETH about −22% from the day's high in one hourly bar). Each "
        "column commits all its equity as isolated margin, so notional = equity × leverage and the "
        "liquidation price sits roughly 1/leverage below the entry."),
    new_code_cell("import numpy as np\nimport pandas as pd\nimport backtest\nfrom backtest import Strategy\n\n"
                  "market = backtest.load(backtest.sample_path('ETHUSDT'))['2025-10-03':'2025-10-16']\nmarket"),
    new_code_cell("class HoldLong(Strategy):\n"
                  "    \"\"\"Buy on the first bar and hold: the simplest leveraged bet.\"\"\"\n"
                  "    fees = 0.0005\n\n"
                  "    def signals(self, market):\n"
                  "        entries = np.zeros(len(market), dtype=bool)\n"
                  "        entries[0] = True\n"
                  "        return {'entries': entries}\n\n"
                  "result = HoldLong().run(market, leverage=[1.0, 3.0, 10.0, 25.0])\n"
                  "result.stats()[['total_return', 'max_drawdown', 'liquidations', 'funding_paid', "
                  "'fees_paid', 'max_effective_leverage', 'worst_margin_ratio']]"),
    new_markdown_cell("Where each account died: the liquidation price, the trader's loss (capped at "
                      "the isolated margin), the clearance fee and any insurance-fund shortfall."),
    new_code_cell("result.liquidations"),
    new_code_cell("entry = result.trades.groupby('col')['entry_price'].first()\n"
                  "tiers = backtest.load_tiers('ETHUSDT')\n"
                  "for leverage in [1.0, 3.0, 10.0, 25.0]:\n"
                  "    qty = 10_000 * leverage / entry[leverage]\n"
                  "    margin = 10_000\n"
                  "    lp = backtest.liquidation_price(1, entry[leverage], qty, margin, 0.005)\n"
                  "    print(f'{leverage:>4}x: entry {entry[leverage]:.2f}, liquidation ≈ {lp:.2f} '\n"
                  "          f'({lp / entry[leverage] - 1:+.1%})')"),
    new_markdown_cell("The cascade bar: ETH's low against those liquidation prices. 25x died a day "
                      "earlier on an ordinary dip (a −4% move is enough); 10x survived until 21:00 on 10 October; "
                      "3x lost heavily but lived; 1x only lost what ETH lost. Funding is paid every 8 h on the "
                      "whole notional, so the higher the leverage, the larger the funding bill per unit of equity."),
    new_code_cell("market.ohlcv['2025-10-10 19:00':'2025-10-11 00:00']"),
    new_code_cell("import matplotlib.pyplot as plt\n\n"
                  "fig, ax = plt.subplots(figsize=(10, 4))\n"
                  "(result.equity / 10_000).plot(ax=ax, title='equity / initial cash')\n"
                  "ax.axvline(pd.Timestamp('2025-10-10 21:00', tz='UTC'), color='red', ls='--')\n"
                  "plt.show()"),
]


CASCADE = [
    new_markdown_cell(
        "# A cross-margin account killed by its altcoin leg\n\n"
        "On 10 October 2025 cross-margin accounts holding BTC, ETH and altcoins were liquidated "
        "because the altcoin leg collapsed far beyond BTC's fall and dragged the shared collateral "
        "down with it. Here a 5x long portfolio — BTC, ETH and SOL, the account's leverage split "
        "evenly — rides the **synthetic** replay of that day (see `data/README.md`), once in one "
        "cross account and once with each leg isolated."),
    new_code_cell("import numpy as np\nimport pandas as pd\nimport backtest\nfrom backtest import Strategy\n\n"
                  "markets = backtest.load_markets('../data/*-1h.parquet')['2025-10-08':'2025-10-14']\n"
                  "markets"),
    new_markdown_cell("The cascade day per instrument: the altcoin falls furthest and its order book "
                      "thins most (2% depth against the day before)."),
    new_code_cell("rows = {}\nfor symbol in markets:\n"
                  "    day = markets[symbol]['2025-10-10':'2025-10-10 23:00']\n"
                  "    before = markets[symbol]['2025-10-09':'2025-10-09 23:00']\n"
                  "    rows[symbol] = {'high -> low': day.low.min() / day.high.max() - 1,\n"
                  "                    'depth vs day before': day.depth.min() / before.depth.median()}\n"
                  "pd.DataFrame(rows).T.style.format('{:.1%}')"),
    new_code_cell("class HoldLong(Strategy):\n"
                  "    \"\"\"Buy every instrument on the first bar and hold.\"\"\"\n"
                  "    fees = 0.0005\n\n"
                  "    def signals(self, market):\n"
                  "        entries = np.zeros(len(market), dtype=bool)\n"
                  "        entries[0] = True\n"
                  "        return {'entries': entries}\n\n"
                  "cross = HoldLong(leverage=5.0, margin_mode='cross').run(markets)\n"
                  "isolated = HoldLong(leverage=5.0, margin_mode='isolated').run(markets)\n"
                  "pd.DataFrame({'cross': cross.stats(), 'isolated': isolated.stats()}).loc[\n"
                  "    ['total_return', 'max_drawdown', 'liquidations', 'insurance_shortfall', 'fees_paid']]"),
    new_markdown_cell("Which leg killed the cross account: at the moment its margin balance met its "
                      "maintenance margin along the joint path of the three instruments, every leg "
                      "was closed; the one that lost the most is the trigger."),
    new_code_cell("cross.liquidation_triggers()"),
    new_code_cell("cross.liquidations[['symbol', 'time', 'price', 'loss', 'fee', 'insurance_shortfall']]"),
    new_markdown_cell("Per instrument, cross against isolated: isolated margin lets the altcoin leg "
                      "die alone while the others keep their margin."),
    new_code_cell("pd.concat({'cross': cross.instruments(), 'isolated': isolated.instruments()})[\n"
                  "    ['pnl', 'liquidations', 'time_in_market']]"),
    new_code_cell("saved = isolated.stats()['final_equity'] - cross.stats()['final_equity']\n"
                  "print(f'isolated margin kept {saved:,.0f} USDT of 10,000 that the cross account lost')"),
    new_code_cell("import matplotlib.pyplot as plt\n\n"
                  "fig, ax = plt.subplots(figsize=(10, 4))\n"
                  "pd.DataFrame({'cross': cross.equity, 'isolated': isolated.equity}).plot(\n"
                  "    ax=ax, title='5x BTC + ETH + SOL: equity through the cascade')\n"
                  "ax.axvline(pd.Timestamp('2025-10-10 21:00', tz='UTC'), color='red', ls='--')\n"
                  "plt.show()"),
]


SURVIVES = [
    new_markdown_cell(
        "# Which leverage survives?\n\n"
        "One price history is one draw of what could have happened. Here a leveraged hold of ETH "
        "(synthetic sample, see `data/README.md`) runs on bootstrap paths of that history at six "
        "leverages; then the flagship strategy is walked forward, its grid checked for overfitting, "
        "and a crash injected to see which leverage lives through it."),
    new_code_cell("import numpy as np\nimport pandas as pd\nimport backtest\nfrom backtest import Strategy\n"
                  "from strategies import TrendFollowing\n\n"
                  "market = backtest.load(backtest.sample_path('ETHUSDT'))\n\n"
                  "class HoldLong(Strategy):\n"
                  "    \"\"\"Buy on the first bar and hold.\"\"\"\n"
                  "    fees = 0.0005\n\n"
                  "    def signals(self, market):\n"
                  "        entries = np.zeros(len(market), dtype=bool)\n"
                  "        entries[0] = True\n"
                  "        return {'entries': entries}"),
    new_markdown_cell("## Monte Carlo ruin against leverage\n\nA stationary block bootstrap (blocks of a "
                      "week on average) keeps each bar's gap, wick, funding, mark premium and depth "
                      "together. Every (path, leverage) is its own account."),
    new_code_cell("leverages = [1, 2, 3, 5, 10, 20]\n"
                  "mc = backtest.monte_carlo(HoldLong(), market, leverage=leverages, n_paths=100, seed=0)\n"
                  "summary = mc.summary()\n"
                  "summary[['p_liquidation', 'p_ruin', 'p_drawdown', 'final_equity_q05', 'final_equity_median']]"),
    new_markdown_cell("The leverage survival curve, with 95% Wilson intervals for the path count, and "
                      "the Kelly leverage of the unlevered hold (mean over variance of its per-bar "
                      "returns at 1x, `mc.kelly_leverage`) and half of it. `backtest montecarlo "
                      "--report page.html` draws the same chart, interactive."),
    new_code_cell("import matplotlib.pyplot as plt\n"
                  "from backtest.report.research import wilson_interval\n\n"
                  "kelly = mc.kelly_leverage\n"
                  "fig, ax = plt.subplots(figsize=(8, 4))\n"
                  "for column in ['p_liquidation', 'p_ruin']:\n"
                  "    low, high = wilson_interval(summary[column], summary['paths'])\n"
                  "    ax.plot(summary.index, summary[column], marker='o', label=column)\n"
                  "    ax.fill_between(summary.index, low, high, alpha=0.2)\n"
                  "for k, style in ((kelly, '--'), (kelly / 2, ':')):\n"
                  "    if 0 < k < max(leverages):\n"
                  "        ax.axvline(k, color='grey', ls=style)\n"
                  "ax.set(xlabel='leverage', ylabel='probability over 100 paths', xscale='log',\n"
                  "       title=f'Leveraged ETH hold: Kelly leverage {kelly:.2f}')\n"
                  "ax.legend()\nplt.show()"),
    new_markdown_cell("The luck of the order: the flagship's own trades, compounded in 1,000 random "
                      "orders. The final equity is the same whatever the order; the drawdown on the "
                      "way is not."),
    new_code_cell("from backtest.montecarlo import reshuffle_trades\n\n"
                  "flagship = TrendFollowing().run(market)\n"
                  "orders = reshuffle_trades(flagship, n_paths=1000, seed=0)\n"
                  "orders[['min_equity', 'max_drawdown']].describe(percentiles=[0.05, 0.5, 0.95]).T"),
    new_markdown_cell("## Walk-forward\n\nParameters chosen on 180 days, traded on the next 60, capital "
                      "carried from fold to fold."),
    new_code_cell("wf = backtest.walk_forward(TrendFollowing(), market, train=24 * 180, test=24 * 60,\n"
                  "                           fast=[12, 24, 48], slow=[120, 240])\n"
                  "print(f'degradation (out-of-sample / in-sample Sharpe): {wf.degradation():.2f}')\n"
                  "wf.folds[['test_start', 'fast', 'slow', 'in_sample', 'out_of_sample', 'end_equity']]"),
    new_markdown_cell("## Is the best of the grid real?\n\nThe probability of backtest overfitting "
                      "(CSCV; noise gives about 0.5) and the deflated Sharpe ratio of the grid's best."),
    new_code_cell("from backtest.overfitting import deflated_sharpe, probability_of_overfitting\n\n"
                  "grid = TrendFollowing().run(market, fast=[6, 12, 24, 48, 96], slow=[120, 240, 360])\n"
                  "print(f'PBO {probability_of_overfitting(grid.returns).pbo:.2f}, '\n"
                  "      f'deflated Sharpe {deflated_sharpe(grid.returns):.2f}')"),
    new_markdown_cell("## Stress\n\nA crash injected into the same history: 30% in six hours with a 5% "
                      "wick, the mark 2% further, the book ten times thinner, half of it recovered."),
    new_code_cell("from backtest.stress import Shock, stress_test\n\n"
                  "crash = Shock(at='2024-02-01', drop=0.3, bars=6, wick=0.05, mark_divergence=0.02,\n"
                  "              depth_factor=0.1, recovery=0.5)\n"
                  "stress_test(HoldLong(), market, {'crash': crash}, leverage=leverages)"),
    new_markdown_cell("## The hedge the exchange takes away (auto-deleveraging)\n\n"
                      "A cross account long SOL and short ETH at 20x: a hedged book. Both crash "
                      "50%; the short's profit carries the long. But when liquidations empty the "
                      "insurance fund the exchange auto-deleverages: it closes the most profitable "
                      "positions on the other side at the bankruptcy price of the liquidated ones. "
                      "Here the ETH short is taken away a quarter of the way down, and the SOL "
                      "long, alone, falls on — how many hedged accounts died in October 2025."),
    new_code_cell("from backtest.stress import inject_markets\n\n"
                  "markets = backtest.load_markets('../data/*-1h.parquet')['2025-05-01':'2025-07-01']\n"
                  "at = '2025-06-01'\n"
                  "book = {}\n"
                  "for label, adl_at in (('hedge kept', None), ('hedge auto-deleveraged', 0.25)):\n"
                  "    shocked, adl = inject_markets(markets, {\n"
                  "        'SOLUSDT': Shock(at=at, drop=0.5, bars=6),\n"
                  "        'ETHUSDT': Shock(at=at, drop=0.5, bars=6, adl_at=adl_at)})\n"
                  "    entries = pd.DataFrame(False, index=shocked.index, columns=['SOLUSDT', 'ETHUSDT'])\n"
                  "    short_entries = entries.copy()\n"
                  "    entries.loc['2025-05-30 00:00', 'SOLUSDT'] = True\n"
                  "    short_entries.loc['2025-05-30 00:00', 'ETHUSDT'] = True\n"
                  "    book[label] = backtest.simulate(\n"
                  "        shocked, entries=entries, short_entries=short_entries, size=50_000.0,\n"
                  "        size_type='notional', leverage=20.0, margin_mode='cross', group_by=True,\n"
                  "        fees=0.0005, adl_price=adl)\n"
                  "pd.DataFrame({k: r.stats()[['final_equity', 'liquidations', 'max_drawdown']]\n"
                  "              for k, r in book.items()})"),
    new_code_cell("book['hedge auto-deleveraged'].trades[['symbol', 'side', 'entry_time', 'exit_time', "
                  "'exit_price', 'exit_reason', 'pnl']]"),
]


NOTEBOOKS = {"quickstart.ipynb": QUICKSTART, "leverage_and_liquidation.ipynb": LEVERAGE,
             "cross_margin_cascade.ipynb": CASCADE, "which_leverage_survives.ipynb": SURVIVES}


def build(name: str):
    """The notebook ``name`` as written here, without outputs."""
    return new_notebook(cells=NOTEBOOKS[name], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def execute(notebook, kernels_dir: Path, timeout: int = 600):
    """Run ``notebook`` top to bottom in a kernel of *this* interpreter (so it sees the installed
    package), from the notebooks folder; returns it with its outputs."""
    import json
    import sys

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    spec_dir = Path(kernels_dir) / "backtest-notebooks"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "backtest", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    manager = KernelSpecManager(kernel_dirs=[str(kernels_dir)])
    kernel = KernelManager(kernel_name="backtest-notebooks", kernel_spec_manager=manager)
    NotebookClient(notebook, km=kernel, timeout=timeout,
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return notebook


def main() -> None:
    """Write every notebook with its outputs (so it reads on GitHub), executed here."""
    import tempfile

    with tempfile.TemporaryDirectory() as kernels:
        for name in NOTEBOOKS:
            notebook = execute(build(name), Path(kernels))
            notebook.metadata.pop("widgets", None)
            for cell in notebook.cells:  # plotly's inline copy of its library: 4.8 MB a chart
                for output in cell.get("outputs", []):
                    if "application/vnd.plotly.v1+json" in output.get("data", {}):
                        output["data"].pop("text/html", None)
            nbformat.write(notebook, HERE / name)
            print(f"{name}: {(HERE / name).stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()

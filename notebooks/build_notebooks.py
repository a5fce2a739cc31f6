"""Writes the example notebooks (run: python notebooks/build_notebooks.py); tests execute them."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    new_markdown_cell("# Quickstart\n\nLoad the sample market, run the flagship strategy, read its "
                      "statistics and look at its report — the whole flow in five cells. The sample "
                      "data is **synthetic** (see `data/README.md`)."),
    new_code_cell("import backtest\nfrom strategies import TrendFollowing\n\n"
                  "market = backtest.load(backtest.sample_path('BTCUSDT'))\nmarket"),
    new_markdown_cell("A strategy is a class: parameters are class attributes, hooks return signals, "
                      "stops and sizes. `run` accepts lists to sweep a grid in one vectorized call."),
    new_code_cell("result = TrendFollowing().run(market, fast=[12, 24, 48], slow=[120, 240])\n"
                  "result.stats()[['total_return', 'sharpe', 'max_drawdown', 'trades', "
                  "'liquidations', 'funding_paid']]"),
    new_code_cell("best = TrendFollowing(fast=48, slow=120).run(market)\n"
                  "best.stats()"),
    new_code_cell("best.trades.tail()"),
    new_markdown_cell("The report is one self-contained HTML file; here it is inline."),
    new_code_cell("from pathlib import Path\nfrom IPython.display import HTML, display\n\n"
                  "path = best.report(Path('..') / 'reports' / 'quickstart.html')\n"
                  "display(HTML(f'<iframe srcdoc=\"{path.read_text().replace(chr(34), \"&quot;\")}\" "
                  "width=\"100%\" height=\"600\"></iframe>'))"),
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
    new_code_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n\n"
                  "ax = (result.equity / 10_000).plot(figsize=(10, 4), title='equity / initial cash')\n"
                  "ax.axvline(pd.Timestamp('2025-10-10 21:00', tz='UTC'), color='red', ls='--')\nplt.close()"),
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
                  "    ['pnl', 'liquidations', 'exposure']]"),
    new_code_cell("saved = isolated.stats()['final_equity'] - cross.stats()['final_equity']\n"
                  "print(f'isolated margin kept {saved:,.0f} USDT of 10,000 that the cross account lost')"),
    new_code_cell("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n\n"
                  "ax = pd.DataFrame({'cross': cross.equity, 'isolated': isolated.equity}).plot(\n"
                  "    figsize=(10, 4), title='5x BTC + ETH + SOL: equity through the cascade')\n"
                  "ax.axvline(pd.Timestamp('2025-10-10 21:00', tz='UTC'), color='red', ls='--')\nplt.close()"),
]


def main() -> None:
    for name, cells in (("quickstart.ipynb", QUICKSTART), ("leverage_and_liquidation.ipynb", LEVERAGE),
                        ("cross_margin_cascade.ipynb", CASCADE)):
        notebook = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(notebook, HERE / name)


if __name__ == "__main__":
    main()

"""``backtest data download``: recorded exchange responses (no network, no ccxt) written as a
folder that ``backtest.load`` reads back with funding, mark and tiers."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.data import download as dl
from backtest.data.download import DownloadError, download
from backtest.engine.margin import load_tiers, resolve_tiers

from .fake_exchange import (
    AuthenticationError,
    FakeExchange,
    NetworkError,
    RateLimitExceeded,
    RequestTimeout,
    sample_records,
    xrp_records,
)

XRP, BTC = "XRP/USDT:USDT", "BTC/USDT:USDT"
HOUR_MS = 3_600_000
SINCE = "2021-11-01"


@pytest.fixture(scope="module")
def xrp(shared_data):
    return {XRP: xrp_records(shared_data)}


@pytest.fixture(scope="module")
def btc():
    return {BTC: sample_records(1500)}


def fetch(records, out, symbol="XRPUSDT", since=SINCE, **kwargs):
    exchange = kwargs.pop("exchange", None) or FakeExchange(records, **kwargs.pop("fake", {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", backtest.DataWarning)  # tests that expect one say so
        kwargs.setdefault("progress", False)
        done = download([symbol], exchange=exchange, since=since, out=out, sleep=lambda s: None,
                        **kwargs)
    return done[0], exchange


def load_quietly(path, **kwargs):
    """``backtest.load`` of the XRP records, whose mark and funding cover part of the bars."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*series covers", category=backtest.DataWarning)
        return backtest.load(path, **kwargs)


def stored(folder, name="candles.parquet") -> pd.DataFrame:
    return pd.read_parquet(folder / name)


# ----- the folder round-trips -----------------------------------------------------------------


def test_the_folder_loads_as_the_recorded_data_with_mark_and_funding(xrp, shared_data, tmp_path):
    done, _ = fetch(xrp, tmp_path)
    assert done.folder == tmp_path / "binanceusdm" / "XRPUSDT-1h"
    assert sorted(p.name for p in done.folder.iterdir()) == [
        "candles.parquet", "funding.parquet", "mark.parquet", "tiers.json"]
    market = load_quietly(done.folder)
    folder = shared_data / "freqtrade"
    expected = load_quietly(folder / "XRP_USDT_USDT-1h-futures.feather",
                             funding=folder / "XRP_USDT_USDT-8h-funding_rate.feather",
                             mark=folder / "XRP_USDT_USDT-1h-mark.feather")
    assert market.symbol == "XRPUSDT"
    pd.testing.assert_frame_equal(market.ohlcv, expected.ohlcv)
    pd.testing.assert_frame_equal(market.mark, expected.mark)
    pd.testing.assert_series_equal(market.funding, expected.funding)
    assert market.funding.dropna().size == 10  # 11-18 00:00 → 11-21 00:00, every 8 h


def test_funding_keeps_the_exchanges_millisecond_times(xrp, shared_data, tmp_path):
    done, _ = fetch(xrp, tmp_path)
    rates = backtest.load_funding(done.folder / "funding.parquet")
    recorded = backtest.load_funding(shared_data / "freqtrade" / "XRP_USDT_USDT-8h-funding_rate.feather")
    pd.testing.assert_series_equal(rates, recorded)
    assert rates.index[0] == pd.Timestamp("2021-11-18 00:00:00.017", tz="UTC")


def test_the_tiers_file_gives_the_exchanges_table(xrp, shared_data, tmp_path):
    done, _ = fetch(xrp, tmp_path)
    table = load_tiers(done.folder / "tiers.json", symbol="XRPUSDT")
    expected = load_tiers(shared_data / "binance_leverage_tiers.json", symbol="XRPUSDT")
    pd.testing.assert_frame_equal(table, expected)
    assert dl.tiers_path(done.folder) == done.folder / "tiers.json"
    assert dl.downloaded_tiers([done.folder]) == str(done.folder / "tiers.json")
    # what `backtest run` hands the engine: the path, resolved for the market's symbol
    pd.testing.assert_frame_equal(resolve_tiers(str(dl.tiers_path(done.folder)), "XRPUSDT"), expected)


def test_the_folder_validates_from_the_command(xrp, tmp_path, capsys):
    done, _ = fetch(xrp, tmp_path)
    assert main(["data", "validate", str(done.folder)]) == 0
    assert "OK, 100 bars" in capsys.readouterr().out


def test_a_symbol_folder_is_told_from_a_folder_of_data_files(xrp, tmp_path):
    done, _ = fetch(xrp, tmp_path)
    assert dl.is_symbol_folder(done.folder)
    assert not dl.is_symbol_folder(tmp_path / "binanceusdm")
    assert dl.tiers_path(tmp_path) is None
    assert dl.folder_files(done.folder)["mark"] == done.folder / "mark.parquet"


def test_files_record_exchange_symbol_and_timeframe(xrp, tmp_path):
    done, _ = fetch(xrp, tmp_path)
    attrs = stored(done.folder).attrs
    assert attrs["perp_backtest.exchange"] == "binanceusdm"
    assert attrs["perp_backtest.market"] == XRP
    assert attrs["perp_backtest.timeframe"] == "1h"
    assert "binanceusdm XRP/USDT:USDT" in load_quietly(done.folder).description


# ----- pagination, retries, gaps ---------------------------------------------------------------


def test_pages_move_since_by_the_last_bar_plus_one(btc, tmp_path):
    done, fake = fetch(btc, tmp_path, "BTCUSDT", since="2024-01-01", fake={"page": 500})
    calls = fake.data_calls("candles")
    start = pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000
    assert [since for *_, since, _ in calls] == [start + k * 500 * HOUR_MS for k in range(4)]
    assert done.added["candles"] == 1500 and done.rows["candles"] == 1500  # 3 full pages + 1 empty
    pd.testing.assert_frame_equal(backtest.load(done.folder).ohlcv,
                                  backtest.load(backtest.sample_path("BTCUSDT"))[:1500].ohlcv)


def test_the_bar_still_forming_is_not_stored(btc, tmp_path):
    records = btc[BTC]["candles"]
    now = records[99][0] + HOUR_MS // 2  # bar 99 opened half an hour ago
    done, _ = fetch(btc, tmp_path, "BTCUSDT", since="2024-01-01", fake={"now_ms": now},
                    kinds=("candles",))
    assert done.rows["candles"] == 99


def test_until_is_exclusive(btc, tmp_path):
    done, fake = fetch(btc, tmp_path, "BTCUSDT", since="2024-01-01", until="2024-01-03",
                       kinds=("candles",))
    times = stored(done.folder)["timestamp"]
    assert times.iloc[-1] == pd.Timestamp("2024-01-02 23:00", tz="UTC") and len(times) == 48
    assert len(fake.data_calls()) == 1  # the page reached --until: no further request


def test_a_rate_limit_is_waited_out_and_retried(btc, tmp_path):
    waits = []
    fake = FakeExchange(btc, faults={3: RateLimitExceeded("binanceusdm 429 Too Many Requests")})
    done = download(["BTCUSDT"], exchange=fake, since="2024-01-01", out=tmp_path,
                    sleep=waits.append, progress=False)[0]
    assert waits == [1.0]
    assert done.rows["candles"] == 1500
    assert fake.data_calls("candles")[1][2] == fake.data_calls("candles")[2][2]  # the same page again


def test_rate_limits_that_do_not_end_stop_with_one_line(btc, tmp_path):
    fake = FakeExchange(btc, stop_after=2, stop_with=RateLimitExceeded("429"))
    waits = []
    with pytest.raises(DownloadError, match="kept refusing requests"):
        download(["BTCUSDT"], exchange=fake, since="2024-01-01", out=tmp_path, sleep=waits.append,
                 progress=False)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_missing_bars_are_reported_not_filled(xrp, tmp_path):
    rows = xrp[XRP]["candles"]
    gone = {rows[k][0] for k in (30, 31, 32)}
    with pytest.warns(backtest.DataWarning,
                      match=r"XRP/USDT:USDT candles: .* no 1h bar for 3 bar\(s\); first missing "
                            r"bar 2021-11-18 07:00:00\+00:00"):
        done = download(["XRPUSDT"], exchange=FakeExchange(xrp, missing={"candles": gone}),
                        since=SINCE, out=tmp_path, progress=False, kinds=("candles",))[0]
    assert done.rows["candles"] == 97 and done.gaps == {"candles": 3}
    with pytest.warns(backtest.DataWarning, match="3 missing bar"):
        backtest.load(done.folder)


# ----- incremental and resumable ----------------------------------------------------------------


def test_a_progress_bar_does_not_change_the_files(btc, tmp_path):
    quiet, _ = fetch(btc, tmp_path / "quiet", "BTCUSDT", since="2024-01-01", kinds=("candles",))
    shown, _ = fetch(btc, tmp_path / "shown", "BTCUSDT", since="2024-01-01", kinds=("candles",),
                     progress=True)
    pd.testing.assert_frame_equal(stored(quiet.folder), stored(shown.folder))


def test_a_second_run_fetches_only_what_is_new(btc, tmp_path):
    first, _ = fetch(btc, tmp_path, "BTCUSDT", since="2024-01-01", until="2024-01-20")
    last = stored(first.folder)["timestamp"].iloc[-1]
    funding_last = stored(first.folder, "funding.parquet")["timestamp"].iloc[-1]
    second, fake = fetch(btc, tmp_path, "BTCUSDT", since=None)
    assert fake.data_calls("candles")[0][2] == last.value // 1_000_000 + HOUR_MS
    assert fake.data_calls("funding")[0][2] == funding_last.value // 1_000_000 + 1
    assert not fake.data_calls("tiers")  # tiers.json is kept
    assert second.rows["candles"] == 1500 and second.added["candles"] == 1500 - 19 * 24


def test_an_interrupted_run_keeps_its_pages_and_the_next_run_finishes_it(btc, tmp_path):
    whole, _ = fetch(btc, tmp_path / "one-shot", "BTCUSDT", since="2024-01-01")
    fake = FakeExchange(btc, stop_after=3, stop_with=KeyboardInterrupt())  # markets + 2 pages
    with pytest.raises(KeyboardInterrupt):
        download(["BTCUSDT"], exchange=fake, since="2024-01-01", out=tmp_path / "resumed",
                 progress=False)
    folder = tmp_path / "resumed" / "binanceusdm" / "BTCUSDT-1h"
    assert len(stored(folder)) == 1000
    assert not list(folder.glob(".*.tmp"))  # no half-written file left behind
    again, fake = fetch(btc, tmp_path / "resumed", "BTCUSDT", since="2024-01-01")
    assert fake.data_calls("candles")[0][2] == stored(whole.folder)["timestamp"].iloc[1000].value // 1_000_000
    for name in ("candles.parquet", "mark.parquet", "funding.parquet"):
        pd.testing.assert_frame_equal(stored(folder, name), stored(whole.folder, name))
    assert json.loads((folder / "tiers.json").read_text()) == json.loads(
        (whole.folder / "tiers.json").read_text())


def test_a_network_failure_mid_run_keeps_what_was_written(btc, tmp_path):
    fake = FakeExchange(btc, stop_after=2, stop_with=RequestTimeout("binanceusdm GET timed out"))
    with pytest.raises(DownloadError, match=r"cannot reach binanceusdm: .*timed out \(no network\?\)"):
        download(["BTCUSDT"], exchange=fake, since="2024-01-01", out=tmp_path, progress=False)
    assert len(stored(tmp_path / "binanceusdm" / "BTCUSDT-1h")) == 500


def test_an_earlier_since_fetches_the_part_before_the_stored_rows(btc, tmp_path):
    fetch(btc, tmp_path, "BTCUSDT", since="2024-01-10", until="2024-01-20", kinds=("candles",))
    done, fake = fetch(btc, tmp_path, "BTCUSDT", since="2024-01-01", until="2024-01-20",
                       kinds=("candles",))
    assert done.rows["candles"] == 19 * 24 and done.added["candles"] == 9 * 24
    assert len(fake.data_calls()) == 1


# ----- symbols and exchanges --------------------------------------------------------------------


@pytest.mark.parametrize("given", ["XRPUSDT", "xrpusdt", "XRP/USDT:USDT", "XRP/USDT"])
def test_symbols_map_to_the_linear_perpetual(xrp, tmp_path, given):
    done, fake = fetch(xrp, tmp_path, given, kinds=("candles",))
    assert done.symbol == "XRPUSDT" and fake.data_calls()[0][1] == XRP


def test_an_unknown_symbol_lists_close_matches(xrp, tmp_path):
    with pytest.raises(DownloadError, match=r"unknown symbol 'XRPUSTD' on binanceusdm .*close: "
                                            r".*XRPUSDT"):
        fetch(xrp, tmp_path, "XRPUSTD")


def test_an_exchange_without_funding_history_is_refused(xrp, tmp_path):
    fake = FakeExchange(xrp, has={"fetchFundingRateHistory": False})
    with pytest.raises(DownloadError, match=r"cannot download funding-rate history .*"
                                            r"has\['fetchFundingRateHistory'\] is false"):
        fetch(xrp, tmp_path, exchange=fake)


def test_no_network_is_one_line(xrp, tmp_path):
    fake = FakeExchange(xrp, faults={1: NetworkError("binanceusdm GET https://fapi.binance.com "
                                                     "Name or service not known")})
    with pytest.raises(DownloadError, match=r"^cannot reach binanceusdm: .* \(no network\?\)$"):
        fetch(xrp, tmp_path, exchange=fake)


def test_tiers_refused_for_want_of_a_key_warn_and_the_rest_is_written(xrp, tmp_path):
    fake = FakeExchange(xrp, tiers_error=AuthenticationError('binanceusdm requires "apiKey"'))
    with pytest.warns(backtest.DataWarning, match="leverage tiers not downloaded.*BACKTEST_API_KEY"):
        done = download(["XRPUSDT"], exchange=fake, since=SINCE, out=tmp_path, progress=False)[0]
    assert done.tiers == "no tiers" and dl.tiers_path(done.folder) is None
    assert dl.is_symbol_folder(done.folder)


def test_tiers_without_maintenance_amounts_get_binances(xrp, shared_data, tmp_path):
    records = json.loads(json.dumps(xrp))  # a deep copy
    for tier in records[XRP]["tiers"][XRP]:
        tier["info"] = {}  # as exchanges that publish only the rates
    done, _ = fetch(records, tmp_path, kinds=("tiers",))
    pd.testing.assert_frame_equal(
        load_tiers(done.folder / "tiers.json", symbol="XRPUSDT"),
        load_tiers(shared_data / "binance_leverage_tiers.json", symbol="XRPUSDT"), atol=1e-6)


def test_a_timeframe_the_exchange_lacks_is_refused(xrp, tmp_path):
    with pytest.raises(DownloadError, match="has no timeframe '2h'"):
        fetch(xrp, tmp_path, timeframe="2h")


def test_the_first_run_needs_since(xrp, tmp_path):
    with pytest.raises(DownloadError, match="nothing stored yet; give --since"):
        fetch(xrp, tmp_path, since=None)


def test_timeframes_parse_to_milliseconds():
    assert dl.timeframe_ms("1h") == HOUR_MS and dl.timeframe_ms("4h") == 4 * HOUR_MS
    with pytest.raises(DownloadError, match="timeframe '1M'"):
        dl.timeframe_ms("1M")


# ----- the command --------------------------------------------------------------------------------


@pytest.fixture()
def fake_exchange(monkeypatch, xrp):
    made = []

    def make(name):
        made.append(name)
        fake = FakeExchange(xrp)
        fake.id = name
        return fake

    monkeypatch.setattr(dl, "make_exchange", make)
    return made


def test_the_command_downloads_into_the_folder_layout(fake_exchange, tmp_path, capsys):
    code = main(["data", "download", "XRPUSDT", "--exchange", "bybit", "--since", SINCE,
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and fake_exchange == ["bybit"]
    folder = tmp_path / "bybit" / "XRPUSDT-1h"
    assert "XRPUSDT" in out and "candles +100" in out and f"backtest run --data {folder}" in out
    assert len(load_quietly(folder)) == 100


def test_the_command_says_how_to_install_ccxt(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ccxt", None)  # import ccxt fails
    code = main(["data", "download", "BTCUSDT", "--since", SINCE, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert 'pip install -e ".[data]"' in err[0]


def test_the_command_fails_in_one_line_without_network(monkeypatch, xrp, tmp_path, capsys):
    monkeypatch.setattr(dl, "make_exchange", lambda name: FakeExchange(
        xrp, faults={1: RequestTimeout("binanceusdm GET https://fapi.binance.com timed out")}))
    code = main(["data", "download", "XRPUSDT", "--since", SINCE, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: cannot reach binanceusdm") and err[0].endswith("(no network?)")


def test_the_command_refuses_an_unknown_symbol_in_one_line(fake_exchange, tmp_path, capsys):
    code = main(["data", "download", "DOGEUSDT", "--since", SINCE, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown symbol 'DOGEUSDT'" in err[0]


def test_the_command_reports_an_interruption(monkeypatch, btc, tmp_path, capsys):
    monkeypatch.setattr(dl, "make_exchange", lambda name: FakeExchange(
        btc, stop_after=2, stop_with=KeyboardInterrupt()))
    code = main(["data", "download", "BTCUSDT", "--since", "2024-01-01", "--out", str(tmp_path)])
    assert code == 130
    assert len(stored(tmp_path / "binanceusdm" / "BTCUSDT-1h")) == 500


def test_no_exchange_is_built_for_a_bad_date(fake_exchange, tmp_path):
    with pytest.raises(DownloadError, match="--since 'soon': not a date"):
        download(["XRPUSDT"], exchange="binanceusdm", since="soon", out=tmp_path)
    assert fake_exchange == []


def test_unknown_exchange_names_close_ones(monkeypatch):
    ccxt = type(sys)("ccxt")
    ccxt.exchanges = ["binance", "binanceusdm", "bybit", "okx"]
    monkeypatch.setitem(sys.modules, "ccxt", ccxt)
    with pytest.raises(DownloadError, match="unknown exchange 'binanceusd'.*binanceusdm"):
        dl.make_exchange("binanceusd")
    assert np.isfinite(dl.timeframe_ms("1d"))


def test_run_on_a_downloaded_folder_uses_its_funding_mark_and_tiers(fake_exchange, tmp_path,
                                                                    monkeypatch, capsys):
    """The README's three commands: download, then ``backtest run --data <folder>`` gives the
    same numbers as the Python API on the folder, margined on the downloaded tiers."""
    import json

    import backtest
    from strategies import TrendFollowing

    assert main(["data", "download", "XRPUSDT", "--since", SINCE, "--out", str(tmp_path)]) == 0
    folder = tmp_path / "binanceusdm" / "XRPUSDT-1h"
    monkeypatch.chdir(tmp_path)
    params = ["--param", "fast=5", "--param", "slow=20", "--param", "vol_window=24"]
    assert main(["run", "--data", str(folder), *params, "--json", "stats.json"]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    market = load_quietly(folder)
    assert market.funding is not None and market.mark is not None
    direct = TrendFollowing(fast=5, slow=20, vol_window=24, tiers=str(folder / "tiers.json")).run(market)
    assert stats["final_equity"] == pytest.approx(float(direct.stats()["final_equity"]), rel=1e-12)
    assert direct.settings["tiers"] == "tiers.json (XRPUSDT)"
    assert stats["trades"] > 0 and backtest.Market is type(market)

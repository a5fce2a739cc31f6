"""Binance public data archives (data.binance.vision zip files), built here in the published
column layouts, load and align like the same data given as plain frames."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.data.archives import load_archives, load_book_depth

from .helpers import HOUR_MS, START_MS, candles

KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore")
N_BARS = 48  # two "months" of 24 bars


def kline_text(frame: pd.DataFrame, header: bool = True, unit: str = "ms") -> str:
    scale = 1000 if unit == "us" else 1
    lines = [KLINE_HEADER] if header else []
    for row in frame.itertuples(index=False):
        opened = int(row.timestamp) * scale
        closed = (int(row.timestamp) + HOUR_MS) * scale - 1
        lines.append(f"{opened},{row.open},{row.high},{row.low},{row.close},{row.volume},{closed},"
                     f"{row.volume * row.close},42,{row.volume / 2},{row.volume * row.close / 2},0")
    return "\n".join(lines) + "\n"


def write_zip(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.with_suffix(".csv").name, text)
    return path


def monthly_klines(folder, frame, *, header=(True, False), unit=("ms", "ms")):
    """Two zips of 24 bars each, named as Binance names monthly kline files."""
    return [write_zip(folder / f"BTCUSDT-1h-2025-0{k + 1}.zip",
                      kline_text(frame.iloc[24 * k: 24 * (k + 1)], header[k], unit[k]))
            for k in range(2)]


def mark_frame() -> pd.DataFrame:
    frame = candles(N_BARS)
    for column in ("open", "high", "low", "close"):
        frame[column] = frame[column] * 1.001
    return frame


def funding_events() -> pd.Series:
    times = START_MS + 8 * HOUR_MS * np.arange(6) + np.array([17, 7, 11, 3, 9, 5])  # ms jitter
    rates = np.array([0.0001, 0.00012, -0.00005, 0.0001, 0.0003, 0.0001])
    return pd.Series(rates, index=pd.to_datetime(times, unit="ms", utc=True))


def funding_text(events: pd.Series) -> str:
    lines = ["calc_time,funding_interval_hours,last_funding_rate"]
    for when, rate in events.items():
        lines.append(f"{when.value // 1_000_000},8,{rate}")
    return "\n".join(lines) + "\n"


BANDS = [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]


def depth_text(snapshots: list[tuple[pd.Timestamp, float, float]], skip_band=None) -> str:
    """bookDepth rows: per snapshot every band, notional growing outward; (time, bids at −2%,
    asks at +2%) set the 2% figures."""
    lines = ["timestamp,percentage,depth,notional"]
    for when, bids, asks in snapshots:
        for band in BANDS:
            if skip_band is not None and (when, band) == skip_band:
                continue
            base = bids if band < 0 else asks
            notional = base * abs(band) / 2
            lines.append(f"{when:%Y-%m-%d %H:%M:%S},{band},{notional / 100:.6f},{notional:.2f}")
    return "\n".join(lines) + "\n"


def depth_snapshots() -> list[tuple[pd.Timestamp, float, float]]:
    start = pd.Timestamp(START_MS, unit="ms", tz="UTC")
    return [(start + pd.Timedelta(minutes=30 * k) + pd.Timedelta(seconds=8),
             1e6 + 1e4 * k, 1.5e6 - 5e3 * k) for k in range(2 * N_BARS)]


@pytest.fixture()
def bars():
    return candles(N_BARS)


@pytest.fixture()
def plain(bars):
    return backtest.load(bars, symbol="BTCUSDT")


# ----- klines ---------------------------------------------------------------------------------------


def test_monthly_zips_with_and_without_header_join_into_the_bars(tmp_path, bars, plain):
    files = monthly_klines(tmp_path, bars, header=(True, False))
    market = load_archives(files)
    pd.testing.assert_frame_equal(market.ohlcv, plain.ohlcv)
    assert market.symbol == "BTCUSDT"


def test_microsecond_open_times_read_as_the_same_bars(tmp_path, bars, plain):
    files = monthly_klines(tmp_path, bars, header=(True, True), unit=("ms", "us"))
    pd.testing.assert_frame_equal(load_archives(files).ohlcv, plain.ohlcv)


def test_a_folder_of_zips_is_read_in_name_order(tmp_path, bars, plain):
    monthly_klines(tmp_path / "klines", bars)
    pd.testing.assert_frame_equal(load_archives(tmp_path / "klines").ohlcv, plain.ohlcv)


def test_a_single_kline_zip_loads_with_backtest_load(tmp_path, bars):
    first, _ = monthly_klines(tmp_path, bars)
    market = backtest.load(first)
    assert len(market) == 24 and market.symbol == "BTCUSDT"
    assert market.close.iloc[-1] == bars["close"].iloc[23]


def test_a_month_and_its_own_days_count_once(tmp_path, bars, plain):
    files = monthly_klines(tmp_path, bars)
    day = write_zip(tmp_path / "daily" / "BTCUSDT-1h-2025-01-01.zip", kline_text(bars.iloc[:24]))
    pd.testing.assert_frame_equal(load_archives([*files, day]).ohlcv, plain.ohlcv)


def test_two_files_disagreeing_on_a_bar_are_named(tmp_path, bars):
    files = monthly_klines(tmp_path, bars)
    changed = bars.iloc[:24].copy()
    changed.loc[3, "close"] += 0.25
    day = write_zip(tmp_path / "daily" / "BTCUSDT-1h-2025-01-01.zip", kline_text(changed))
    with pytest.raises(backtest.DataError, match=r"2025-01-01 03:00:00\+00:00 appears in .*"
                                                 r"BTCUSDT-1h-2025-01.zip.* and .*2025-01-01.zip"):
        load_archives([*files, day])


def test_a_bad_price_names_the_zip_member_column_and_row(tmp_path, bars):
    broken = bars.copy()
    broken.loc[24 + 4, "high"] = broken.loc[24 + 4, "close"] - 1.0  # row 5 of the second month
    files = monthly_klines(tmp_path, broken, header=(True, True))
    with pytest.raises(backtest.DataError,
                       match=r"BTCUSDT-1h-2025-02\.zip/BTCUSDT-1h-2025-02\.csv: column high, "
                             r"row 5 \(line 6 of the file\): high below max\(open, close\)"):
        load_archives(files)


def test_a_zip_holding_two_tables_is_refused(tmp_path):
    path = tmp_path / "BTCUSDT-1h-2025-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "1,2\n")
        archive.writestr("b.csv", "1,2\n")
    with pytest.raises(backtest.DataError, match="a zip archive with 2 files; expected one CSV"):
        backtest.load(path)


# ----- mark, funding, depth ---------------------------------------------------------------------


def test_mark_funding_and_depth_align_as_plain_frames_do(tmp_path, bars):
    klines = monthly_klines(tmp_path / "klines", bars)
    marks = monthly_klines(tmp_path / "markPriceKlines", mark_frame(), header=(False, True))
    events = funding_events()
    funding = write_zip(tmp_path / "fundingRate" / "BTCUSDT-fundingRate-2025-01.zip",
                        funding_text(events))
    snapshots = depth_snapshots()
    depth = [write_zip(tmp_path / "bookDepth" / f"BTCUSDT-bookDepth-2025-01-0{d + 1}.zip",
                       depth_text(snapshots[48 * d: 48 * (d + 1)])) for d in range(2)]
    market = load_archives(klines, mark=marks, funding=funding, book_depth=depth)

    mark = mark_frame().assign(timestamp=lambda f: pd.to_datetime(f["timestamp"], unit="ms", utc=True))
    expected = backtest.load(bars, symbol="BTCUSDT", mark=mark.set_index("timestamp"),
                             funding=events,
                             depth=pd.Series([b + a for _, b, a in snapshots],
                                             index=[t for t, _, _ in snapshots]))
    pd.testing.assert_frame_equal(market.mark, expected.mark)
    pd.testing.assert_series_equal(market.funding, expected.funding)
    pd.testing.assert_series_equal(market.depth, expected.depth)
    assert market.funding.dropna().tolist() == pytest.approx(events.tolist())


def test_two_percent_depth_is_the_bids_and_asks_within_two_percent(tmp_path):
    when = pd.Timestamp("2025-01-01 00:00:08", tz="UTC")
    path = write_zip(tmp_path / "BTCUSDT-bookDepth-2025-01-01.zip",
                     depth_text([(when, 1_000_000.0, 1_500_000.0)]))
    depth = load_book_depth(path)
    assert depth.tolist() == [2_500_000.0]  # −2%: 1.0 M of bids, +2%: 1.5 M of asks
    assert depth.index.tolist() == [when]


def test_a_snapshot_missing_a_band_is_left_out_with_a_warning(tmp_path):
    snapshots = depth_snapshots()[:3]
    path = write_zip(tmp_path / "BTCUSDT-bookDepth-2025-01-01.zip",
                     depth_text(snapshots, skip_band=(snapshots[1][0], 2)))
    with pytest.warns(backtest.DataWarning, match=r"1 book-depth snapshot\(s\) lack the −2% or "
                                                  r"the \+2% band .* at 2025-01-01 00:30:08"):
        depth = load_book_depth(path)
    assert len(depth) == 2


def test_a_funding_zip_loads_with_load_funding(tmp_path):
    events = funding_events()
    path = write_zip(tmp_path / "BTCUSDT-fundingRate-2025-01.zip", funding_text(events))
    rates = backtest.load_funding(path)
    assert rates.tolist() == pytest.approx(events.tolist())
    assert rates.index[0] == pd.Timestamp("2025-01-01 00:00:00.017", tz="UTC")


def test_a_bad_depth_figure_names_the_file_column_and_row(tmp_path):
    text = depth_text(depth_snapshots()[:1]).replace(",500000.00", ",-500000.00", 1)  # band −1
    path = write_zip(tmp_path / "BTCUSDT-bookDepth-2025-01-01.zip", text)
    with pytest.raises(backtest.DataError, match=r"bookDepth-2025-01-01\.csv: column notional, "
                                                 r"row 5 \(line 6 of the file\)"):
        load_book_depth(path)

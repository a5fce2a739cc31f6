"""Random malformed CSV and Parquet files: ``backtest.load`` and ``backtest data validate`` give a
valid Market or a DataError naming the file — never another exception, never a traceback."""

from __future__ import annotations

import string
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backtest
from backtest.cli import main

COLUMN_NAMES = ["timestamp", "time", "date", "open_time", "open", "high", "low", "close", "volume",
                "Open", "CLOSE", " high ", "funding_rate", "mark_open", "mark_close",
                "depth_2pct_usd", "junk", ""]
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.integers(-10, 10**17).map(str),
    st.sampled_from(["", "nan", "NaN", "inf", "-1", "0", "1e400", "abc", "2025-01-01",
                     "2025-01-01T00:00:00Z", "2025-13-45", "99999-01-01", "1735689600",
                     "1735689600000", "1735689600000000", "True", "\"1,5\"", " 3 "]),
    st.text(alphabet=string.printable, max_size=6).map(lambda t: t.replace(",", ";")),
)
EXAMPLES = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def csv_files(draw):
    header = draw(st.lists(st.sampled_from(COLUMN_NAMES), min_size=1, max_size=8))
    width = len(header)
    rows = draw(st.lists(st.lists(CELLS, min_size=max(width - 1, 0), max_size=width + 1),
                         max_size=8))
    lines = [",".join(header)] if draw(st.booleans()) or not rows else []
    lines += [",".join(row) for row in rows]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n,,,,\n", "\n\n"]))


@st.composite
def good_csv_with_damage(draw):
    """A valid file with one cell replaced: the damage is what must be reported."""
    n = draw(st.integers(2, 8))
    start = 1_735_689_600_000
    step = draw(st.sampled_from([3_600_000, 60_000, 86_400_000]))
    rows = [[str(start + k * step), "100", "101", "99", "100.5"] for k in range(n)]
    row, column = draw(st.integers(0, n - 1)), draw(st.integers(0, 4))
    rows[row][column] = draw(CELLS)
    unit = draw(st.sampled_from([1, 1000]))  # seconds or ms
    if unit == 1000:
        for r in rows:
            if r[0].isdigit():
                r[0] = str(int(r[0]) // 1000)
    return "timestamp,open,high,low,close\n" + "\n".join(",".join(r) for r in rows) + "\n"


def _check_load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            market = backtest.load(path)
        except backtest.DataError as exc:
            assert path.name in str(exc) or "no data file" in str(exc), str(exc)
            return None
    assert isinstance(market, backtest.Market)
    assert len(market) >= 2
    assert market.index.is_monotonic_increasing and market.index.tz is not None
    assert np.isfinite(market.ohlcv[["open", "high", "low", "close"]].to_numpy()).all()
    return market


def _check_cli(path: Path, capsys):
    code = main(["data", "validate", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2)
    if code == 2:
        lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error: "), err


def _fuzz(capsys, name: str, content) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        if isinstance(content, pd.DataFrame):
            content.to_parquet(path)
        else:
            path.write_text(content)
        _check_load(path)
        _check_cli(path, capsys)


@given(csv_files())
@EXAMPLES
def test_random_csv_files(capsys, text):
    _fuzz(capsys, "fuzz.csv", text)


@given(good_csv_with_damage())
@EXAMPLES
def test_valid_files_with_one_damaged_cell(capsys, text):
    _fuzz(capsys, "damaged.csv", text)


PARQUET_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                           st.integers(-(2**40), 2**62), st.none(),
                           st.sampled_from(["x", "2025-01-01", ""]))


@st.composite
def parquet_frames(draw):
    n = draw(st.integers(0, 6))
    columns = draw(st.lists(st.sampled_from(COLUMN_NAMES[:9]), min_size=1, max_size=6, unique=True))
    data = {}
    for column in columns:
        kind = draw(st.sampled_from(["float", "int", "mixed", "datetime"]))
        if kind == "datetime":
            start = draw(st.sampled_from(["2025-01-01", "1970-01-01", "2261-01-01"]))
            data[column] = pd.date_range(start, periods=n, freq=draw(st.sampled_from(["1h", "1min"])))
        elif kind == "mixed":
            data[column] = [str(v) for v in draw(st.lists(PARQUET_VALUES, min_size=n, max_size=n))]
        else:
            values = draw(st.lists(st.floats(-1e3, 1e6) if kind == "float" else st.integers(0, 10**13),
                                   min_size=n, max_size=n))
            data[column] = np.asarray(values, dtype=float if kind == "float" else np.int64)
    frame = pd.DataFrame(data)
    if draw(st.booleans()) and n:
        frame.index = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC")
    return frame


@given(parquet_frames())
@EXAMPLES
def test_random_parquet_files(capsys, frame):
    _fuzz(capsys, "fuzz.parquet", frame)


@pytest.mark.slow
@given(csv_files())
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_many_random_csv_files(capsys, text):
    _fuzz(capsys, "fuzz.csv", text)

"""Windows that fit the data: a short shop export gets test and validation windows from its own span, a long one
the last day, flags still override, and data that cannot be split say which flags would help."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.errors import DataError
from streamrec.training.datasets import load_dataset
from streamrec.training.protocol import DAY_MS, MIN_WINDOW_SESSIONS, make_split
from streamrec.training.synthetic import SyntheticConfig, write_shop_export

HOUR_MS = 3_600_000


def export(tmp_path: Path, hours: float, sessions: int) -> Path:
    path = tmp_path / f"shop-{hours}h.csv"
    write_shop_export(path, SyntheticConfig(n_sessions=sessions, span_ms=int(hours * HOUR_MS), session_seed=5))
    return path


def test_a_three_hour_export_is_split_by_its_own_span(tmp_path: Path) -> None:
    dataset = load_dataset(str(export(tmp_path, 3, 1500)))
    protocol = dataset.protocol
    # the last tenth of about three hours, far below the seven days a fixed protocol would ask for
    assert 0.25 * HOUR_MS < protocol.test_days * DAY_MS < 0.4 * HOUR_MS
    assert 0 < protocol.valid_days * DAY_MS < 0.4 * HOUR_MS
    assert protocol.basis.startswith("from the data") and "10%" in protocol.basis
    sizes = make_split(dataset.events, protocol).sizes()
    assert sizes["test_sessions"] >= MIN_WINDOW_SESSIONS and sizes["valid_sessions"] >= MIN_WINDOW_SESSIONS
    assert sizes["fit_sessions"] > sizes["test_sessions"]


def test_data_spanning_weeks_hold_out_the_last_day(tmp_path: Path) -> None:
    protocol = load_dataset(str(export(tmp_path, 24 * 30, 3000))).protocol
    assert protocol.test_days == 1.0 and protocol.valid_days == 1.0
    assert "last day" in protocol.basis


def test_a_thin_window_is_widened_to_hold_enough_sessions(tmp_path: Path) -> None:
    dataset = load_dataset(str(export(tmp_path, 1, 60)))
    assert "widened" in dataset.protocol.basis
    assert make_split(dataset.events, dataset.protocol).sizes()["test_sessions"] >= 5


def test_flags_override_one_window_or_both(tmp_path: Path) -> None:
    path = str(export(tmp_path, 3, 1500))
    one = load_dataset(path, test_days=0.5 * HOUR_MS / DAY_MS).protocol
    assert one.test_days == 0.5 * HOUR_MS / DAY_MS and "test given" in one.basis and one.valid_days > 0
    both = load_dataset(path, test_days=0.02, valid_days=0.01).protocol
    assert (both.test_days, both.valid_days, both.basis) == (0.02, 0.01, "flags")


def test_a_split_that_cannot_be_made_says_which_flag_helps(tmp_path: Path) -> None:
    path = str(export(tmp_path, 3, 1500))
    with pytest.raises(DataError, match="shorter --test-days"):
        load_dataset(path, test_days=7.0)  # the fixed protocol's seven days of a three-hour file
    with pytest.raises(DataError, match="too few for fitting, validation and test"):
        load_dataset(str(export(tmp_path, 1, 20)))

"""Replay pacing, repetition and data sources, worked out by hand on tiny event lists (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.errors import ConfigError, DataError
from streamrec.events import CanonicalEvent
from streamrec.loadtest.schedule import Pace, plan
from streamrec.loadtest.sources import DataSpec, load_events, resolve_files

DATA_DIR = Path("../shared/data")


def _events(times_ms: list[int]) -> list[CanonicalEvent]:
    return [CanonicalEvent(f"e{n}", "click", f"s{n % 2}", "", f"i{n}", ts) for n, ts in enumerate(times_ms)]


def test_fixed_rate_spaces_events_evenly_whatever_their_times() -> None:
    planned = list(plan(_events([0, 5, 60_000]), Pace(rate=10)))
    assert [p.offset_s for p in planned] == [0.0, 0.1, 0.2]


def test_speedup_divides_the_original_gaps() -> None:
    planned = list(plan(_events([1_000, 3_000, 11_000]), Pace(speedup=4)))
    assert [p.offset_s for p in planned] == [0.0, 0.5, 2.5]


def test_duration_and_limit_stop_the_plan() -> None:
    events = _events(list(range(0, 10_000, 1_000)))
    assert len(list(plan(events, Pace(rate=100), duration_s=0.05))) == 5
    assert len(list(plan(events, Pace(speedup=1), duration_s=3.5))) == 4
    assert len(list(plan(events, Pace(), limit=3))) == 3


def test_repeat_renames_sessions_and_events_per_pass() -> None:
    planned = list(plan(_events([0, 1_000]), Pace(rate=1), duration_s=5, repeat=True))
    assert [p.event.event_id for p in planned] == ["e0", "e1", "e0~1", "e1~1", "e0~2"]
    assert planned[2].event.session_id == "s0~1"
    assert [p.offset_s for p in planned] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_repeat_at_a_speedup_continues_after_one_mean_gap() -> None:
    planned = list(plan(_events([0, 2_000]), Pace(speedup=2), duration_s=3.0, repeat=True))
    # one pass lasts 1 s (2 s / 2) plus one mean gap (1 s): the second pass starts at 2 s
    assert [(p.offset_s, p.event.event_id) for p in planned] == [(0.0, "e0"), (1.0, "e1"), (2.0, "e0~1")]


def test_a_run_tag_renames_every_event() -> None:
    planned = list(plan(_events([0]), Pace(rate=1), tag="run7"))
    assert (planned[0].event.session_id, planned[0].event.event_id) == ("s0~run7", "e0~run7")


def test_bad_paces_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        Pace(rate=1, speedup=2)
    with pytest.raises(ConfigError):
        Pace(rate=0)
    with pytest.raises(ConfigError):  # endless: repeat with nothing to stop it
        list(plan(_events([0]), Pace(), repeat=True))


def test_named_source_without_the_data_directory_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist here; pass --data-dir"):
        resolve_files(DataSpec("yoochoose-100k-test", data_dir=tmp_path / "absent"))
    with pytest.raises(DataError, match="neither a known source"):
        resolve_files(DataSpec("no-such-thing"))


def test_synthetic_source_is_time_ordered_and_seeded() -> None:
    first, again = load_events(DataSpec(sessions=20)), load_events(DataSpec(sessions=20))
    assert first == again
    assert [e.ts_ms for e in first] == sorted(e.ts_ms for e in first)


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason="the real data directory ../shared/data is not here")
def test_yoochoose_test_day_loads_in_time_order() -> None:
    events = load_events(DataSpec("yoochoose-100k-test"))
    assert len(events) == 13_568
    assert len({e.session_id for e in events}) == 3_416
    assert [e.ts_ms for e in events] == sorted(e.ts_ms for e in events)


def test_page_views_go_to_sessions_active_in_the_window() -> None:
    import random

    from streamrec.loadtest.loadgen import PagePlan

    pages = PagePlan([0.0, 1.0, 50.0, 51.0], ["a", "b", "c", "d"], ["i1", "i2", "i3", "i4"], window_s=10.0)
    rng = random.Random(0)
    assert {pages.pick(55.0, rng)[0] for _ in range(50)} == {"c", "d"}
    assert pages.pick(0.5, rng) == ("a", "i1")
    assert pages.pick(30.0, rng) == ("b", "i2")  # nothing in the window: the latest session so far
    assert pages.pick(-1.0, rng)[0] == "a"  # before the first event

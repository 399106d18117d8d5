"""HDR histograms survive encoding and merge exactly; per-second timelines add up."""

from __future__ import annotations

from streamrec.loadtest.histograms import Timeline, decode, encode, merge, new_histogram, record_seconds, summary_ms


def test_merging_encoded_histograms_equals_recording_into_one() -> None:
    parts = [new_histogram() for _ in range(3)]
    whole = new_histogram()
    for n in range(1, 3001):
        seconds = n / 1e4  # 0.1 ms .. 300 ms
        record_seconds(parts[n % 3], seconds)
        record_seconds(whole, seconds)
    merged = merge([encode(h) for h in parts])
    assert summary_ms(merged) == summary_ms(whole)
    assert merged.get_total_count() == 3000


def test_percentiles_in_milliseconds_within_hdr_precision() -> None:
    h = new_histogram()
    for n in range(1, 101):
        record_seconds(h, n / 1000)  # 1 .. 100 ms
    stats = summary_ms(h)
    assert abs(stats["p50_ms"] - 50) <= 0.05 and abs(stats["p99_ms"] - 99) <= 0.1
    assert abs(stats["max_ms"] - 100) <= 0.1 and stats["count"] == 100


def test_out_of_range_values_are_clamped_not_lost() -> None:
    h = new_histogram()
    record_seconds(h, 0.0)
    record_seconds(h, 10_000.0)
    assert h.get_total_count() == 2
    assert decode(encode(h)).get_total_count() == 2


def test_empty_histogram_summary_is_zeros() -> None:
    assert summary_ms(new_histogram()) == {
        "count": 0,
        "p50_ms": 0.0,
        "p90_ms": 0.0,
        "p99_ms": 0.0,
        "p99.9_ms": 0.0,
        "max_ms": 0.0,
        "mean_ms": 0.0,
    }


def test_timelines_merge_by_second() -> None:
    a, b = Timeline(), Timeline()
    a.record(0.5, 0.52, 0.02, ok=True)
    b.record(0.7, 1.1, 0.4, ok=True)
    b.record(1.2, 1.3, 0.1, ok=False)
    total = Timeline()
    total.add_encoded(a.encode())
    total.add_encoded(b.encode())
    rows = total.rows()
    assert [(r["issued"], r["ok"], r["errors"]) for r in rows] == [(2, 1, 0), (1, 1, 1)]
    assert abs(rows[0]["max_ms"] - 400) < 1

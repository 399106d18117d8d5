"""The DESIGN §5 protocol on hand-made sessions: filtering, the time split, validation and the vocabulary."""

from __future__ import annotations

import pandas as pd
import pytest

from streamrec.errors import DataError
from streamrec.training.protocol import DAY_MS, ProtocolConfig, make_split

HOUR = 3_600_000


def _frame(sessions: dict[str, tuple[int, list[str]]]) -> pd.DataFrame:
    """session -> (day it happens, items): one click per item, a minute apart; the n-th session starts at 8+n h."""
    rows = []
    for hour, (sid, (day, items)) in enumerate(sessions.items(), start=8):
        for pos, item in enumerate(items):
            rows.append(
                {
                    "event_id": f"{sid}-{pos}",
                    "type": "click",
                    "session_id": sid,
                    "user_id": "",
                    "item_id": item,
                    "category_id": "",
                    "price": None,
                    "quantity": 1,
                    "ts_ms": day * DAY_MS + hour * HOUR + pos * 60_000,
                }
            )
    return pd.DataFrame(rows)


def test_filtering_split_and_vocabulary_follow_srgnn() -> None:
    common = ["a", "b", "c"]
    sessions = {f"s{i}": (i % 3, common) for i in range(6)}  # days 0-2: a, b, c seen 6+ times
    sessions |= {
        "single": (1, ["a"]),  # length 1: dropped
        "rare": (1, ["a", "r"]),  # r seen once: removed, then the session is too short: dropped
        "late": (3, ["a", "b", "n", "n", "n", "n", "n"]),  # test day; n never appears in training
        "late2": (3, ["c", "n", "n"]),  # test day; only c is known -> too short after restriction
    }
    split = make_split(_frame(sessions), ProtocolConfig(test_days=1, valid_days=1))
    assert split.vocab.item_ids[0] == "" and set(split.vocab.item_ids[1:]) == {"a", "b", "c"}
    assert len(split.train) == 6
    decoded = [[split.vocab.item_ids[i] for i in s] for s in split.test]
    assert decoded == [["a", "b"]]  # n removed (not in training), late2 dropped
    assert len(split.fit) == 4 and len(split.valid) == 2  # validation = the last training day (day 2)
    sizes = split.sizes()
    assert sizes["train_prefixes"] == 12 and sizes["test_prefixes"] == 1


def test_an_empty_test_period_is_a_data_error() -> None:
    with pytest.raises(DataError):
        make_split(_frame({"s": (0, ["a", "b"])}), ProtocolConfig(test_days=1, valid_days=1, min_item_support=1))


def test_event_kinds_follow_their_items_through_the_filtering() -> None:
    sessions = {f"s{i}": (i % 3, ["a", "b", "c"]) for i in range(6)}
    sessions |= {"rare": (0, ["a", "r", "b"]), "late": (3, ["a", "b"])}
    frame = _frame(sessions)
    frame.loc[(frame["session_id"] == "rare") & (frame["item_id"] == "b"), "type"] = "purchase"
    frame.loc[(frame["session_id"] == "s1") & (frame["item_id"] == "c"), "type"] = "add_to_cart"
    split = make_split(frame, ProtocolConfig(test_days=1, valid_days=1))
    pairs = [
        ([split.vocab.item_ids[i] for i in items], kinds.tolist())
        for items, kinds in zip(split.train, split.train_kinds, strict=True)
    ]
    assert (["a", "b"], [0, 2]) in pairs  # the rare r went, and b's purchase stayed with b
    assert (["a", "b", "c"], [0, 0, 1]) in pairs and split.has_signals
    assert [len(k) for k in split.fit_kinds] == [len(s) for s in split.fit]
    clicks_only = make_split(_frame(sessions), ProtocolConfig(test_days=1, valid_days=1))
    assert not clicks_only.has_signals

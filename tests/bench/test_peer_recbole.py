"""The peer benchmark's half that needs no peer: the split it hands RecBole, and its answer without real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamrec.bench import peer_recbole
from streamrec.training.metrics import all_prefixes
from streamrec.training.protocol import ProtocolConfig, make_split
from streamrec.training.sequences import events_frame
from streamrec.training.synthetic import SyntheticConfig, generate


def test_the_peer_gets_every_prefix_of_each_part_as_one_row(tmp_path: Path) -> None:
    frame = events_frame(generate(SyntheticConfig(n_items=60, n_sessions=300, seed=2)))
    split = make_split(frame, ProtocolConfig(test_days=0.2, valid_days=0.2))
    counts = peer_recbole.write_split(split, tmp_path)
    rows = (tmp_path / "split" / "split.test.inter").read_text().splitlines()
    assert rows[0] == "session_id:token\titem_id_list:token_seq\titem_id:token"
    test = all_prefixes(split.test)
    assert counts["test"] == len(rows) - 1 == len(test)
    _, history, target = rows[1].split("\t")
    assert [int(i) for i in history.split()] == test.items[0][-peer_recbole.MAX_LIST :].tolist()
    assert int(target) == test.targets[0]
    sessions = [line.split("\t")[0] for line in rows[1:]]
    assert len(set(sessions)) == len(sessions)  # no two prefixes grouped as one user
    assert counts["train"] == len(all_prefixes(split.train)) > counts["fit"]


def test_without_real_data_it_says_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert peer_recbole.main(["--data-dir", str(tmp_path / "absent")]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["bench"] == "peer_recbole" and "absent" in line["skipped"]

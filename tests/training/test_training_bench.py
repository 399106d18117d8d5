"""The real-data benchmark says clearly, in its one JSON line, when the data are absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamrec.bench import eval_models


def test_bench_without_data_prints_one_skipped_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_models.main(["--data-dir", str(tmp_path / "absent")]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["bench"] == "eval_models" and "absent" in line["skipped"]

"""The training subcommands: registration without torch, and `train --synthetic` end to end."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec import artifact

REPO = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    from streamrec.training import cli

    parser = argparse.ArgumentParser(prog="streamrec")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_importing_the_cli_does_not_import_torch() -> None:
    code = "import sys, training.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_train_synthetic_prints_the_version_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(
        ["train", "--synthetic", "--sessions", "300", "--items", "60", "--epochs", "1", "--out", str(tmp_path)]
    )
    assert args.handler(args) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    version_dir = Path(last_line)
    assert version_dir.parent == tmp_path
    assert artifact.verify(version_dir).model_type == "gru4rec"

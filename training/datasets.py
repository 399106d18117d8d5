"""Named datasets (the real samples in ../shared/data) and paths, resolved into canonical events plus a protocol."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from streamrec.errors import DataError
from streamrec.training.canonical import LoadReport
from streamrec.training.loaders import load_diginetica, load_path, load_taobao, load_yoochoose
from streamrec.training.protocol import DAY_MS, ProtocolConfig, fit_to_data

DEFAULT_DATA_DIR = Path("../shared/data")


@dataclass(frozen=True)
class DatasetSpec:
    files: tuple[str, ...]
    protocol: ProtocolConfig
    about: str


DATASETS: dict[str, DatasetSpec] = {
    # SR-GNN's YooChoose protocol: test = sessions ending in the last day; validation = the day before
    "yoochoose-100k": DatasetSpec(
        ("yoochoose-clicks-100k_train_full.tsv.gz", "yoochoose-clicks-100k_test.tsv.gz"),
        ProtocolConfig(test_days=1, valid_days=1),
        "YOOCHOOSE 100k clicks (session-rec sample), SR-GNN split",
    ),
    # SR-GNN's Diginetica protocol: session dates are days, test = the last 7 days
    "diginetica-sample": DatasetSpec(
        ("diginetica_sample_train-item-views.csv.gz",),
        ProtocolConfig(test_days=7, valid_days=7, date_unit_ms=DAY_MS),
        "DIGINETICA item-view sample (SR-GNN's smoke-test sample; 99 test prefixes)",
    ),
    # DESIGN §5: test = the last 7 days. The file spans 9 days, so training has 2; validation is its last day.
    "taobao": DatasetSpec(
        ("taobao_UserBehavior_head84475.csv.gz",),
        ProtocolConfig(test_days=7, valid_days=1),
        "Taobao UserBehavior head (pv/cart/fav/buy), sessions by a 30-minute gap",
    ),
}


@dataclass(frozen=True)
class Dataset:
    name: str
    events: pd.DataFrame  # canonical columns
    report: LoadReport
    protocol: ProtocolConfig
    files: tuple[Path, ...]


def default_data_dir(cwd: Path | None = None) -> Path | None:
    """../shared/data relative to the current directory, when it exists."""
    candidate = ((cwd or Path.cwd()) / DEFAULT_DATA_DIR).resolve()
    return candidate if candidate.is_dir() else None


def _load_named(name: str, paths: tuple[Path, ...]) -> tuple[pd.DataFrame, LoadReport]:
    if name == "yoochoose-100k":
        return load_yoochoose(*paths)
    if name == "diginetica-sample":
        return load_diginetica(paths[0])
    return load_taobao(paths[0])


def load_dataset(
    name_or_path: str,
    data_dir: Path | None = None,
    test_days: float | None = None,
    valid_days: float | None = None,
) -> Dataset:
    """A dataset by name (resolved under `data_dir`, default ../shared/data) or by the path of any supported file.

    A named dataset keeps its reference protocol; a file gets windows that fit its own time span
    (training/protocol.py, `fit_to_data`). `test_days` and `valid_days` override either.

    Raises DataError with a plain explanation when the data are not there.
    """
    if name_or_path in DATASETS:
        spec = DATASETS[name_or_path]
        root = data_dir or default_data_dir()
        if root is None or not root.is_dir():
            raise DataError(
                f"dataset {name_or_path!r} needs the real data directory, but {root or DEFAULT_DATA_DIR} does not "
                "exist here; pass --data-dir DIR (the directory holding ../shared/data's files)"
            )
        paths = tuple(root / f for f in spec.files)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"dataset {name_or_path!r}: missing {', '.join(missing)}")
        events, report = _load_named(name_or_path, paths)
        return Dataset(name_or_path, events, report, _overridden(spec.protocol, test_days, valid_days), paths)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(DATASETS)
        raise DataError(f"{name_or_path!r} is neither a known dataset ({known}) nor an existing file")
    events, report = load_path(path)
    return Dataset(path.name, events, report, fit_to_data(events, ProtocolConfig(), test_days, valid_days), (path,))


def _overridden(protocol: ProtocolConfig, test_days: float | None, valid_days: float | None) -> ProtocolConfig:
    """A named dataset's own windows (its reference protocol), each replaced where a flag gives one."""
    if test_days is None and valid_days is None:
        return replace(protocol, basis="fixed: the dataset's reference protocol")
    return replace(
        protocol,
        test_days=protocol.test_days if test_days is None else test_days,
        valid_days=protocol.valid_days if valid_days is None else valid_days,
        basis="flags",
    )

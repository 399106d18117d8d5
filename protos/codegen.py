"""Regenerate the committed Python code of every .proto in protos/ (run: `make protos`); --check compares instead.

The .proto files are the source of truth. Generated modules live beside them and are imported as
`streamrec.protos.events_pb2`, `streamrec.protos.recommender_pb2` and `streamrec.protos.recommender_pb2_grpc`
(protoc reads the files through the package's path, streamrec/protos, so the generated imports name it).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_PATH = Path("streamrec") / "protos"  # the link to protos/ inside the streamrec package
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc for every .proto into `out_dir`/streamrec/protos and return the generated files."""
    include = Path(protoc.__file__).parent / "_proto"
    sources = sorted(PROTOS.glob("*.proto"))
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(ROOT / PACKAGE_PATH / s.name) for s in sources],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    produced = sorted((out_dir / PACKAGE_PATH).glob("*_pb2*.py*"))
    # protoc writes an empty *_pb2_grpc.py for files without services; keep only those with content
    return [p for p in produced if p.read_text().strip() or not p.name.endswith("_pb2_grpc.py")]


def stale_files() -> list[str]:
    """Names of generated files that differ from (or are missing next to) what protoc produces now."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = [p.name for p in fresh if not (PROTOS / p.name).exists() or not filecmp.cmp(p, PROTOS / p.name, False)]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when committed code is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("stale generated code (run `make protos`):", ", ".join(stale))
            return 1
        print("generated code is current")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            shutil.copyfile(path, PROTOS / path.name)
            print("wrote", (PROTOS / path.name).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The committed generated code matches the .proto files (run `make protos` when this fails)."""

from __future__ import annotations

from streamrec.protos import codegen


def test_generated_code_is_current() -> None:
    assert codegen.stale_files() == []

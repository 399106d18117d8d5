"""The committed generated code matches the .proto files (run `make protos` when this fails), and the valid ranges
written beside each request field in recommender.proto are the ones the scorer enforces."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamrec.protos import codegen
from streamrec.protos import recommender_pb2 as pb
from streamrec.serving import validation
from streamrec.serving.validation import recommend_problem, score_problem

PROTO = Path(codegen.PROTOS) / "recommender.proto"
# the request messages and the check that sees each of them (PageContext and SessionHistory inside their request)
REQUEST_MESSAGES = {
    "RecommendRequest": "recommend",
    "PageContext": "recommend",
    "ScoreRequest": "score",
    "SessionHistory": "score",
}
CHARS = re.compile(r"(?:\b(\d+) to |at most )(\d+) characters", re.IGNORECASE)
ENTRIES = re.compile(r"(?:\b(\d+) to |at most )(\d+) entries", re.IGNORECASE)
EACH = re.compile(r"each (\d+) to (\d+) characters")
NUMBER = re.compile(r"\b(\d+) to (\d+)\b")


def test_generated_code_is_current() -> None:
    assert codegen.stale_files() == []


@dataclass(frozen=True)
class Field:
    message: str
    name: str
    kind: str  # the .proto type
    repeated: bool
    comment: str


def request_fields() -> list[Field]:
    """Every field of the request messages with the comment lines just above it."""
    fields: list[Field] = []
    message, comment = "", []
    for raw in PROTO.read_text().splitlines():
        line = raw.strip()
        if opened := re.match(r"message (\w+) \{", line):
            message, comment = opened.group(1), []
        elif line.startswith("//"):
            comment.append(line[2:].strip())
        elif found := re.match(r"(repeated )?(\w+) (\w+) = \d+;", line):
            if message in REQUEST_MESSAGES:
                fields.append(Field(message, found.group(3), found.group(2), bool(found.group(1)), " ".join(comment)))
            comment = []
        else:
            comment = []
    return fields


def _request(field: Field, value: object) -> tuple[object, Callable[[object], str | None]]:
    """A valid request of the field's RPC with only this field set to `value`, and that RPC's check."""
    if REQUEST_MESSAGES[field.message] == "recommend":
        recommend = pb.RecommendRequest(session_id="s", k=1)
        target: object = recommend.context if field.message == "PageContext" else recommend
        request, check = recommend, recommend_problem
    else:
        score = pb.ScoreRequest(k=1, sessions=[pb.SessionHistory(session_id="s")])
        target = score.sessions[0] if field.message == "SessionHistory" else score
        request, check = score, score_problem
    if field.repeated:
        del getattr(target, field.name)[:]
        getattr(target, field.name).extend(value)
    else:
        setattr(target, field.name, value)
    return request, check  # type: ignore[return-value]


def accepted(field: Field, value: object) -> bool:
    request, check = _request(field, value)
    return check(request) is None


def _entries(field: Field, count: int) -> list[object]:
    return (
        [pb.SessionHistory(session_id="s") for _ in range(count)] if field.kind == "SessionHistory" else ["i"] * count
    )


FIELDS = request_fields()


def test_every_request_field_is_read() -> None:
    names = {(f.message, f.name) for f in FIELDS}
    assert {("RecommendRequest", "k"), ("PageContext", "item_id"), ("SessionHistory", "item_ids")} <= names
    assert {("ScoreRequest", "sessions"), ("RecommendRequest", "exclude_item_ids")} <= names


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f"{f.message}.{f.name}")
def test_documented_range_is_the_enforced_one(field: Field) -> None:
    comment = field.comment
    if field.kind == "bool" or (field.kind[0].isupper() and not field.repeated):
        return  # a flag, or a nested message whose own fields carry the ranges
    if "Not checked" in comment:
        assert accepted(field, "") and accepted(field, "x" * (validation.MAX_ID_CHARS * 4)), comment
    elif field.kind == "int32":
        low, high = map(int, NUMBER.search(comment).groups())  # type: ignore[union-attr]
        assert high == validation.MAX_K, comment
        assert accepted(field, low) and accepted(field, high), comment
        assert not accepted(field, low - 1) and not accepted(field, high + 1), comment
    elif field.repeated:
        entries = ENTRIES.search(comment)
        assert entries, f"{field.message}.{field.name}: no 'N to M entries' or 'at most M entries' in {comment!r}"
        least, most = int(entries.group(1) or 0), int(entries.group(2))
        assert most == validation.MAX_IDS, comment
        assert accepted(field, _entries(field, most)) and not accepted(field, _entries(field, most + 1)), comment
        assert accepted(field, _entries(field, max(least, 1))), comment
        assert accepted(field, _entries(field, 0)) == (least == 0), comment
        if field.kind == "string":
            each = EACH.search(comment)
            assert each, f"{field.message}.{field.name}: no 'each N to M characters' in {comment!r}"
            shortest, longest = map(int, each.groups())
            assert longest == validation.MAX_ID_CHARS, comment
            assert accepted(field, ["x" * longest]) and not accepted(field, ["x" * (longest + 1)]), comment
            assert accepted(field, [""]) == (shortest == 0), comment
    else:
        chars = CHARS.search(comment)
        assert chars, f"{field.message}.{field.name}: no 'N to M characters' or 'at most M characters' in {comment!r}"
        shortest, longest = int(chars.group(1) or 0), int(chars.group(2))
        assert longest == validation.MAX_ID_CHARS, comment
        assert accepted(field, "x" * longest) and not accepted(field, "x" * (longest + 1)), comment
        assert accepted(field, "") == (shortest == 0), comment
        assert ("Required" in comment) == (shortest > 0), comment

"""Checks on every field of the scorer's requests; a failed check is an INVALID_ARGUMENT with this message."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from streamrec.protos import recommender_pb2
from streamrec.serving.config import (
    MAX_FILTER_VALUES,
    MAX_ID_CHARS,
    MAX_IDS,
    MAX_K,
    MAX_PRICE,
    MAX_QUERY_CHARS,
    MAX_SEARCH_K,
)

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Undecodable:
    """Request bytes that do not parse as the method's message (bad UTF-8, corrupt wire format)."""

    problem: str


def lenient(message: type[M]) -> Callable[[bytes], M | Undecodable]:
    """A request deserializer that never raises: gRPC answers UNKNOWN when a deserializer raises, but bytes that
    do not parse are the caller's error, so the handler turns `Undecodable` into INVALID_ARGUMENT."""

    def parse(raw: bytes) -> M | Undecodable:
        try:
            return message.FromString(raw)
        except DecodeError as exc:
            return Undecodable(f"request is not a valid {message.DESCRIPTOR.full_name}: {exc}")

    return parse


def _id_problem(name: str, value: str, required: bool) -> str | None:
    if required and not value:
        return f"{name} must not be empty"
    if len(value) > MAX_ID_CHARS:
        return f"{name} is {len(value)} characters; at most {MAX_ID_CHARS}"
    return None


def _ids_problem(name: str, values: Sequence[str], most: int = MAX_IDS) -> str | None:
    if len(values) > most:
        return f"{name} has {len(values)} entries; at most {most}"
    for value in values:
        problem = _id_problem(f"an entry of {name}", value, required=True)
        if problem:
            return problem
    return None


def _k_problem(k: int) -> str | None:
    if k <= 0 or k > MAX_K:
        return f"k must be between 1 and {MAX_K}, got {k}"
    return None


def recommend_problem(request: recommender_pb2.RecommendRequest | Undecodable) -> str | None:
    """The first thing wrong with a Recommend request, or None."""
    if isinstance(request, Undecodable):
        return request.problem
    return (
        _id_problem("session_id", request.session_id, required=True)
        or _id_problem("user_id", request.user_id, required=False)
        or _k_problem(request.k)
        or _id_problem("context.item_id", request.context.item_id, required=False)
        or _id_problem("context.page", request.context.page, required=False)
        or _ids_problem("exclude_item_ids", request.exclude_item_ids)
    )


def score_problem(request: recommender_pb2.ScoreRequest | Undecodable) -> str | None:
    """The first thing wrong with a Score request, or None."""
    if isinstance(request, Undecodable):
        return request.problem
    problem = _k_problem(request.k)
    if problem:
        return problem
    if not request.sessions:
        return "sessions must not be empty"
    if len(request.sessions) > MAX_IDS:
        return f"sessions has {len(request.sessions)} entries; at most {MAX_IDS}"
    for session in request.sessions:
        problem = (
            _id_problem("session_id", session.session_id, required=True)
            or _ids_problem("item_ids", session.item_ids)
            or _ids_problem("exclude_item_ids", session.exclude_item_ids)
        )
        if problem:
            return problem
    return None


def _price_problem(name: str, request: recommender_pb2.SearchFilters) -> str | None:
    if not request.HasField(name):
        return None
    value = getattr(request, name)
    if not math.isfinite(value) or not 0 <= value <= MAX_PRICE:
        return f"filters.{name} must be a finite price between 0 and {MAX_PRICE:g}, got {value}"
    return None


def search_problem(request: recommender_pb2.SearchRequest | Undecodable) -> str | None:
    """The first thing wrong with a Search request, or None."""
    if isinstance(request, Undecodable):
        return request.problem
    if not request.query.strip():
        return "query must not be empty or blank"
    if len(request.query) > MAX_QUERY_CHARS:
        return f"query is {len(request.query)} characters; at most {MAX_QUERY_CHARS}"
    if request.k <= 0 or request.k > MAX_SEARCH_K:
        return f"k must be between 1 and {MAX_SEARCH_K}, got {request.k}"
    filters = request.filters
    problem = (
        _id_problem("session_id", request.session_id, required=False)
        or _ids_problem("filters.categories", filters.categories, MAX_FILTER_VALUES)
        or _ids_problem("filters.brands", filters.brands, MAX_FILTER_VALUES)
        or _price_problem("min_price", filters)
        or _price_problem("max_price", filters)
        or _ids_problem("exclude_item_ids", request.exclude_item_ids)
    )
    if problem:
        return problem
    if filters.HasField("min_price") and filters.HasField("max_price") and filters.min_price > filters.max_price:
        return f"filters.min_price {filters.min_price} is above filters.max_price {filters.max_price}"
    return None

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PageContext(_message.Message):
    __slots__ = ("page", "item_id")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    page: str
    item_id: str
    def __init__(self, page: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "k", "context", "exclude_item_ids")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    k: int
    context: PageContext
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., k: _Optional[int] = ..., context: _Optional[_Union[PageContext, _Mapping]] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score", "reason")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    reason: str
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "model_version", "fallback", "state_age_ms", "source", "cause_event_id")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    STATE_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    model_version: str
    fallback: bool
    state_age_ms: int
    source: str
    cause_event_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., model_version: _Optional[str] = ..., fallback: _Optional[bool] = ..., state_age_ms: _Optional[int] = ..., source: _Optional[str] = ..., cause_event_id: _Optional[str] = ...) -> None: ...

class SessionHistory(_message.Message):
    __slots__ = ("session_id", "item_ids", "exclude_item_ids", "cause_event_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    CAUSE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    cause_event_id: str
    def __init__(self, session_id: _Optional[str] = ..., item_ids: _Optional[_Iterable[str]] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ..., cause_event_id: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("sessions", "k", "columnar", "prebuilt")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    COLUMNAR_FIELD_NUMBER: _ClassVar[int]
    PREBUILT_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionHistory]
    k: int
    columnar: bool
    prebuilt: bool
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionHistory, _Mapping]]] = ..., k: _Optional[int] = ..., columnar: _Optional[bool] = ..., prebuilt: _Optional[bool] = ...) -> None: ...

class SessionRecommendations(_message.Message):
    __slots__ = ("session_id", "items", "item_ids", "scores", "response_items")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedScalarFieldContainer[float]
    response_items: bytes
    def __init__(self, session_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., item_ids: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[float]] = ..., response_items: _Optional[bytes] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("results", "model_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SessionRecommendations]
    model_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[SessionRecommendations, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("model_version", "providers", "model_type", "redis_ok", "trending_from_stream", "in_flight", "max_in_flight", "uptime_s", "ranker")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    REDIS_OK_FIELD_NUMBER: _ClassVar[int]
    TRENDING_FROM_STREAM_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    RANKER_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    model_type: str
    redis_ok: bool
    trending_from_stream: bool
    in_flight: int
    max_in_flight: int
    uptime_s: float
    ranker: bool
    def __init__(self, model_version: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ..., model_type: _Optional[str] = ..., redis_ok: _Optional[bool] = ..., trending_from_stream: _Optional[bool] = ..., in_flight: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., uptime_s: _Optional[float] = ..., ranker: _Optional[bool] = ...) -> None: ...

class SearchFilters(_message.Message):
    __slots__ = ("categories", "brands", "min_price", "max_price")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    BRANDS_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    brands: _containers.RepeatedScalarFieldContainer[str]
    min_price: float
    max_price: float
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., brands: _Optional[_Iterable[str]] = ..., min_price: _Optional[float] = ..., max_price: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "session_id", "k", "filters", "exclude_item_ids")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    query: str
    session_id: str
    k: int
    filters: SearchFilters
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query: _Optional[str] = ..., session_id: _Optional[str] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[SearchFilters, _Mapping]] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("item_id", "title", "brand", "category", "price", "score", "reason")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    brand: str
    category: str
    price: float
    score: float
    reason: str
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., brand: _Optional[str] = ..., category: _Optional[str] = ..., price: _Optional[float] = ..., score: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("items", "catalogue_products", "fallback", "source")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SearchHit]
    catalogue_products: int
    fallback: bool
    source: str
    def __init__(self, items: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., catalogue_products: _Optional[int] = ..., fallback: _Optional[bool] = ..., source: _Optional[str] = ...) -> None: ...

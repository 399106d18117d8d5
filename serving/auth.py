"""Authentication and authorisation of scorer calls: a bearer token whose scopes cover the method.

No token, or an unknown one -> UNAUTHENTICATED; a known token without the method's scope -> PERMISSION_DENIED.
Health checks and reflection stay open (load balancers and probes call them without credentials).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

from streamrec.security import scopes_of

log = logging.getLogger(__name__)

METHOD_SCOPES = {
    "/streamrec.v1.Recommender/Recommend": "recommend",
    "/streamrec.v1.Recommender/Score": "score",
    "/streamrec.v1.Recommender/Info": "admin",
    "/streamrec.v1.Recommender/Search": "search",
}


def _deny(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: Mapping[str, frozenset[str]]) -> None:
        self.tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        needed = METHOD_SCOPES.get(details.method)
        if needed is None:
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        scopes = scopes_of(metadata.get("authorization"), self.tokens)
        if scopes is None:
            return _deny(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")
        if needed not in scopes:
            return _deny(grpc.StatusCode.PERMISSION_DENIED, f"the token lacks the '{needed}' scope")
        return await continuation(details)

"""gRPC security shared by the scorer (server) and its clients: bearer tokens with scopes, TLS and mutual TLS.

Tokens are configured as JSON `{"<token>": ["recommend", "search", "score", "admin"], ...}` in a secret setting; only
their SHA-256 digests are kept in memory, compared in constant time, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path

import grpc
from pydantic import SecretStr

from streamrec.errors import ConfigError

SCOPES = ("recommend", "score", "search", "admin")
Metadata = tuple[tuple[str, str], ...]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_metadata(token: str | SecretStr | None) -> Metadata:
    """The call metadata a client sends with a token (none without one): what `scopes_of` reads on the server."""
    plain = token.get_secret_value() if isinstance(token, SecretStr) else token
    return (("authorization", f"Bearer {plain}"),) if plain else ()


def parse_tokens(spec: SecretStr | None) -> dict[str, frozenset[str]]:
    """Token digest -> scopes; {} when no tokens are configured (authentication off)."""
    if spec is None or not spec.get_secret_value().strip():
        return {}
    try:
        raw = json.loads(spec.get_secret_value())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"auth tokens are not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise ConfigError("auth tokens must be a JSON object of token -> list of scopes")
    tokens = {}
    for token, scopes in raw.items():
        unknown = set(scopes) - set(SCOPES)
        if not token or not isinstance(scopes, list) or unknown:
            raise ConfigError(f"a token has bad scopes {sorted(unknown)}; allowed: {', '.join(SCOPES)}")
        tokens[digest(token)] = frozenset(scopes)
    return tokens


def scopes_of(authorization: str | None, tokens: Mapping[str, frozenset[str]]) -> frozenset[str] | None:
    """Scopes of the bearer token in an `authorization` header value; None when absent or unknown."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    presented = digest(authorization[len("Bearer ") :].strip())
    for known, scopes in tokens.items():
        if hmac.compare_digest(known, presented):
            return scopes
    return None


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS for the server; with `client_ca` also mutual TLS (clients must present a certificate it signed)."""
    pair = [(_read(key), _read(cert))]
    ca = _read(client_ca)
    return grpc.ssl_server_credentials(pair, root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> grpc.ChannelCredentials:
    """TLS for a client; `cert`/`key` present a client certificate for mutual TLS."""
    if (cert is None) != (key is None):
        raise ConfigError("a client certificate needs both its cert and key file")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca), private_key=_read(key), certificate_chain=_read(cert)
    )

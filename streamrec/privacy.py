"""Keyed pseudonyms for user ids: raw ids stay in the private core, edge-facing data holds HMAC pseudonyms.

`pseudonym = "<key id>.<hex of HMAC-SHA256(key, user_id)>"` (128 bits). The key id makes rotation explicit:
a new key gets a new id, new writes use it, and data under the old pseudonyms ages out with its TTL (user
features: 30 days). Without a configured key a fixed development key is used and a warning is logged once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from functools import lru_cache

from pydantic import SecretStr

log = logging.getLogger(__name__)

DEV_KEY = "streamrec-development-key-not-for-production"
PSEUDONYM_HEX = 32


class Pseudonymizer:
    def __init__(self, key: SecretStr | None, key_id: str) -> None:
        if key is None:
            log.warning("no STREAMREC_USER_ID_KEY set: user ids are pseudonymised with the development key")
            secret = DEV_KEY
        else:
            secret = key.get_secret_value()
        self.key_id = key_id
        self._secret = secret.encode()
        self._cached = lru_cache(maxsize=65_536)(self._compute)

    def _compute(self, user_id: str) -> str:
        digest = hmac.new(self._secret, user_id.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]
        return f"{self.key_id}.{digest}"

    def __call__(self, user_id: str) -> str:
        """The pseudonym of a user id; "" (anonymous) stays ""."""
        return self._cached(user_id) if user_id else ""

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymizer(key_id={self.key_id!r})"

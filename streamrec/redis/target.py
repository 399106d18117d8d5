"""Where a Redis is and how to log in to it: the one parser of redis:// and rediss:// URLs in streamrec.

Every client streamrec makes (the hot-path client, the blocking read, redis-py for tools, Feast's online
store) is built from one `RedisTarget`, so a URL means the same database, user and TLS settings to all of
them. Accepted forms:

    redis://host[:port][/db][?db=N]                 database in the path or the query (not both, unless equal)
    redis://[user]:password@host[:port]/db          AUTH password, or ACL user and password (percent-encoded)
    rediss://host[:port]/db?ssl_ca_certs=ca.pem     TLS; also ssl_certfile, ssl_keyfile (mutual TLS),
                                                    ssl_cert_reqs=required|none, ssl_check_hostname=true|false
    redis+cluster://[user:password@]h1:p1,h2:p2/0   a Redis Cluster, from any of its nodes (`ClusterTarget`);
    rediss+cluster://...                            the same over TLS; database 0 only, as Redis Cluster has

The query names are redis-py's own, so `redis.Redis.from_url` reads such a URL the same way.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from streamrec.errors import ConfigError

DEFAULT_PORT = 6379
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
KNOWN_OPTIONS = ("db", *TLS_OPTIONS)


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_options: tuple[tuple[str, str], ...] = ()  # (name, value) from the URL's query, in TLS_OPTIONS

    @classmethod
    def from_url(cls, url: str) -> RedisTarget:
        """Parse `url`; ConfigError (without the password) for anything it cannot mean."""
        try:
            parts = urlsplit(url)
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ConfigError(f"not a Redis URL ({exc}): {redact_url(url)}") from None
        if parts.scheme not in ("redis", "rediss"):
            raise ConfigError(f"unsupported Redis URL scheme {parts.scheme!r} (redis:// or rediss://)")
        if not parts.hostname:
            raise ConfigError(f"Redis URL without a host: {redact_url(url)}")
        query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = sorted(set(query) - set(KNOWN_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown Redis URL options {unknown} (known: {', '.join(KNOWN_OPTIONS)})")
        tls_options = tuple((name, query[name]) for name in TLS_OPTIONS if name in query)
        if tls_options and parts.scheme != "rediss":
            raise ConfigError(f"TLS options {[n for n, _ in tls_options]} need a rediss:// URL")
        return cls(
            host=parts.hostname,
            port=port,
            db=_database(parts.path, query.get("db"), url),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=parts.scheme == "rediss",
            tls_options=tls_options,
        )

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def url(self, db: int | None = None) -> str:
        """The target as a URL again (with the password): for another client, or another database."""
        credentials = ""
        if self.password is not None:
            user = quote(self.username, safe="") if self.username else ""
            credentials = f"{user}:{quote(self.password, safe='')}@"
        query = "&".join(f"{name}={quote(value, safe='/')}" for name, value in self.tls_options)
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{credentials}{self.address}/{self.db if db is None else db}" + (
            f"?{query}" if query else ""
        )

    def redacted(self) -> str:
        """The URL with the password replaced, for logs and status pages."""
        return redact_url(self.url())

    def setup_commands(self) -> list[tuple[str | int, ...]]:
        """What a new raw connection sends first: AUTH with the credentials, SELECT of the database."""
        setup: list[tuple[str | int, ...]] = []
        if self.password is not None:
            setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        return setup

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a rediss:// target (None for redis://), from the URL's TLS options."""
        if not self.tls:
            return None
        options = dict(self.tls_options)
        context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
        if "ssl_certfile" in options:
            context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
        if options.get("ssl_check_hostname", "true").lower() in ("false", "0", "no"):
            context.check_hostname = False
        if options.get("ssl_cert_reqs", "required").lower() == "none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def redis_py_options(self) -> dict[str, Any]:
        """Keyword arguments of `redis.Redis` / `redis.asyncio.Redis` for this target."""
        options: dict[str, Any] = {"host": self.host, "port": self.port, "db": self.db}
        if self.password is not None:
            options.update(username=self.username, password=self.password)
        if self.tls:
            options["ssl"] = True
            for name, value in self.tls_options:
                options[name] = value.lower() in ("true", "1", "yes") if name == "ssl_check_hostname" else value
        return options

    def feast_connection_string(self) -> str:
        """Feast's `host:port,db=N[,username=..][,password=..][,ssl=true][,ssl_...=..]` for its Redis store."""
        if ":" in self.host:  # Feast splits host from port on ':' and so cannot take an IPv6 address
            raise ConfigError(f"Feast's Redis connection string cannot carry the IPv6 host {self.host}")
        items = [f"{self.host}:{self.port}", f"db={self.db}"]
        if self.username:
            items.append(f"username={self.username}")
        if self.password is not None:
            items.append(f"password={self.password}")
        if self.tls:
            items.append("ssl=true")
            items.extend(f"{name}={value}" for name, value in self.tls_options)
        # Feast splits the string on ',' and '=' without any quoting, so such characters cannot be passed through.
        if any("," in item for item in items) or any(item.count("=") > 1 for item in items[1:]):
            raise ConfigError("Feast's Redis connection string cannot carry ',' or '=' in a user name or password")
        return ",".join(items)


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class ClusterTarget:
    """A Redis Cluster: the nodes to learn its slot map from, and the login and TLS settings every node shares."""

    seeds: tuple[RedisTarget, ...]

    @classmethod
    def from_url(cls, url: str) -> ClusterTarget:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in CLUSTER_SCHEMES:
            raise ConfigError(f"not a Redis Cluster URL (redis+cluster://host:port,...): {redact_url(url)}")
        netloc, slash, tail = rest.partition("/")
        credentials, at, hosts = netloc.rpartition("@")
        if not hosts:
            raise ConfigError(f"Redis Cluster URL without a node: {redact_url(url)}")
        plain = scheme.removesuffix("+cluster")
        login = f"{credentials}{at}"
        seeds = tuple(RedisTarget.from_url(f"{plain}://{login}{host}{slash}{tail}") for host in hosts.split(","))
        if any(seed.db for seed in seeds):
            raise ConfigError(f"Redis Cluster has database 0 only: {redact_url(url)}")
        return cls(seeds)

    def node(self, host: str, port: int) -> RedisTarget:
        """The target of one node the slot map names: its address, the cluster's login and TLS settings."""
        return replace(self.seeds[0], host=host, port=port)

    @property
    def address(self) -> str:
        return ",".join(seed.address for seed in self.seeds)

    def url(self) -> str:
        """The cluster as a URL again (with the password)."""
        first = self.seeds[0].url()
        scheme, _, rest = first.partition("://")
        netloc, _, tail = rest.partition("/")
        login = netloc.rpartition("@")[0]
        hosts = ",".join(seed.address for seed in self.seeds)
        return f"{scheme}+cluster://{login + '@' if login else ''}{hosts}/{tail}"

    def redacted(self) -> str:
        return redact_url(self.url())

    def feast_connection_string(self) -> str:
        """Feast's `h1:p1,h2:p2[,username=..][,password=..][,ssl=true]` for its store with redis_type redis_cluster."""
        single = self.seeds[0].feast_connection_string().split(",")
        options = [item for item in single[1:] if not item.startswith("db=")]
        return ",".join([*(seed.feast_connection_string().split(",")[0] for seed in self.seeds), *options])


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def _database(path: str, query_db: str | None, url: str) -> int:
    path_db = path.strip("/")
    for text in (path_db, query_db):
        if text and not text.isdigit():
            raise ConfigError(f"the database in {redact_url(url)} must be a number, got {text!r}")
    if path_db and query_db and int(path_db) != int(query_db):
        raise ConfigError(f"{redact_url(url)} names two databases ({path_db} in the path, {query_db} in the query)")
    return int(path_db or query_db or 0)


def redact_url(url: str) -> str:
    """`url` fit to print: its password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    login, netloc = parts.netloc.rsplit("@", 1)
    if ":" not in login:
        return url
    user = login.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()

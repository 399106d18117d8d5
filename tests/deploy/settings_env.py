"""Checks shared by the deployment tests: STREAMREC_* variables against the settings classes, compose interpolation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from unittest import mock

from pydantic_settings import BaseSettings

from streamrec.config import CoreSettings
from streamrec.features.config import FeaturesSettings
from streamrec.serving.config import ServingSettings
from streamrec.stream.config import StreamSettings

SETTINGS: list[type[BaseSettings]] = [CoreSettings, StreamSettings, ServingSettings, FeaturesSettings]
PREFIX = "STREAMREC_"


def known_env_names() -> set[str]:
    """Every variable a settings class reads: its prefix + field name, upper case (the nested `core` aside)."""
    names = set()
    for cls in SETTINGS:
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields if field != "core"}
    return names


def unknown_names(env: Mapping[str, Any]) -> set[str]:
    return {name for name in env if name.startswith(PREFIX)} - known_env_names()


def parse_env(env: Mapping[str, Any]) -> dict[type[BaseSettings], BaseSettings]:
    """Build every settings class from exactly these STREAMREC_* variables, the way a container would."""
    ours = {name: str(value) for name, value in env.items() if name.startswith(PREFIX)}
    clean = {name: value for name, value in os.environ.items() if not name.startswith(PREFIX)}
    with mock.patch.dict(os.environ, {**clean, **ours}, clear=True):
        return {cls: cls() for cls in SETTINGS}


def stream_settings(env: Mapping[str, Any]) -> StreamSettings:
    settings = parse_env(env)[StreamSettings]
    assert isinstance(settings, StreamSettings)
    return settings


def serving_settings(env: Mapping[str, Any]) -> ServingSettings:
    settings = parse_env(env)[ServingSettings]
    assert isinstance(settings, ServingSettings)
    return settings


# ${NAME}, ${NAME:-default} (unset or empty), ${NAME-default} (unset), ${NAME:?message} (an error when unset or
# empty), ${NAME?message} (an error when unset), and $$ for a literal dollar
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(KeyError):
    """A variable compose would refuse to start without: no default, or `:?`/`?` and unset."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name
        self.message = message


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Substitute variables like `docker compose` does, in every string of a parsed compose file."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _substitute(m, env), value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


def required_variables(value: Any) -> dict[str, str]:
    """Every `${NAME:?message}` / `${NAME?message}` in the strings of a parsed compose file: name -> message."""
    if isinstance(value, str):
        return {m.group(1): m.group(3) or "" for m in _VARIABLE.finditer(value) if m.group(2) in (":?", "?")}
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return {name: message for item in items for name, message in required_variables(item).items()}


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match.group(0) == "$$":
        return "$"
    name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
    empty_counts_as_unset = operator in (":-", ":?")
    if name in env and (env[name] or not empty_counts_as_unset):
        return env[name]
    if operator is None:
        raise MissingVariable(name, "no default and not set")
    if operator in (":?", "?"):
        raise MissingVariable(name, argument)
    return argument

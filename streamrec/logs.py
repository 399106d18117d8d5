"""Logging set-up for every streamrec process: readable text, or one JSON object per line for log pipelines.

STREAMREC_LOG_FORMAT=json|text (default text), STREAMREC_LOG_LEVEL (default INFO). Extra fields given with
`log.info(..., extra={"event_id": ...})` appear as JSON keys, so one event can be followed across processes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

# attributes every LogRecord has; anything else was passed in `extra` and belongs in the JSON
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def logging_config(verbose: bool = False) -> dict[str, Any]:
    """A dictConfig for the root logger (also handed to Faust's worker, which otherwise installs its own)."""
    fmt = os.environ.get("STREAMREC_LOG_FORMAT", "text")
    level = "DEBUG" if verbose else os.environ.get("STREAMREC_LOG_LEVEL", "INFO").upper()
    formatter = (
        {"()": JsonFormatter} if fmt == "json" else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"level": level, "handlers": ["stderr"]},
    }


def setup(verbose: bool = False) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(verbose))

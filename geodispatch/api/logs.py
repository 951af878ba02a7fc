"""Secrets never reach the server's logs: credentials in query strings are masked.

Some clients can only put a credential in the URL: Traccar Client's server URL carries the device
token (``/api/ingest/osmand?token=...``), a browser WebSocket carries the console JWT
(``/api/live?token=...``). uvicorn logs every request line with its query string, so
:func:`install` puts a filter on uvicorn's access and error loggers that rewrites the value of
every credential parameter (:data:`SECRET_PARAMS`) to ``***`` before anything is written.
"""

from __future__ import annotations

import logging
import re

SECRET_PARAMS = ("token", "access_token", "password", "secret", "key")
_SECRET = re.compile(r"([?&](?:" + "|".join(SECRET_PARAMS) + r")=)[^&\s\"]*", re.IGNORECASE)
LOGGERS = ("uvicorn.access", "uvicorn.error")


def scrub(text: str) -> str:
    """``text`` with the value of every credential query parameter replaced by ``***``."""
    return _SECRET.sub(r"\1***", text)


class QuerySecretFilter(logging.Filter):
    """Masks credential query parameters in a record's arguments and message."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(scrub(a) if isinstance(a, str) and "=" in a else a
                                for a in args)
        if isinstance(record.msg, str) and "=" in record.msg:
            record.msg = scrub(record.msg)
        return True


def install() -> None:
    """Add the filter to uvicorn's loggers (idempotent; safe after uvicorn's dictConfig, which
    keeps existing filters)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuerySecretFilter) for f in logger.filters):
            logger.addFilter(QuerySecretFilter())

"""The API's error answers, the rules its query parameters follow, and how bad requests are logged.

Every error the API gives, on any route (unknown ones included) and for any method, is JSON of
one shape::

    {"error": {"status": 404, "code": "unknown_symbol", "message": "..."}}

``status`` repeats the HTTP status; ``code`` is stable and meant for programs (the API's own
codes below, else the status phrase in snake case: ``not_found``, ``method_not_allowed``,
``bad_request``, ...); ``message`` is for people and may change.

    400 bad_symbol          a malformed symbol (see :func:`parse_symbol`)
    400 bad_role            a role that is not champion, canary or shadow
    404 unknown_symbol      a well-formed symbol the sidecar does not serve
    404 no_prediction_yet   a served symbol without a prediction yet
    404 no_risk_engine      ``/risk`` on an API without a risk engine
    503 shutting_down       a stream asked for while the server stops
    500 internal_error      anything else that went wrong in a handler (logged with its stack)

The WebSocket's filters follow the same rules and are checked before the upgrade, so a refused
stream gets the same JSON and status as a plain request would.

A request aiohttp cannot parse never reaches a route (aiohttp answers it itself, as plain text).
aiohttp logs it as an ERROR with a traceback; a port scanner or a broken client is not a fault of
the server, so :class:`ServerLog` turns that into one WARNING line.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from streaming.predictions import ROLES, Role

log = logging.getLogger(__name__)

SYMBOL_MAX_CHARS = 32
# Instrument ids beyond spot pairs (BTC-PERP, ETH/USDT, BINANCE:BTCUSDT, BTC_240329) need these.
SYMBOL_SEPARATORS = "-:_/"
_SYMBOL = re.compile(rf"[A-Z0-9][A-Z0-9{re.escape(SYMBOL_SEPARATORS)}]{{0,{SYMBOL_MAX_CHARS - 1}}}")
SYMBOL_RULE = (
    f"1 to {SYMBOL_MAX_CHARS} ASCII letters, digits and '{SYMBOL_SEPARATORS}', "
    "starting with a letter or digit"
)
_ROLES_BY_NAME: dict[str, Role] = {role: role for role in ROLES}
_ECHO_CHARS = 40  # of a refused value, in the message
_LOGGED_CHARS = 300  # of a bad request's description, in the log line


class ApiError(Exception):
    """An error answer with the API's JSON shape; handlers raise it, the middleware renders it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(
    status: int, code: str, message: str, headers: MutableMapping[str, str] | None = None
) -> web.Response:
    """The JSON error answer (see the module docs for the shape)."""
    body = msgspec.json.encode({"error": {"status": status, "code": code, "message": message}})
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def status_code(status: int) -> str:
    """The generic ``code`` of an HTTP status: its phrase in snake case (``not_found``)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "http_error"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def _http_error_message(request: web.Request, error: web.HTTPException) -> str:
    if isinstance(error, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(error.allowed_methods))
        return f"{request.method} is not allowed on {request.path}; use {allowed}"
    if isinstance(error, web.HTTPNotFound) and error.text in (None, "404: Not Found"):
        return f"no route {request.path}"
    return error.text or error.reason


# The error answer replaces aiohttp's body; these headers described that body.
_BODY_HEADERS = frozenset({"content-type", "content-length"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error a route (or the router) gives into the API's JSON error shape."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message)
    except web.HTTPException as error:
        if error.status < 400:  # redirects and the like are answers, not errors
            raise
        headers = {k: v for k, v in error.headers.items() if k.lower() not in _BODY_HEADERS}
        message = _http_error_message(request, error)
        return error_response(error.status, status_code(error.status), message, headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "the server failed to answer this request")


def _echo(raw: str) -> str:
    return repr(raw if len(raw) <= _ECHO_CHARS else raw[:_ECHO_CHARS] + "…")


def parse_symbol(raw: str) -> str:
    """The canonical (uppercase) symbol, or a 400 ``bad_symbol``: a symbol is
    :data:`SYMBOL_RULE`; lowercase letters are read as uppercase."""
    # isascii first: str.upper() maps some non-ASCII letters onto ASCII ones ("ß" → "SS").
    symbol = raw.upper() if raw.isascii() else ""
    if not _SYMBOL.fullmatch(symbol):
        raise ApiError(400, "bad_symbol", f"malformed symbol {_echo(raw)}: use {SYMBOL_RULE}")
    return symbol


def _items(values: Iterable[str]) -> list[str]:
    """A comma-separated query parameter's items, over every occurrence of the parameter."""
    return [item for value in values for item in value.split(",")]


def parse_symbols(values: Iterable[str]) -> list[str]:
    """Every symbol of a ``symbols=A,B`` parameter (400 if any is malformed or empty)."""
    return [parse_symbol(item) for item in _items(values)]


def parse_roles(values: Iterable[str]) -> frozenset[Role]:
    """Every role of a ``roles=champion,shadow`` parameter (400 ``bad_role`` for any other)."""
    roles: set[Role] = set()
    for item in _items(values):
        role = _ROLES_BY_NAME.get(item)
        if role is None:
            message = f"unknown role {_echo(item)}: use {', '.join(ROLES)}"
            raise ApiError(400, "bad_role", message)
        roles.add(role)
    return frozenset(roles)


def _one_line(text: str) -> str:
    # aiohttp's parser messages span lines and point at the fault with a lone caret.
    words = [word for word in text.split() if word != "^"]
    line = " ".join(words)
    return line if len(line) <= _LOGGED_CHARS else line[:_LOGGED_CHARS] + "…"


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """The logger handed to aiohttp's server (its ``logger`` option) for its connections.

    A request aiohttp could not parse (``HttpProcessingError``) becomes one WARNING line naming
    the peer and the fault, instead of an ERROR with a traceback (or a DEBUG one, which aiohttp
    uses for a first request with a bad method). Everything else passes through unchanged.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or logging.getLogger("aiohttp.server"), {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log as asked, except a bad request: one WARNING line."""
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            peer = args[0] if args else "an unknown peer"
            self.logger.warning(
                "bad request from %s: %s", peer, _one_line(error.message or str(error))
            )
            return
        super().log(level, msg, *args, **kwargs)

"""The control API as a Flask app: bearer-token auth, bounded bodies, one view per route.

Built by `create_app` from the route table (appliance/api/routes.py); served by
appliance/api/server.py in the engine process (docs/ARCHITECTURE.md, "The control API").
Every answer is JSON: the facade's result with 200, or ``{"error": message}`` with the status.
Engine calls go through ``call_in_loop`` so call control stays single-threaded in the SIP loop.
"""

from __future__ import annotations

import hmac
import json
import logging
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import ClientDisconnected, HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Request

from appliance.api.body import BodyUnreadable, decode_json
from appliance.api.facade import ApiError, EngineFacade, JsonValue
from appliance.api.openapi import document
from appliance.api.routes import OPENAPI_PATH, ROUTES, Route
from appliance.schema.api import Body, BodyInvalid, parse_body
from appliance.schema.errors import FieldError
from appliance.system.liveness import Heartbeat

log = logging.getLogger("appliance.api.server")  # the name the engine's log lines have always had

CallInLoop = Callable[..., Any]
DEFAULT_MAX_BODY = 64 * 1024


@dataclass
class ApiContext:
    """What the views need: the engine, the way into its loop, the token and the limits."""

    token: str
    facade: EngineFacade
    call_in_loop: CallInLoop
    max_body: int = DEFAULT_MAX_BODY
    handler_deaths: Heartbeat = field(default_factory=Heartbeat)  # requests that died with a bug of ours


class SegmentConverter(BaseConverter):
    """One path segment, percent-decoded after matching (so ``SIP%2F1001-1`` is ``SIP/1001-1``)."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return urllib.parse.unquote(value)


class DigitsConverter(BaseConverter):
    """A decimal id, kept as text as the facade takes it."""

    regex = "[0-9]+"


def _answer(status: int, payload: JsonValue, headers: dict[str, str] | None = None) -> Response:
    resp = Response(json.dumps(payload), status=status, content_type="application/json; charset=utf-8")
    resp.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def _error(status: int, message: str, headers: dict[str, str] | None = None,
           errors: Sequence[FieldError] = ()) -> Response:
    body: dict[str, JsonValue] = {"error": message}
    if errors:
        body["errors"] = [{"loc": list(e.loc), "msg": e.msg} for e in errors]
    return _answer(status, body, headers)


def _authorized(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # RFC 7235 section 2.1: the auth scheme is case-insensitive.
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _read_body(max_body: int) -> Any:
    """The decoded JSON body, or None when there is none; ApiError says why it was refused."""
    if request.headers.get("Transfer-Encoding"):
        raise ApiError(411, "chunked bodies are not supported; send Content-Length")
    raw_length = request.headers.get("Content-Length")
    if raw_length is None:
        return None
    try:
        length = int(raw_length)
        if length < 0:
            raise ValueError(raw_length)
    except ValueError:
        raise ApiError(400, f"invalid Content-Length {raw_length!r}") from None
    if length > max_body:
        # Not read: the server drains it after the answer, so the client sees this 413, not a reset.
        raise ApiError(413, f"body larger than {max_body} bytes")
    if length == 0:
        return None
    try:
        data = request.stream.read(length)
    except (ClientDisconnected, OSError):
        data = b""
    if len(data) != length:
        raise ApiError(400, "body shorter than Content-Length")
    try:
        return decode_json(data)
    except BodyUnreadable as exc:
        raise ApiError(400, str(exc)) from None


def _checked_body(max_body: int, model: type[Body] | None) -> Body | None:
    """The request's body validated by ``model`` (None: the request takes no body)."""
    body = _read_body(max_body)
    if model is None:
        if body is not None:
            raise ApiError(400, "this request takes no body")
        return None
    try:
        return parse_body(model, body)
    except BodyInvalid as exc:
        raise ApiError(400, str(exc)) from None


def _view(ctx: ApiContext, route: Route) -> Callable[..., Response]:
    def view(**params: str) -> Response:
        try:
            args = route.args(params, _checked_body(ctx.max_body, route.body))
            fn = getattr(ctx.facade, route.facade)
            result = ctx.call_in_loop(fn, *args) if route.in_loop else fn(*args)
            return _answer(200, result)
        except ApiError as exc:
            return _error(exc.status, exc.message, errors=exc.errors)
        except Exception:  # noqa: BLE001 -- an engine bug: answer 500, keep serving, log the traceback
            log.exception("control API %s %s failed", request.method, request.path)
            return _error(500, "internal error")

    view.__name__ = f"{route.method.lower()}_{route.facade}"
    return view


class _RawPathApp:
    """WSGI middleware: route on the raw request path, so ``%2F`` stays inside its segment.

    WSGI servers percent-decode PATH_INFO; the API's ids may hold ``/`` (``SIP/1001-1``), so the
    path is taken again from the request line (REQUEST_URI, which Werkzeug's server and test
    client both set), and each parameter is decoded by its converter after matching.
    """

    def __init__(self, wsgi: Callable[..., Any]) -> None:
        self.wsgi = wsgi

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        uri = environ.get("REQUEST_URI") or environ.get("RAW_URI")
        if uri:
            environ["PATH_INFO"] = urllib.parse.urlsplit(uri).path
        return self.wsgi(environ, start_response)


def create_app(ctx: ApiContext) -> Flask:
    """The control API's Flask app, one view per route of ROUTES plus the OpenAPI document."""
    app = Flask("appliance.api", static_folder=None)
    app.url_map.converters["seg"] = SegmentConverter
    app.url_map.converters["digits"] = DigitsConverter
    app.url_map.merge_slashes = False  # "/v1//status" is not "/v1/status": a 404, as it always was
    app.url_map.strict_slashes = True
    for route in ROUTES:
        app.add_url_rule(route.path, endpoint=f"{route.method} {route.path}", view_func=_view(ctx, route),
                         methods=[route.method], provide_automatic_options=False)
    openapi = document(ROUTES)

    def openapi_json() -> Response:
        try:
            _checked_body(ctx.max_body, None)
        except ApiError as exc:
            return _error(exc.status, exc.message)
        return _answer(200, openapi)

    app.add_url_rule(OPENAPI_PATH, endpoint="openapi", view_func=openapi_json, methods=["GET"],
                     provide_automatic_options=False)

    @app.before_request
    def authorize() -> Response | None:
        # Before routing answers: an unknown path is a 401 too, so it reveals nothing without the token.
        if not _authorized(ctx.token):
            return _error(401, "missing or invalid bearer token", {"WWW-Authenticate": 'Bearer realm="plateau"'})
        if request.method == "HEAD":  # Werkzeug adds HEAD to every GET rule; the API never served it
            return _not_allowed(request)
        return None

    @app.errorhandler(MethodNotAllowed)
    def not_allowed(exc: MethodNotAllowed) -> Response:
        return _not_allowed(request, list(exc.valid_methods or ()))

    @app.errorhandler(NotFound)
    def not_found(_exc: NotFound) -> Response:
        return _error(404, f"no such resource {request.path}")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 400, exc.description or exc.name)

    @app.errorhandler(Exception)
    def bug(exc: Exception) -> Response:
        # A bug of the API layer itself (the views catch the engine's): counted as a request death.
        ctx.handler_deaths.died(exc)
        log.error("control API request %s %s died", request.method, request.path, exc_info=exc)
        return _error(500, "internal error")

    app.wsgi_app = _RawPathApp(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _not_allowed(req: Request, valid: list[str] | None = None) -> Response:
    if valid is None:  # a HEAD: the methods the path has, as routing would have listed them
        valid = list(current_app.url_map.bind_to_environ(req.environ).allowed_methods())
    allowed = sorted({m for m in valid if m != "HEAD"})
    if not allowed:
        return _error(404, f"no such resource {req.path}")
    return _error(405, f"method {req.method} not allowed", {"Allow": ", ".join(allowed)})

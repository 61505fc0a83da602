"""The OpenAPI 3.1 document of the control API, generated from the route table and its models.

Served at ``GET /v1/openapi.json``. Nothing in it is written by hand: each operation comes from
a `Route` (its path, method, body model and answer model), its summary from the docstring of
the EngineFacade method it calls, and every schema from pydantic's ``model_json_schema``, the
same models that validate the bodies. OpenAPI 3.1 because its schemas are JSON Schema 2020-12,
which is what pydantic v2 writes (``"type": "null"`` for an optional field).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from appliance.api.facade import EngineFacade
from appliance.api.routes import OPENAPI_PATH, Route
from appliance.schema.api import ErrorBody, Result

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"  # the /v1 prefix
_RULE_PARAM = re.compile(r"<(?:(?P<conv>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")
_REF = "#/components/schemas/{model}"


def _param_schema(conv: str | None, args: str | None) -> dict[str, Any]:
    if conv == "digits":
        return {"type": "string", "pattern": "^[0-9]+$"}
    if conv == "any":
        return {"type": "string", "enum": [a.strip() for a in (args or "").split(",")]}
    return {"type": "string", "minLength": 1, "description": "one path segment, percent-encoded"}


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """A Werkzeug rule as an OpenAPI path template and its path parameters."""
    params = [{"name": m["name"], "in": "path", "required": True, "schema": _param_schema(m["conv"], m["args"])}
              for m in _RULE_PARAM.finditer(rule)]
    return _RULE_PARAM.sub(lambda m: "{" + m["name"] + "}", rule), params


def _ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    if model.__name__ not in schemas:
        schema = model.model_json_schema(by_alias=True, ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _summary(facade_method: str) -> tuple[str, str]:
    doc = inspect.getdoc(getattr(EngineFacade, facade_method)) or facade_method
    first, _, rest = doc.partition("\n")
    return first.strip(), " ".join(rest.split())


def _operation(route: Route, params: list[dict[str, Any]], schemas: dict[str, Any]) -> dict[str, Any]:
    summary, description = _summary(route.facade)
    answer = _ref(route.result, schemas)
    op: dict[str, Any] = {
        "operationId": route.facade,
        "summary": summary,
        "responses": {
            "200": {"description": "done", "content": _json({"type": "array", "items": answer} if route.many
                                                            else answer)},
            "default": {"description": "refused: the status says why (400 bad body, 404 unknown, 409 not now...)",
                        "content": _json(_ref(ErrorBody, schemas))},
        },
    }
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if route.body is not None:
        required = any(f.is_required() for f in route.body.model_fields.values())
        op["requestBody"] = {"required": required, "content": _json(_ref(route.body, schemas))}
    return op


def document(routes: Iterable[Route]) -> dict[str, Any]:
    """The whole OpenAPI document of ``routes`` and of its own route."""
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path, params = openapi_path(route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, params, schemas)
    paths[OPENAPI_PATH] = {"get": {
        "operationId": "openapi",
        "summary": "This document: every route, its body and its answer.",
        "responses": {"200": {"description": "the OpenAPI document",
                              "content": _json({"type": "object"})},
                      "default": {"description": "refused", "content": _json(_ref(ErrorBody, schemas))}},
    }}
    _ref(Result, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Plateau control API", "version": API_VERSION,
                 "description": "The local control API of the Plateau engine, on the loopback interface. "
                                "Every request carries the bearer token of the engine's api.json."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }

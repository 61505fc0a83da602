"""The OpenAPI document a running engine serves: valid OpenAPI 3, and the routes it answers.

The engine is the real one (tests/peers/engine.py); the document is checked with
openapi-spec-validator, a validator we did not write. Each documented operation is then asked
of the engine with a body it must refuse ({"probe": 1}: an unknown field, or a body where none
is taken), so every route is shown to exist without changing the engine's state, and a method
the document does not list on a path is a 405. The other way round, every rule of the app the
engine serves is in the document.
"""

from __future__ import annotations

import re
from typing import Any

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from appliance.api.app import ApiContext, create_app
from appliance.api.routes import OPENAPI_PATH
from tests.peers.engine import Engine
from tests.peers.pjsua import registered_phone
from tests.peers.polling import wait_until

METHODS = ("get", "post", "delete", "put", "patch")
_SAMPLE = {"id": "2001", "addr": "192.0.2.9", "name": "sales", "ext": "1001"}


def concrete(path: str, operation: dict[str, Any]) -> str:
    """A request path for a template: each parameter filled with a value its schema allows."""
    values = {}
    for param in operation.get("parameters", []):
        schema = param["schema"]
        if "enum" in schema:
            values[param["name"]] = schema["enum"][0]
        elif schema.get("pattern") == "^[0-9]+$":
            values[param["name"]] = "7"
        else:
            values[param["name"]] = _SAMPLE.get(param["name"], "x")
    return re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path)


def test_the_engine_serves_a_valid_openapi_document_of_every_route(engine: Engine) -> None:
    status, doc = engine.api("GET", OPENAPI_PATH)
    assert status == 200, doc
    validate(doc)  # raises OpenAPIValidationError with the path of the first problem
    assert doc["openapi"].startswith("3.")

    engine.api_token, good = "not-the-token", engine.api_token
    try:
        assert engine.api("GET", OPENAPI_PATH)[0] == 401  # behind the token, like every route
    finally:
        engine.api_token = good

    operations = [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items() if m in METHODS]
    assert len(operations) == 30  # the 28 routes of the old server, /v1/monitors (issue 15) and the document itself
    for method, path, op in operations:
        url = concrete(path, op)
        status, body = engine.api(method.upper(), url, {"probe": 1})
        assert status == 400, (method, url, status, body)
        assert body["error"].startswith(("unknown field 'probe'", "this request takes no body")), (method, url, body)
    for path, item in doc["paths"].items():
        missing = [m for m in METHODS if m not in item]
        url = concrete(path, next(iter(item.values())))
        for method in missing:
            status, body = engine.api(method.upper(), url)
            assert status == 405, (method, url, status, body)

    # What the engine answers is what the document says it answers (the side-effect-free GETs),
    # with a phone registered so that a list holds something.
    with registered_phone(engine, "doc", "1001"):
        wait_until(lambda: engine.api("GET", "/v1/registrations")[1] != [], what="1001 registered")
        for method, path, op in operations:
            if method == "get" and "{" not in path and path != OPENAPI_PATH:
                status, answer = engine.api("GET", path)
                schema = op["responses"]["200"]["content"]["application/json"]["schema"]
                assert status == 200, (path, answer)
                OAS31Validator({**schema, "components": doc["components"]}).validate(answer)

    app = create_app(ApiContext("t" * 20, None, lambda fn, *a: fn(*a)))  # type: ignore[arg-type]
    served = {(m.lower(), rule.rule) for rule in app.url_map.iter_rules() for m in rule.methods or ()
              if m != "HEAD"}
    documented = {(m, re.sub(r"\{(\w+)\}", r"<\1>", p)) for m, p, _ in operations}
    assert {(m, re.sub(r"<(?:[^:>]+:)?(\w+)>", r"<\1>", r)) for m, r in served} == documented

"""The control API's routes as data: path, method, body model, facade method, answer shape.

One table serves the Flask app (appliance/api/app.py), which registers a view per route, and
the OpenAPI document (appliance/api/openapi.py), which describes the same routes: adding a route
is one `Route` here and, when it takes a body, one model in appliance/schema/api.py
(docs/ARCHITECTURE.md, "The control API").

Paths are Werkzeug rules over the *raw* (still percent-encoded) path, so an id holding a ``/``
travels as ``%2F`` inside one segment: ``seg`` is one segment, decoded; ``digits`` is a decimal
id kept as text; ``any(a, b)`` is one of the listed words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from appliance.api.facade import ApiError
from appliance.schema import api as schema

Params = dict[str, str]
#: The facade's arguments from the path parameters and the validated body (None: no body model).
ArgsOf = Callable[[Params, Any], tuple[Any, ...]]


@dataclass(frozen=True)
class Route:
    """One route: ``method path`` calls ``EngineFacade.<facade>(*args(params, body))``."""

    method: str
    path: str
    facade: str
    args: ArgsOf
    body: type[schema.Body] | None = None  # None: the request takes no body
    result: type[BaseModel] = schema.Result
    many: bool = False  # the answer is a list of `result`
    # False for facade methods that are thread-safe and wait on another process (a headset):
    # run in the API thread so the wait never stalls SIP in the engine loop.
    in_loop: bool = True


def _params(*names: str) -> ArgsOf:
    return lambda p, _body: tuple(p[name] for name in names)


def _originate(_p: Params, b: schema.OriginateBody) -> tuple[Any, ...]:
    return (b.from_ext, b.to, b.caller_id)


def _agent_action(p: Params, b: schema.AgentActionBody) -> tuple[Any, ...]:
    # Only login needs a device; the model cannot know the action, which is in the path.
    if p["action"] == "login" and "device" not in b.model_fields_set:
        raise ApiError(400, "field 'device' is required to log in")
    return (p["id"], p["action"], b.device, b.reason)


def _interaction(p: Params, b: schema.InteractionBody) -> tuple[Any, ...]:
    if not b.model_fields_set:
        raise ApiError(400, "nothing to change: give status, disposition or notes")
    return (p["id"], b.status, b.disposition, b.notes)


def _disposition(p: Params, b: schema.DispositionBody) -> tuple[Any, ...]:
    return (p["id"], b.code, b.callback_at, b.agent)


AGENT = "/v1/agents/<seg:id>"

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/status", "status", _params(), result=schema.StatusResult),
    Route("GET", "/v1/registrations", "registrations", _params(), result=schema.Registration, many=True),
    Route("GET", "/v1/channels", "channels", _params(), many=True),
    Route("GET", "/v1/bridges", "bridges", _params(), result=schema.Bridge, many=True),
    Route("GET", "/v1/calls", "calls", _params(), many=True),
    Route("GET", "/v1/hardware", "hardware", _params()),
    Route("GET", "/v1/blocked", "blocked", _params(), result=schema.Blocked, many=True),
    Route("DELETE", "/v1/blocked/<seg:addr>", "unblock", _params("addr"), result=schema.UnblockResult),
    Route("POST", "/v1/originate", "originate", _originate, schema.OriginateBody, schema.OriginateResult),
    Route("POST", "/v1/reload", "reload", _params(), result=schema.ReloadResult),
    Route("POST", "/v1/channels/<seg:id>/hangup", "hangup", _params("id"), schema.NoFields,
          schema.HangupResult),
    Route("POST", "/v1/channels/<seg:id>/transfer", "transfer", lambda p, b: (p["id"], b.to),
          schema.TransferBody, schema.TransferResult),
    Route("GET", "/v1/agents", "agents", _params(), many=True),
    Route("POST", AGENT + "/<any(login, logout, pause, unpause):action>", "agent_action", _agent_action,
          schema.AgentActionBody, schema.AgentResult),
    Route("GET", "/v1/queues", "queues", _params(), many=True),
    Route("POST", AGENT + "/monitor", "monitor", lambda p, b: (p["id"], b.device, b.mode), schema.MonitorBody,
          schema.MonitorResult),
    Route("GET", "/v1/monitors", "monitors", _params(), many=True),
    Route("GET", "/v1/queues/<seg:name>/kpis", "queue_kpis", _params("name")),
    Route("GET", "/v1/interactions/<digits:id>", "interaction", _params("id")),
    Route("POST", "/v1/interactions/<digits:id>", "update_interaction", _interaction, schema.InteractionBody),
    Route("GET", "/v1/headsets", "headsets", _params(), many=True),
    Route("GET", "/v1/campaigns", "campaigns", _params(), many=True),
    Route("POST", "/v1/campaigns/<seg:name>/<any(start, pause):action>", "campaign_action",
          _params("name", "action"), schema.NoFields),
    Route("GET", AGENT + "/lead", "agent_lead", _params("id")),
    Route("GET", AGENT + "/preview", "agent_preview", _params("id")),
    Route("POST", AGENT + "/preview", "agent_preview_action", lambda p, b: (p["id"], b.action),
          schema.PreviewActionBody, schema.PreviewActionResult),
    Route("POST", "/v1/leads/<digits:id>/disposition", "lead_disposition", _disposition, schema.DispositionBody),
    Route("POST", "/v1/dnc", "add_dnc", lambda _p, b: (b.number, b.note, b.campaign), schema.DncBody,
          schema.DncResult),
    Route("POST", "/v1/headsets/<seg:ext>/<any(answer, hangup):action>", "headset_action",
          _params("ext", "action"), schema.NoFields, schema.HeadsetActionResult, in_loop=False),
)

#: The OpenAPI document's own route (served by the app, not the engine).
OPENAPI_PATH = "/v1/openapi.json"

"""Client for the control API, used by the CLI and the web app."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from appliance.api.apifile import read_api_file
from appliance.api.facade import ApiError, ApiUnavailable, JsonValue
from appliance.schema.errors import FieldError


class ControlApiClient:
    """One method per control-API route; raises ApiError with the server's message."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        # No proxies: the API is local, and http_proxy must not see the token.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def from_data_dir(cls, data_dir: pathlib.Path, *, timeout: float = 10.0) -> ControlApiClient:
        """Build a client from ``<data_dir>/api.json`` written by the engine at start."""
        endpoint = read_api_file(data_dir)
        return cls(endpoint.url, endpoint.token, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> JsonValue:
        """Send one request and return the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            exc.close()
            try:
                answer = json.loads(raw.decode("utf-8"))
                message = answer["error"]
            except (ValueError, KeyError, TypeError):
                answer, message = None, raw.decode("utf-8", errors="replace") or exc.reason
            raise ApiError(exc.code, str(message), _field_errors(answer)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiUnavailable(f"control API at {self.base_url} unreachable: {reason}") from None

    @staticmethod
    def _seg(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def openapi(self) -> dict[str, JsonValue]:
        """GET /v1/openapi.json: the OpenAPI 3.1 document of every route."""
        return self.request("GET", "/v1/openapi.json")

    def status(self) -> dict[str, JsonValue]:
        """GET /v1/status."""
        return self.request("GET", "/v1/status")

    def registrations(self) -> list[dict[str, JsonValue]]:
        """GET /v1/registrations."""
        return self.request("GET", "/v1/registrations")

    def channels(self) -> list[dict[str, JsonValue]]:
        """GET /v1/channels."""
        return self.request("GET", "/v1/channels")

    def bridges(self) -> list[dict[str, JsonValue]]:
        """GET /v1/bridges."""
        return self.request("GET", "/v1/bridges")

    def calls(self) -> list[dict[str, JsonValue]]:
        """GET /v1/calls."""
        return self.request("GET", "/v1/calls")

    def blocked(self) -> list[dict[str, JsonValue]]:
        """GET /v1/blocked."""
        return self.request("GET", "/v1/blocked")

    def unblock(self, address: str) -> dict[str, JsonValue]:
        """DELETE /v1/blocked/<address>."""
        return self.request("DELETE", f"/v1/blocked/{self._seg(address)}")

    def originate(self, from_ext: str, to: str, caller_id: str | None = None) -> dict[str, JsonValue]:
        """POST /v1/originate."""
        body: dict[str, str] = {"from": from_ext, "to": to}
        if caller_id is not None:
            body["caller_id"] = caller_id
        return self.request("POST", "/v1/originate", body)

    def reload(self) -> dict[str, JsonValue]:
        """POST /v1/reload: the engine takes the stored configuration anew."""
        return self.request("POST", "/v1/reload")

    def hangup(self, channel_id: str) -> dict[str, JsonValue]:
        """POST /v1/channels/<id>/hangup."""
        return self.request("POST", f"/v1/channels/{self._seg(channel_id)}/hangup", {})

    def transfer(self, channel_id: str, to: str) -> dict[str, JsonValue]:
        """POST /v1/channels/<id>/transfer."""
        return self.request("POST", f"/v1/channels/{self._seg(channel_id)}/transfer", {"to": to})


def _field_errors(answer: Any) -> list[FieldError]:
    """The FieldErrors of an error answer (its "errors" list); [] when it has none or they are malformed."""
    found = answer.get("errors") if isinstance(answer, dict) else None
    if not isinstance(found, list):
        return []
    out = []
    for item in found:
        loc = item.get("loc") if isinstance(item, dict) else None
        if isinstance(loc, list) and all(isinstance(p, (str, int)) for p in loc) and isinstance(item.get("msg"), str):
            out.append(FieldError(tuple(loc), item["msg"]))
    return out

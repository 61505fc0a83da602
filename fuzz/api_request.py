"""Control-API requests, as raw HTTP bytes, through Werkzeug's request parsing, the auth check,
the router, the body reader and the pydantic body models to the engine facade.

The input is the whole request a client would send; ``@TOKEN@`` in it becomes the server's
bearer token (a fuzzer cannot guess 256 bits), so the mutations reach past the auth check. Each
input is handled synchronously by the server's own request handler on one end of a socket pair,
with nothing else to write, as a connection whose client has sent everything.

Contract: the server never answers 500 and no request dies (the facade here only answers);
every answer of the app is a JSON object, ``{"error": ...}`` unless it is a 200; the facade is
called only with strings (path parameters, validated fields) or, for ``callback_at``, a number.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from fuzz.harness import Target, instrumented, main

with instrumented():
    from appliance.api.server import ControlApiServer

TOKEN = "fuzz-token-" + "x" * 32


class AnsweringFacade:
    """Every facade method answers; the arguments are checked against what the models promise."""

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any) -> dict[str, Any]:
            for arg in args:
                if arg is not None and not isinstance(arg, (str, int, float)) or isinstance(arg, bool):
                    raise AssertionError(f"{name} called with {arg!r}")
                if isinstance(arg, str) and not arg:
                    raise AssertionError(f"{name} called with an empty string")
            return {"called": name}

        return method


_server = ControlApiServer("127.0.0.1", 0, TOKEN, AnsweringFacade(), lambda fn, *a: fn(*a),  # type: ignore[arg-type]
                           max_body=4096)
_server.start()  # bound, so the handler has a real server; its accept loop never sees our inputs


def one_input(data: bytes) -> None:
    request = data.replace(b"@TOKEN@", TOKEN.encode())
    ours, theirs = socket.socketpair()
    try:
        ours.sendall(request[:65536])
        ours.shutdown(socket.SHUT_WR)  # the client has sent everything
        theirs.settimeout(5.0)
        _server.serve_connection(theirs, ("127.0.0.1", 40000))
        theirs.close()
        answer = b""
        while chunk := ours.recv(65536):
            answer += chunk
    finally:
        ours.close()
        theirs.close()
    if _server.handler_deaths.deaths:
        raise AssertionError(f"a request died: {_server.handler_deaths.last_error}")
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    if status_line.startswith(b"HTTP/") and b" 500 " in status_line + b" ":
        raise AssertionError(f"500 for {request[:200]!r}: {body[:200]!r}")
    # http.server splits the request line on any whitespace (str.split): that is how it reads HEAD
    words = request.split(b"\n", 1)[0].decode("iso-8859-1").split()
    if b"content-type: application/json" in head.lower() and words[:1] != ["HEAD"]:  # HEAD: no body
        doc = json.loads(body)
        if not isinstance(doc, dict) or (b" 200 " not in status_line and set(doc) != {"error"}):
            raise AssertionError(f"not an API answer: {status_line!r} {body[:200]!r}")


TARGET = Target("api_request", __doc__ or "", one_input)

if __name__ == "__main__":
    main(TARGET)

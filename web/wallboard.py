"""The supervisor's wallboard: queues and agents, live, with one-click supervision actions.

The board is a snapshot of the engine (GET /v1/queues, /v1/agents and each queue's
/v1/queues/<name>/kpis) pushed to the browser with server-sent events (HTML Living Standard
§9.2, `text/event-stream`). One snapshot is built per interval for every open board of the
process (`BoardFeed`), so ten wallboards cost the engine what one does; the KPIs, which scan
today's queue log, are refreshed less often than the live counts.

The engine access helpers (`ask`, `engine_failure`, `pause_code`) are shared with the agent desk.
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.schema.settings import PAUSE_REASONS
from appliance.store import accounts
from web.context import audit, current_user, engine, login_required, store

bp = Blueprint("wallboard", __name__, url_prefix="/wallboard")

ROLES = ("admin", "supervisor")
MONITOR_MODES = ("listen", "whisper", "barge")
LEVELS = ("ok", "warn", "alarm")  # time in state against the queue's thresholds (appliance/pbx/acd_board.py)
KPI_SECONDS = 10.0  # the KPIs scan today's queue log: refreshed less often than the live counts
STREAMS_PER_SESSION = 4  # live boards one login may hold open (tabs, a second screen)
STREAMS_TOTAL = 200  # live boards of the whole process
EXTENSION_RE = re.compile(r"[0-9A-Za-z_.+*#-]{1,32}")
NUMBER_RE = re.compile(r"\+?[0-9*#]{1,32}")

Ask = Callable[..., Any]


# -- engine access (shared with the agent desk) ----------------------------------------------------
def ask(method: str, path: str, body: Any = None) -> Any:
    """One control-API request; ApiUnavailable when the engine is not running (no api.json too)."""
    try:
        client = engine()
    except (OSError, ValueError) as exc:  # api.json absent or half-written: the engine is not up
        raise ApiUnavailable(f"engine not running ({exc})") from None
    return client.request(method, path, body)


def seg(value: str) -> str:
    """A path segment for the control API (an id typed or taken from a URL)."""
    return urllib.parse.quote(value, safe="")


def engine_failure(exc: ApiError) -> tuple[str, int]:
    """The message and HTTP status the browser gets when the engine refuses or is down."""
    if isinstance(exc, ApiUnavailable):
        return "The engine is not running: try again when it is back.", 503
    if 400 <= exc.status < 500:
        return exc.message, exc.status
    return f"The engine failed: {exc.message}", 502


def pause_code(reason: str) -> str:
    """The PAUSE_REASONS code for `reason` (a code or its name); ValueError for anything else."""
    reason = reason.strip()
    if reason in PAUSE_REASONS:
        return reason
    for code, name in PAUSE_REASONS.items():
        if reason == name:
            return code
    raise ValueError(f"reason: {reason!r} is not one of "
                     + ", ".join(f"{c} ({n})" for c, n in PAUSE_REASONS.items()))


def wants_json() -> bool:
    """A fetch() from our scripts (it asks for JSON); a plain form post gets a redirect instead."""
    return request.accept_mimetypes.best == "application/json"


def answer(ok: bool, message: str, status: int, back: str, **extra: Any) -> Any:
    """JSON for scripts, flash-and-redirect for forms (errors keep their 4xx status either way)."""
    if wants_json():
        body = {"ok": ok, "message" if ok else "error": message, **extra}
        return jsonify(body), status
    if ok:
        flash(message)
        return redirect(back)
    return render_template("error.html", code=status, name="Not done", description=message), status


def agent_record(agents: list[dict[str, Any]], agent_id: str) -> dict[str, Any] | None:
    return next((a for a in agents if str(a.get("agent")) == agent_id), None)


def agent_view(a: dict[str, Any]) -> dict[str, Any]:
    """What a board or desk shows of one agent from /v1/agents.

    `since` stays None when the engine knows no state change (an agent who never logged in):
    the page shows "—", not the time since 1970. `shown` is the state the page shows: an agent
    logged in on a phone that is not registered is "unreachable" instead of "available" (issue 15:
    such an agent showed "available" and was never offered a call)."""
    state = a.get("state") or ""
    since = a.get("since")
    # Only "available" is untrue on a dead phone; paused or in wrap-up stay what they are.
    unreachable = a.get("reachable") is False and state == "available"
    return {"agent": str(a.get("agent", "")), "name": a.get("name") or "", "state": state,
            "shown": "unreachable" if unreachable else state,
            "pause_reason": a.get("pause_reason") or "", "device": a.get("device") or "",
            "since": since if isinstance(since, (int, float)) and since >= 0 else None,
            "calls_today": a.get("calls_today") or 0,
            "call": a.get("call"), "caller": a.get("caller") or "", "interaction": a.get("interaction"),
            "queue": a.get("queue") or "", "campaign": a.get("campaign") or "",
            "level": a.get("level") if a.get("level") in LEVELS else "ok", "reachable": a.get("reachable")}


def monitor_view(m: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Who monitors whom, from /v1/monitors: the supervisor's extension, the agent, the mode."""
    agent = str(m.get("agent", ""))
    return {"agent": agent, "agent_name": names.get(agent, ""), "supervisor": str(m.get("supervisor") or ""),
            "mode": str(m.get("mode") or ""), "call": str(m.get("call") or "")}


def waiting_view(queues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every waiting caller of the site, longest wait first: number or contact name, queue,
    position, priority and wait (the ACD's site-wide list, appliance/store/acd_site.py)."""
    rows = [{"queue": q.get("name", ""), "caller": c.get("caller") or "", "name": c.get("name") or "",
             "position": c.get("position") or i + 1, "priority": c.get("priority") or 0,
             "wait": c.get("wait") or 0, "callback": bool(c.get("callback"))}
            for q in queues for i, c in enumerate(q.get("callers") or [])]
    return sorted(rows, key=lambda r: (-float(r["wait"]), str(r["queue"]), int(r["position"])))


# -- the snapshot ------------------------------------------------------------------------------------
def _queue_view(q: dict[str, Any], kpis: dict[str, Any] | None) -> dict[str, Any]:
    agents = q.get("agents") or {}
    return {
        "name": q.get("name", ""), "strategy": q.get("strategy", ""),
        "waiting": q.get("waiting", 0), "longest_wait": q.get("longest_wait", 0.0),
        "callers": [{"caller": c.get("caller", ""), "name": c.get("name") or "", "wait": c.get("wait", 0),
                     "position": c.get("position") or i + 1, "priority": c.get("priority") or 0,
                     "callback": bool(c.get("callback"))}
                    for i, c in enumerate(q.get("callers") or [])],
        "available": agents.get("available", 0),
        "on_call": agents.get("on-call", 0) + agents.get("ringing", 0),
        # members on another queue's call: not this queue's "on call" (issue 15)
        "busy_elsewhere": agents.get("busy-elsewhere", 0),
        "wrap_up": agents.get("wrap-up", 0),
        "paused": agents.get("paused", 0),
        "service_level": None if kpis is None else kpis.get("service_level"),
        "offered": None if kpis is None else kpis.get("offered"),
        "answered": None if kpis is None else kpis.get("answered"),
        "abandoned": None if kpis is None else kpis.get("abandoned"),
        "asa_s": None if kpis is None else kpis.get("asa_s"),
    }


def down_snapshot(now: float, message: str) -> dict[str, Any]:
    """The board while the last poll failed: never "live" (issue 15: a stopped engine showed
    a green "live" with "No queues")."""
    return {"at": now, "engine": "down", "message": message, "queues": [], "agents": [], "waiting": [],
            "monitors": []}


class StreamRefused(Exception):
    """A wallboard stream beyond a cap: 429 for one session's, 503 for the process's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class BoardFeed:
    """One snapshot per `interval` for all boards of this process; KPIs every KPI_SECONDS.

    Streams are a fan-out: one producer thread builds each snapshot while any stream is open and
    wakes every subscriber, so N boards cost the engine what one does and hold no thread each.
    A session may hold `per_session` streams and the process `total` (a tab left open in every
    browser of a floor is fine; a script opening thousands is refused, issue 12 finding 5).
    """

    interval: float
    kpi_seconds: float = KPI_SECONDS
    per_session: int = STREAMS_PER_SESSION
    total: int = STREAMS_TOTAL
    open_streams: int = 0
    _last: dict[str, Any] | None = None
    _last_at: float = float("-inf")
    _kpis: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _by_session: dict[str, int] = field(default_factory=dict)
    _generation: int = 0
    _published: dict[str, Any] | None = None
    _producer: threading.Thread | None = None

    def snapshot(self, fetch: Ask, now: float) -> dict[str, Any]:
        with self._lock:
            if self._last is None or now - self._last_at >= self.interval * 0.9:
                self._last, self._last_at = self._build(fetch, now), now
            return self._last

    def subscribe(self, key: str, app: Flask) -> Callable[[], None]:
        """Count one more stream of session `key`; returns its (idempotent) unsubscribe.

        StreamRefused beyond a cap."""
        with self._cond:
            if self._by_session.get(key, 0) >= self.per_session:
                raise StreamRefused(429, f"at most {self.per_session} live wallboards per login:"
                                         " close another tab first")
            if self.open_streams >= self.total:
                raise StreamRefused(503, f"this appliance serves at most {self.total} live wallboards at once")
            self._by_session[key] = self._by_session.get(key, 0) + 1
            self.open_streams += 1
            if self._producer is None or not self._producer.is_alive():
                self._producer = threading.Thread(target=self._produce, args=(app,), name="wallboard-feed",
                                                  daemon=True)
                self._producer.start()
        done = threading.Event()

        def unsubscribe() -> None:
            if not done.is_set():
                done.set()
                self._unsubscribe(key)
        return unsubscribe

    def _unsubscribe(self, key: str) -> None:
        with self._cond:
            left = self._by_session.get(key, 0) - 1
            if left > 0:
                self._by_session[key] = left
            else:
                self._by_session.pop(key, None)
            self.open_streams = max(0, self.open_streams - 1)
            self._cond.notify_all()

    def next_snapshot(self, seen: int, timeout: float) -> tuple[int, dict[str, Any] | None]:
        """The first snapshot published after generation `seen` (or the latest after `timeout`)."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation > seen, timeout)
            return self._generation, self._published

    def _produce(self, app: Flask) -> None:
        """Build and publish one snapshot per interval while any stream is open."""
        while True:
            with app.app_context():
                snap = self.snapshot(ask, time.time())
            with self._cond:
                self._published = snap
                self._generation += 1
                self._cond.notify_all()
                if self.open_streams == 0:
                    self._producer = None
                    return
                self._cond.wait(self.interval)
                if self.open_streams == 0:
                    self._producer = None
                    return

    def _build(self, fetch: Ask, now: float) -> dict[str, Any]:
        try:
            queues = fetch("GET", "/v1/queues")
            agents = fetch("GET", "/v1/agents")
            views = [_queue_view(q, self._queue_kpis(fetch, str(q.get("name", "")), now)) for q in queues]
            monitors = self._monitors(fetch)
        except ApiUnavailable:
            return down_snapshot(now, "")  # the page says "Engine not running."
        except ApiError as exc:
            return down_snapshot(now, f"The engine answered {exc.status}: {exc.message}")
        rows = [agent_view(a) for a in agents]
        names = {a["agent"]: a["name"] for a in rows}
        return {"at": now, "engine": "up", "message": "", "queues": views, "agents": rows,
                "waiting": waiting_view(queues), "monitors": [monitor_view(m, names) for m in monitors]}

    @staticmethod
    def _monitors(fetch: Ask) -> list[dict[str, Any]]:
        try:
            found = fetch("GET", "/v1/monitors")
        except ApiUnavailable:
            raise
        except ApiError:
            return []  # an engine older than the route: nobody shown as monitored
        return [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []

    def _queue_kpis(self, fetch: Ask, name: str, now: float) -> dict[str, Any] | None:
        cached = self._kpis.get(name)
        if cached is not None and now - cached[0] < self.kpi_seconds:
            return cached[1]
        try:
            value: dict[str, Any] | None = fetch("GET", f"/v1/queues/{seg(name)}/kpis")
        except ApiUnavailable:
            raise
        except ApiError:
            value = None  # a queue removed between the two requests: no figures this time
        self._kpis[name] = (now, value)
        return value


def feed() -> BoardFeed:
    """This app's shared feed (interval from WALLBOARD_INTERVAL, seconds)."""
    app = current_app
    found = app.extensions.get("wallboard")
    if found is None:  # setdefault: two first requests at once still share one feed
        found = app.extensions.setdefault("wallboard", BoardFeed(
            float(app.config.get("WALLBOARD_INTERVAL", 1.0)),
            per_session=int(app.config.get("WALLBOARD_STREAMS_PER_SESSION", STREAMS_PER_SESSION)),
            total=int(app.config.get("WALLBOARD_STREAMS_TOTAL", STREAMS_TOTAL))))
    return found  # type: ignore[no-any-return]


def _events(board: BoardFeed, lifetime: float, unsubscribe: Callable[[], None]) -> Iterator[str]:
    """The event stream: one `data:` line of JSON per snapshot the feed publishes.

    After `lifetime` it ends by itself and EventSource reconnects (`retry`, HTML §9.2.4), so a
    half-open connection never lives for ever and a logged-out user is refused on reconnect.
    """
    try:
        yield "retry: 2000\n\n"
        end = time.monotonic() + lifetime
        seen = 0  # generation 0: nothing published yet
        while True:
            seen, snap = board.next_snapshot(seen, timeout=max(5.0, board.interval * 5))
            if snap is not None:
                yield f"data: {json.dumps(snap, separators=(',', ':'))}\n\n"
            if time.monotonic() >= end:
                return
    finally:
        unsubscribe()


# -- pages --------------------------------------------------------------------------------------------
@bp.route("/")
@login_required(*ROLES)
def board() -> str:
    snap = feed().snapshot(ask, time.time())
    return render_template("wallboard/board.html", snap=snap, reasons=PAUSE_REASONS, modes=MONITOR_MODES,
                           my_extension=_my_extension() or "")


@bp.route("/tv")
@login_required(*ROLES)
def tv() -> str:
    """The board for the screen on the wall: full screen, large figures, no controls."""
    return render_template("wallboard/tv.html", snap=feed().snapshot(ask, time.time()))


def _my_extension() -> str | None:
    """The extension the logged-in supervisor supervises from: a setting of the user (stored
    with the account, so it outlives the browser session; issue 15)."""
    user = current_user()
    return accounts.supervisor_extension(store(), user.username) if user is not None else None


@bp.route("/snapshot")
@login_required(*ROLES)
def snapshot() -> Response:
    return jsonify(feed().snapshot(ask, time.time()))


@bp.route("/stream")
@login_required(*ROLES)
def stream() -> Response:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    board = feed()
    key = str(session.get("sid") or session.get("user") or "")
    try:
        unsubscribe = board.subscribe(key, app)
    except StreamRefused as exc:
        return Response(exc.message + "\n", status=exc.status, mimetype="text/plain",
                        headers={"Retry-After": "30"})
    events = _events(board, float(app.config.get("WALLBOARD_STREAM_SECONDS", 900)), unsubscribe)
    resp = Response(events, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    # Runs when the server closes the response, whether or not the stream ever started.
    resp.call_on_close(unsubscribe)
    return resp


@bp.route("/my-extension", methods=["POST"])
@login_required(*ROLES)
def my_extension() -> Any:
    back = url_for("wallboard.board")
    number = request.form.get("extension", "").strip()
    if not EXTENSION_RE.fullmatch(number):
        return answer(False, "extension: type the number of the phone you supervise from", 400, back)
    if store().get_extension(number) is None:
        return answer(False, f"extension: {number} is not an extension of this appliance", 400, back)
    user = current_user()
    if user is None:  # login_required let the request in: the session ended in between
        return answer(False, "log in again", 401, back)
    before = accounts.supervisor_extension(store(), user.username)
    accounts.set_supervisor_extension(store(), user.username, number)
    audit("wallboard.my_extension", number, before, number)
    return answer(True, f"Listening, whispering and barging will ring extension {number}.", 200, back)


@bp.route("/agents/<agent_id>/<action>", methods=["POST"])
@login_required(*ROLES)
def agent_action(agent_id: str, action: str) -> Any:
    """listen / whisper / barge (action ``monitor`` with ``mode``), ``pause`` (reason), ``unpause``, ``logout``."""
    back = url_for("wallboard.board")
    form = request.form if request.form else (request.get_json(silent=True) or {})
    body: dict[str, str]
    if action == "monitor":
        mode = str(form.get("mode", ""))
        device = _my_extension() or ""
        if mode not in MONITOR_MODES:
            return answer(False, f"mode: {mode!r} is not one of {', '.join(MONITOR_MODES)}", 400, back)
        if not device:
            return answer(False, "my extension: set the extension you supervise from first", 400, back)
        path, body = f"/v1/agents/{seg(agent_id)}/monitor", {"device": device, "mode": mode}
    elif action == "pause":
        try:
            code = pause_code(str(form.get("reason", "")))
        except ValueError as exc:
            return answer(False, str(exc), 400, back)
        path, body = f"/v1/agents/{seg(agent_id)}/pause", {"reason": code}
    elif action in ("unpause", "logout"):
        path, body = f"/v1/agents/{seg(agent_id)}/{action}", {}
    else:
        return answer(False, f"{action!r} is not an agent action", 404, back)
    try:
        before = agent_record(ask("GET", "/v1/agents"), agent_id)
        if before is None:
            return answer(False, f"there is no agent {agent_id}", 404, back)
        after = ask("POST", path, body)
    except ApiError as exc:
        message, status = engine_failure(exc)
        return answer(False, message, status, back)
    label = body.get("mode", action)
    audit(f"agent.{label}", agent_id,
          {k: before.get(k) for k in ("state", "pause_reason", "device")}, {**body, **after})
    return answer(True, f"Agent {agent_id}: {label} done.", 200, back, result=after)

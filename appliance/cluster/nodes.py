"""Node liveness on a shared site: every engine beats, watches its peers, and ends a dead one's calls.

Each engine sharing a PostgreSQL store (Store.shared) runs one `NodeWatch` in a thread of its own,
on a Store connection of its own, so a beat waiting on the database never holds the SIP loop or the
engine's store lock. Every `BEAT_S` it stamps its row in the nodes table (appliance/store/nodes.py),
reads its peers' rows, and judges a peer dead when the peer's heartbeat has not changed for
`DEAD_AFTER_S` of this node's own monotonic clock (beats are compared with beats, never one box's
wall clock with another's). While its own beat fails (the database is away), it judges nobody:
when the database returns every node's beat is old, and the observation starts again.

A dead peer is taken over by exactly one survivor: the claim (`nodes.claim`) and every cleanup in
`CLEANUPS` run in one transaction, so a survivor that dies halfway leaves the peer unclaimed for the
next one. A restarted node runs the same cleanups on its own leftovers before it takes calls
(`rejoin`). A call of the dead node cannot be kept up today: its RTP went to the dead engine's
address and its dialogs' state died with it (see the report on re-anchoring in issue 14).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.store import acd_site
from appliance.store import nodes as node_rows
from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.errors import StoreError
from appliance.system.liveness import Heartbeat, PartHealth
from appliance.system.supervisor import run_supervised, thread_health

log = logging.getLogger("plateau.cluster")

BEAT_S = 1.0  # how often a node stamps its heartbeat
DEAD_AFTER_S = 3.0  # a peer whose heartbeat did not move for this long (our clock) is dead
# How far back a restarted node looks for its own open queue entries when it has no row yet.
NO_ROW_LOOKBACK_S = 24 * 3600.0


@dataclass(frozen=True)
class NodeDown:
    """A node whose calls must be ended: a dead peer taken over, or this node restarted."""

    name: str
    since: float  # its start: nothing of it that is still open is older
    by: str  # the node ending its calls
    at: float
    rows: str | None  # whose rows: the node's name, or None for every row (one box, not shared)

    @property
    def note(self) -> str:
        if self.by == self.name:
            return f"interrupted: node {self.name} restarted"
        return f"interrupted: node {self.name} died; ended by node {self.by}"


Cleanup = Callable[[Store, NodeDown], int]


def end_calls(store: Store, down: NodeDown) -> int:
    """Its open CDRs closed as INTERRUPTED."""
    return store.close_node_calls(down.rows, down.at, down.note)


def end_queue_entries(store: Store, down: NodeDown) -> int:
    """Its callers still in a queue, or talking to an agent, ended in the queue log."""
    return queue_log.close_open(store, down.rows, down.since, down.at, down.note)


def free_agents_and_callers(store: Store, down: NodeDown) -> int:
    """The agents it held freed, its waiting callers dropped, its promised callbacks let go for a
    living node to adopt (store/acd_site.py)."""
    freed, dropped = acd_site.forget_node(store, down.rows or down.name, down.at)
    return len(freed) + dropped


# "Node X is dead": everything that is done about it, in this order, in the takeover's transaction.
# Each takes the store and the NodeDown and returns how many rows it ended.
CLEANUPS: tuple[tuple[str, Cleanup], ...] = (
    ("cdr", end_calls),
    ("queue_log", end_queue_entries),
    ("acd", free_agents_and_callers),
)


def end_node(store: Store, down: NodeDown) -> dict[str, int]:
    """Run every cleanup for ``down`` in the caller's transaction; what each ended."""
    return {name: cleanup(store, down) for name, cleanup in CLEANUPS}


def rejoin(store: Store, me: str, now: float, sip: str, api: str) -> dict[str, int]:
    """At start: end this node's own leftovers (a crash or kill left them open) and join the site.

    On a shared store only this node's rows (the others' calls are live); on one box every row.
    Not deferred: the caller falls back to `Store.close_interrupted` if the database refuses.
    """
    with store.transaction():
        before = node_rows.join(store, me, now, sip, api)
        since = before.started_at if before is not None else now - NO_ROW_LOOKBACK_S
        return end_node(store, NodeDown(me, since, me, now, me if store.shared else None))


def take_over(store: Store, peer: node_rows.Node, me: str, now: float) -> dict[str, int] | None:
    """Claim ``peer`` (still at its stale beat) and end its calls in one transaction;
    None if another survivor claimed it first or it beat again."""
    with store.transaction():
        if not node_rows.claim(store, peer.name, me, peer.heartbeat_at, now):
            return None
        return end_node(store, NodeDown(peer.name, peer.started_at, me, now, peer.name))


@dataclass(frozen=True)
class TakenOver:
    """What one takeover did, as the watch reports it (`NodeWatch.taken`)."""

    node: str
    at: float
    ended: dict[str, int]


class NodeWatch:
    """This node's heartbeat and its watch over the site's other nodes (module docstring)."""

    def __init__(self, store: Store, me: str, *, sip: str, api: str, beat_s: float = BEAT_S,
                 dead_after_s: float = DEAD_AFTER_S, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store, self.me, self.sip, self.api = store, me, sip, api
        self.beat_s, self.dead_after_s = beat_s, dead_after_s
        self.clock, self.monotonic = clock, monotonic
        self.taken: list[TakenOver] = []  # newest last
        self.beat_failures = 0
        self._seen: dict[str, tuple[float, float]] = {}  # peer -> (its heartbeat, our monotonic when it moved)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beat = Heartbeat()

    def tick(self) -> list[TakenOver]:
        """One round: beat, look at the peers, take over the dead ones; what was taken."""
        now = self.clock()
        try:
            if not node_rows.beat(self.store, self.me, now):
                # A survivor took us over (we were cut off longer than its bound), or the row went.
                log.error("node %s: not on the site (taken over, or never joined): joining", self.me)
                node_rows.join(self.store, self.me, now, self.sip, self.api)
            peers = [n for n in node_rows.all_nodes(self.store) if n.name != self.me]
        except (self.store.db_error, StoreError) as exc:
            self.beat_failures += 1
            if self._seen:
                log.warning("node %s: heartbeat failed (%s): judging no peer until it works", self.me, exc)
            self._seen.clear()
            return []
        mono = self.monotonic()
        taken: list[TakenOver] = []
        alive: dict[str, tuple[float, float]] = {}
        for peer in peers:
            if peer.taken_over_by is not None:
                continue
            last = self._seen.get(peer.name)
            if last is None or last[0] != peer.heartbeat_at:
                alive[peer.name] = (peer.heartbeat_at, mono)
                continue
            alive[peer.name] = last
            if mono - last[1] < self.dead_after_s:
                continue
            try:
                ended = take_over(self.store, peer, self.me, self.clock())
            except (self.store.db_error, StoreError) as exc:
                log.warning("node %s: taking over %s failed (%s): trying again", self.me, peer.name, exc)
                continue
            del alive[peer.name]
            if ended is not None:
                log.warning("node %s: node %s is dead (no heartbeat for %.1f s): ended %s",
                            self.me, peer.name, mono - last[1], ended)
                taken.append(TakenOver(peer.name, self.clock(), ended))
        self._seen = alive
        self.taken.extend(taken)
        return taken

    # -- thread ---------------------------------------------------------------------------
    def start(self, api: str | None = None) -> None:
        """Join the site with the control API's URL (known once it listens) and start beating."""
        if api is not None:
            self.api = api
        try:
            node_rows.join(self.store, self.me, self.clock(), self.sip, self.api)
        except (self.store.db_error, StoreError) as exc:  # the first good beat joins instead
            log.warning("node %s: could not join the site yet (%s)", self.me, exc)
        self._thread = threading.Thread(target=run_supervised, name="node-watch",
                                        args=("node-watch", self._beat, self._run, self._stop.is_set),
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.beat_s):
            self._beat.beat()
            self.tick()

    def stop(self, leave: bool = True) -> None:
        """Stop watching; ``leave``: a clean stop takes this node off the site (no takeover)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if leave:
            try:
                node_rows.leave(self.store, self.me)
            except (self.store.db_error, StoreError) as exc:
                log.warning("node %s: could not leave the site (%s); its peers will take it over", self.me, exc)

    def parts(self) -> list[PartHealth]:
        """The watch thread's liveness, for the engine's supervisor."""
        return [thread_health("node-watch", self._thread, self._beat)] if self._thread is not None else []

    def status(self) -> dict[str, object]:
        """For /v1/status: the peers seen alive, the takeovers, the failed beats."""
        return {"peers": sorted(self._seen), "beat_failures": self.beat_failures,
                "taken_over": [{"node": t.node, "at": t.at, "ended": t.ended} for t in self.taken[-10:]]}

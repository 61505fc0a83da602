"""Node liveness on a shared store (appliance/cluster/nodes.py): each engine's watch, on a real
store of each backend, with a manual clock. A dead node's calls are ended by one survivor only;
a live node's calls are never touched."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cluster.nodes import NodeWatch, rejoin, take_over
from appliance.store import acd, acd_site
from appliance.store import nodes as node_rows
from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.errors import StoreError
from appliance.store.models import AgentConfig, AgentStatus
from appliance.store.queue_log import QueueEvent
from tests.peers.postgres import sqlite_only

T0 = 1_800_000_000.0


class Clock:
    """Wall and monotonic time in one, moved by the test."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def site(store_target: str | Path, clock: Clock) -> Iterator[dict[str, Store]]:
    """Two engines' stores on one database, each stamping its node name."""
    stores = {name: Store(store_target, node=name) for name in ("one", "two")}
    try:
        for name, store in stores.items():
            rejoin(store, name, clock(), f"127.0.0.1:50{len(name)}", "http://127.0.0.1:1")
        yield stores
    finally:
        for store in stores.values():
            store.close()


def _watch(store: Store, clock: Clock) -> NodeWatch:
    return NodeWatch(store, store.node, sip="", api="", dead_after_s=3.0, clock=clock, monotonic=clock)


def _calls(store: Store, clock: Clock) -> dict[str, int]:
    """On ``store``'s node: an answered call, a caller waiting in a queue, a caller with an agent."""
    node = store.node
    talking = store.cdr_open(f"{node}-talk", "1001", "", "1002", "internal", clock())
    store.cdr_answer(talking, clock() + 1)
    waiting = store.cdr_open(f"{node}-wait", "1003", "", "600", "internal", clock())
    queue_log.record(store, QueueEvent(clock(), "ENTER", f"{node}-w", "support", caller="1003", position=1))
    queue_log.record(store, QueueEvent(clock(), "ENTER", f"{node}-c", "support", caller="1004", position=2))
    queue_log.record(store, QueueEvent(clock() + 2, "CONNECT", f"{node}-c", "support", "alice", "1004", wait_s=2))
    return {"talk": talking, "wait": waiting}


def test_a_node_that_stops_beating_is_taken_over_and_only_its_calls_end(site: dict[str, Store],
                                                                       clock: Clock) -> None:
    one, two = site["one"], site["two"]
    mine, theirs = _calls(one, clock), _calls(two, clock)
    watch_one, watch_two = _watch(one, clock), _watch(two, clock)
    for _ in range(3):  # both alive: their beats move, nobody is judged
        clock.t += 1.0
        assert watch_one.tick() == [] and watch_two.tick() == []
    # two dies (kill -9: no more beats); one judges it dead once its beat has not moved for 3 s
    clock.t += 1.0
    assert watch_one.tick() == []
    clock.t += 2.5
    assert watch_one.tick() == []
    clock.t += 1.0
    [taken] = watch_one.tick()
    assert taken.node == "two" and taken.ended == {"cdr": 2, "queue_log": 2, "acd": 0}
    end = clock()
    for cdr_id in theirs.values():
        cdr = one.get_cdr(cdr_id)
        assert cdr is not None and cdr.disposition == "INTERRUPTED" and cdr.end == end
        assert cdr.hangup_cause == "interrupted: node two died; ended by node one"
    assert one.get_cdr(theirs["talk"]).billsec == pytest.approx(end - (T0 + 1))  # type: ignore[union-attr]
    for cdr_id in mine.values():  # the survivor's own calls go on
        assert one.get_cdr(cdr_id).end is None  # type: ignore[union-attr]
    ended = [e for e in queue_log.events(one, T0, end + 1) if e.at == end]
    assert sorted((e.call_id, e.event, e.agent) for e in ended) == [("two-c", "COMPLETE", "alice"),
                                                                   ("two-w", "ABANDON", "")]
    assert {e.call_id: (e.wait_s, e.talk_s) for e in ended} == {"two-w": (end - T0, None),
                                                                "two-c": (None, end - (T0 + 2))}
    assert queue_log.open_entries(one, "one", T0) != [] and queue_log.open_entries(one, "two", T0) == []
    assert node_rows.get(one, "two").taken_over_by == "one"  # type: ignore[union-attr]
    clock.t += 5.0
    assert watch_one.tick() == []  # taken once


def test_a_dead_nodes_agent_hold_and_waiting_caller_are_freed_by_the_takeover(site: dict[str, Store],
                                                                              clock: Clock) -> None:
    """The ACD's site rows are among the cleanups: an agent the dead node was ringing is free for
    the survivors' callers, and its caller no longer holds its place in the site's queue order."""
    one, two = site["one"], site["two"]
    acd.put_agent(one, AgentConfig(agent_id="2001", name="Agent 2001", pin="1234"))
    acd.save_agent_status(one, AgentStatus("2001", "available", None, "1001", clock()))
    assert acd_site.reserve(two, "2001", "two", "two:q1", clock())
    acd_site.join(two, acd_site.SiteCaller("two:q1", "sales", "two", "0600", 0, clock(), False))
    dead = node_rows.get(one, "two")
    assert dead is not None
    assert take_over(one, dead, "one", clock() + 5) == {"cdr": 0, "queue_log": 0, "acd": 2}
    assert acd_site.agents(one)["2001"].held_by is None
    assert acd_site.waiting(one) == []
    assert acd_site.reserve(one, "2001", "one", "one:q1", clock() + 6)  # the survivor may ring them


def test_exactly_one_survivor_takes_a_dead_node(site: dict[str, Store], clock: Clock) -> None:
    one, two = site["one"], site["two"]
    _calls(one, clock)
    dead = node_rows.get(two, "one")
    assert dead is not None
    # two survivors saw the same stale beat: the first claim wins, the second changes nothing
    assert take_over(two, dead, "two", clock()) == {"cdr": 2, "queue_log": 2, "acd": 0}
    assert take_over(one, dead, "three", clock()) is None
    assert node_rows.get(two, "one").taken_over_by == "two"  # type: ignore[union-attr]


def test_a_node_that_beats_again_before_the_claim_keeps_its_calls(site: dict[str, Store], clock: Clock) -> None:
    one, two = site["one"], site["two"]
    calls = _calls(two, clock)
    stale = node_rows.get(one, "two")
    clock.t += 1.0
    assert node_rows.beat(two, "two", clock())  # slow, not dead: its beat landed first
    assert take_over(one, stale, "one", clock()) is None  # type: ignore[arg-type]
    assert two.get_cdr(calls["talk"]).end is None  # type: ignore[union-attr]


def test_a_taken_over_node_that_was_alive_joins_again(site: dict[str, Store], clock: Clock) -> None:
    one, two = site["one"], site["two"]
    take_over(one, node_rows.get(one, "two"), "one", clock())  # type: ignore[arg-type]
    watch_two = _watch(two, clock)
    clock.t += 1.0
    watch_two.tick()
    back = node_rows.get(one, "two")
    assert back is not None and back.taken_over_by is None and back.heartbeat_at == clock()


def test_a_restarted_node_ends_its_own_leftovers_only_on_a_shared_store(site: dict[str, Store],
                                                                         clock: Clock) -> None:
    one, two = site["one"], site["two"]
    mine, theirs = _calls(one, clock), _calls(two, clock)
    clock.t += 10.0
    ended = rejoin(one, "one", clock(), "", "")  # one was killed and starts again
    if one.shared:  # PostgreSQL: two's calls are live on engine two
        assert ended == {"cdr": 2, "queue_log": 2, "acd": 0}
        assert all(one.get_cdr(i).end is None for i in theirs.values())  # type: ignore[union-attr]
        assert node_rows.get(one, "one").started_at == clock()  # type: ignore[union-attr]
    else:  # one box: every open call was this engine's
        assert ended == {"cdr": 4, "queue_log": 4, "acd": 0}
    assert all(one.get_cdr(i).disposition == "INTERRUPTED" for i in mine.values())  # type: ignore[union-attr]
    assert one.get_cdr(mine["talk"]).hangup_cause == "interrupted: node one restarted"  # type: ignore[union-attr]


def test_close_interrupted_on_a_node_closes_that_nodes_cdrs_only(site: dict[str, Store], clock: Clock) -> None:
    one, two = site["one"], site["two"]
    mine, theirs = _calls(one, clock), _calls(two, clock)
    assert one.close_interrupted(clock() + 1, node="one") == 2
    assert all(one.get_cdr(i).end is not None for i in mine.values())  # type: ignore[union-attr]
    assert all(one.get_cdr(i).end is None for i in theirs.values())  # type: ignore[union-attr]
    assert one.cdr_node(theirs["talk"]) == "two"


@sqlite_only
def test_a_node_whose_own_beat_fails_judges_nobody_until_it_beats_again(store_target: str | Path,
                                                                         clock: Clock) -> None:
    """The database away for everyone: when it returns, every peer's beat is old, and the watch
    must not take them all over; its observation starts again from its first good beat."""
    one = Store(store_target, node="one", busy_timeout_ms=50)
    two = Store(store_target, node="two")
    blocker = sqlite3.connect(str(store_target), isolation_level=None, timeout=0.05)
    try:
        rejoin(one, "one", clock(), "", "")
        rejoin(two, "two", clock(), "", "")
        watch_one, watch_two = _watch(one, clock), _watch(two, clock)
        clock.t += 1.0
        watch_two.tick()
        watch_one.tick()  # one has seen two's last beat
        blocker.execute("BEGIN IMMEDIATE")  # nobody can write: one's beats fail, and two's would
        for _ in range(10):
            clock.t += 1.0
            assert watch_one.tick() == []
        assert watch_one.beat_failures == 10
        blocker.execute("ROLLBACK")
        clock.t += 1.0
        assert watch_one.tick() == []  # two's beat is 11 s old, but seen for the first time now
        clock.t += 2.0
        assert watch_one.tick() == []
        clock.t += 1.5
        assert [t.node for t in watch_one.tick()] == ["two"]  # 3 s of good beats of ours without one of its
    finally:
        blocker.close()
        one.close()
        two.close()


def test_a_node_taken_over_while_alive_closes_its_calls_with_their_true_end(site: dict[str, Store],
                                                                            clock: Clock) -> None:
    """Cut off from the database longer than the bound, node two was alive: its own close of a call
    replaces the survivor's INTERRUPTED guess; no other node may close that row again."""
    one, two = site["one"], site["two"]
    calls = _calls(two, clock)
    take_over(one, node_rows.get(one, "two"), "one", clock())  # type: ignore[arg-type]
    assert two.get_cdr(calls["wait"]).disposition == "INTERRUPTED"  # type: ignore[union-attr]
    two.cdr_answer(calls["wait"], clock() + 20)  # the call went on: an agent answered
    two.cdr_close(calls["wait"], clock() + 50, "ANSWERED", "caller hung up")
    cdr = two.get_cdr(calls["wait"])
    assert cdr is not None and (cdr.disposition, cdr.billsec, cdr.hangup_cause) == ("ANSWERED", 30.0, "caller hung up")
    with pytest.raises(StoreError, match="already closed"):
        two.cdr_close(calls["wait"], clock() + 60, "ANSWERED", None)
    with pytest.raises(StoreError, match="already closed"):  # not the owner: the guess stands
        one.cdr_close(calls["talk"], clock() + 60, "ANSWERED", None)

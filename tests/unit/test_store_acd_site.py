"""The site's ACD rows on both backends: the agent hold (one winner, released with a free state,
never leaked), a dead node forgotten, and the site's waiting callers in service order."""

from __future__ import annotations

import threading
from pathlib import Path

from appliance.store import Store
from appliance.store import acd, acd_site
from appliance.store.models import AgentConfig, AgentStatus


def _agent(store: Store, agent_id: str, state: str = "available", device: str = "1001") -> None:
    acd.put_agent(store, AgentConfig(agent_id=agent_id, name=f"Agent {agent_id}", pin="1234"))
    acd.save_agent_status(store, AgentStatus(agent_id, state, None, device, 100.0))


def test_one_node_wins_the_hold_and_a_free_state_releases_it(store: Store) -> None:
    _agent(store, "2001")
    assert acd_site.reserve(store, "2001", "one", "one:q1", 200.0)
    assert not acd_site.reserve(store, "2001", "two", "two:q7", 200.5)  # held: the second node loses
    assert not acd_site.reserve(store, "2001", "one", "one:q2", 200.5)  # nor the same node's other caller
    assert acd_site.reserve(store, "2001", "one", "one:q1", 200.0)  # holding again what it holds
    row = acd_site.agents(store)["2001"]
    assert (row.held_by, row.held_entry, row.held_at) == ("one", "one:q1", 200.0)
    for state in ("ringing", "on-call", "wrap-up"):  # engaged: the hold stays through the call
        acd.save_agent_status(store, AgentStatus("2001", state, None, "1001", 201.0))
        assert acd_site.agents(store)["2001"].held_by == "one"
        assert not acd_site.reserve(store, "2001", "two", "two:q7", 201.0)
    acd.save_agent_status(store, AgentStatus("2001", "available", None, "1001", 202.0))
    row = acd_site.agents(store)["2001"]
    assert (row.state, row.held_by, row.held_entry, row.held_at) == ("available", None, None, None)
    assert acd_site.reserve(store, "2001", "two", "two:q7", 203.0)


def test_an_agent_not_available_cannot_be_held(store: Store) -> None:
    _agent(store, "2001", state="paused")
    _agent(store, "2002", state="logged-out", device="")
    assert not acd_site.reserve(store, "2001", "one", "one:q1", 1.0)
    assert not acd_site.reserve(store, "2002", "one", "one:q1", 1.0)
    assert not acd_site.reserve(store, "2999", "one", "one:q1", 1.0)  # no row at all
    assert acd_site.agents(store)["2001"].held_by is None


def test_pausing_an_agent_in_wrap_up_drops_the_hold(store: Store) -> None:
    _agent(store, "2001")
    assert acd_site.reserve(store, "2001", "one", "one:q1", 1.0)
    acd.save_agent_status(store, AgentStatus("2001", "wrap-up", None, "1001", 2.0))
    acd.save_agent_status(store, AgentStatus("2001", "paused", "lunch", "1001", 3.0))  # from another node
    assert acd_site.agents(store)["2001"].held_by is None


def test_release_gives_back_only_the_nodes_own_hold(store: Store) -> None:
    _agent(store, "2001")
    assert acd_site.reserve(store, "2001", "one", "one:q1", 1.0)
    assert not acd_site.release(store, "2001", "two")
    assert acd_site.agents(store)["2001"].held_by == "one"
    assert acd_site.release(store, "2001", "one")
    assert acd_site.agents(store)["2001"].held_by is None


def test_a_hold_its_node_stopped_touching_is_reclaimed_by_another(store: Store) -> None:
    _agent(store, "2001")
    _agent(store, "2002")
    assert acd_site.reserve(store, "2001", "one", "one:q1", 100.0)
    assert acd_site.reserve(store, "2002", "two", "two:q1", 100.0)
    acd.save_agent_status(store, AgentStatus("2001", "on-call", None, "1001", 100.0))
    acd.save_agent_status(store, AgentStatus("2002", "on-call", None, "1001", 100.0))
    assert acd_site.touch(store, "one", ["2001", "2002"], 125.0) == 1  # node one is alive: its call goes on
    assert acd_site.touch(store, "one", [], 125.0) == 0
    assert acd_site.reclaim_stale(store, "two", 140.0, bound_s=30.0) == []  # touched 15 s ago
    # Node two stopped touching at 100: node one frees its agent past the bound; never its own.
    assert acd_site.reclaim_stale(store, "one", 131.0, bound_s=30.0) == ["2002"]
    rows = acd_site.agents(store)
    assert (rows["2002"].state, rows["2002"].held_by, rows["2002"].since) == ("available", None, 131.0)
    assert (rows["2001"].state, rows["2001"].held_by) == ("on-call", "one")
    assert acd_site.reclaim_stale(store, "one", 1000.0, bound_s=30.0) == []


def test_a_nodes_own_hold_on_a_free_agent_ages_out(store: Store) -> None:
    """A hold whose offer never started (the agent stayed free) is not kept alive by anyone."""
    _agent(store, "2001")
    assert acd_site.reserve(store, "2001", "one", "one:q1", 100.0)
    assert acd_site.reclaim_stale(store, "one", 120.0, bound_s=30.0) == []
    assert acd_site.reclaim_stale(store, "one", 131.0, bound_s=30.0) == ["2001"]
    assert acd_site.agents(store)["2001"].held_by is None


def test_forget_node_frees_its_agents_and_drops_its_callers(store: Store) -> None:
    _agent(store, "2001")
    _agent(store, "2002")
    assert acd_site.reserve(store, "2001", "one", "one:q1", 1.0)
    acd.save_agent_status(store, AgentStatus("2001", "ringing", None, "1001", 1.0))
    assert acd_site.reserve(store, "2002", "two", "two:q1", 1.0)
    for entry, node in (("one:q1", "one"), ("one:q2", "one"), ("two:q1", "two")):
        acd_site.join(store, acd_site.SiteCaller(entry, "sales", node, "0600", 0, 1.0, False))
    freed, dropped = acd_site.forget_node(store, "one", 50.0)
    assert (freed, dropped) == (["2001"], 2)
    rows = acd_site.agents(store)
    assert (rows["2001"].state, rows["2001"].held_by, rows["2001"].since) == ("available", None, 50.0)
    assert rows["2002"].held_by == "two"  # the living node keeps its hold
    assert [c.entry for c in acd_site.waiting(store)] == ["two:q1"]
    assert acd_site.forget_node(store, "one", 51.0) == ([], 0)


def test_the_site_waiting_list_is_in_priority_then_arrival_order(store: Store) -> None:
    _agent(store, "2001")
    callers = [("one:q1", "one", 0, 10.0), ("two:q1", "two", 5, 30.0), ("two:q2", "two", 0, 5.0),
               ("one:q2", "one", 5, 20.0)]
    for entry, node, priority, at in callers:
        acd_site.join(store, acd_site.SiteCaller(entry, "sales", node, f"06{entry}", priority, at, False))
    acd_site.join(store, acd_site.SiteCaller("one:q3", "support", "one", "0700", 0, 1.0, True))
    assert [c.entry for c in acd_site.waiting(store, ["sales"])] == ["one:q2", "two:q1", "two:q2", "one:q1"]
    assert acd_site.reserve(store, "2001", "two", "two:q1", 40.0)
    sales = {c.entry: c for c in acd_site.waiting(store, ["sales"])}
    assert [e for e, c in sales.items() if c.offered] == ["two:q1"]
    acd_site.join(store, acd_site.SiteCaller("one:q1", "sales", "one", "0601", 9, 10.0, True))  # raised
    acd_site.leave(store, "two:q2")
    assert [(c.entry, c.callback) for c in acd_site.waiting(store, ["sales"])] == [
        ("one:q1", True), ("one:q2", False), ("two:q1", False)]
    support = acd_site.waiting(store, ["support"])
    assert [(c.entry, c.caller, c.callback, c.node) for c in support] == [("one:q3", "0700", True, "one")]


def test_nodes_racing_on_their_own_connections_never_share_an_agent(store: Store, store_target: str | Path) -> None:
    """Eight nodes, each its own connection, try to hold the same four agents at once: each agent
    is held exactly once."""
    agents = [f"20{i:02d}" for i in range(4)]
    for agent_id in agents:
        _agent(store, agent_id)
    nodes = [Store(store_target) for _ in range(8)]
    won: dict[str, list[str]] = {a: [] for a in agents}
    start = threading.Barrier(len(nodes))

    def race(i: int, node: Store) -> None:
        start.wait()
        for agent_id in agents:
            if acd_site.reserve(node, agent_id, f"n{i}", f"n{i}:q1", 1.0):
                won[agent_id].append(f"n{i}")

    try:
        threads = [threading.Thread(target=race, args=(i, n)) for i, n in enumerate(nodes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for n in nodes:
            n.close()
    assert all(len(w) == 1 for w in won.values()), won
    assert {a: r.held_by for a, r in acd_site.agents(store).items()} == {a: w[0] for a, w in won.items()}


def test_a_callback_is_kept_by_one_node_and_adopted_by_another_when_its_node_dies(store: Store) -> None:
    mine = acd.add_callback(store, "sales", "+33123", "Ann", 0, 5.0, "call-1", "one")
    legacy = acd.add_callback(store, "sales", "+33456", "Bob", 0, 6.0, "call-2")  # from before the site
    assert acd_site.adopt_callbacks(store, "two") == [legacy]  # nobody kept it: two takes it
    assert acd_site.adopt_callbacks(store, "one") == []  # one's own is already one's; none left
    acd_site.forget_node(store, "one", 10.0)
    assert acd_site.adopt_callbacks(store, "two") == [mine]
    acd.finish_callback(store, mine, 11.0, "placed by agent 2001")
    acd_site.forget_node(store, "two", 12.0)
    assert acd_site.adopt_callbacks(store, "one") == [legacy]  # a placed callback stays done

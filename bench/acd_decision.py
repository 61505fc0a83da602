"""ACD decision latency: 1,000 queued callers across 10 queues, 200 agents changing state.

    python bench/acd_decision.py [--ticks 2000] [--seed 1] [--target-ms 5]

Pure in-process simulation of the appliance.acd core (no engine): each tick advances the clock
by 100 ms, drives random agents through legal events (answer, no-answer, hang-up, wrap-up done,
pause, unpause), reports the outcomes to the queues, tops every queue back up to 100 waiting
callers, then asks each queue for its ``next_assignment`` and times that call alone. The 10
queues use every strategy and skill requirements that escalate after 20 s and 60 s. Prints
the decision latency p50/p99/max and exits 1 when p99 is above --target-ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from appliance.acd.agent import (
    Agent,
    AgentState,
    Answer,
    CallEnded,
    Login,
    NoAnswer,
    Offer,
    OfferCancelled,
    Pause,
    Unpause,
    WrapUpDone,
)
from appliance.acd.queue import CallQueue
from appliance.acd.skills import SkillRequirements
from appliance.acd.strategies import STRATEGIES, make_strategy

SKILLS = ["fr", "en", "de", "es", "it", "billing", "tech", "sales"]
N_QUEUES = 10
N_AGENTS = 200
CALLERS_PER_QUEUE = 100


def build(rng: random.Random) -> tuple[list[Agent], list[CallQueue]]:
    agents = []
    for i in range(N_AGENTS):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 3))}
        agent = Agent(f"ag{i:03d}", f"Agent {i}", "0000", skills=skills, max_no_answer=3, ring_timeout=15.0)
        agent.handle(Login(f"SIP/{2000 + i}"), 0.0)
        agents.append(agent)
    names = sorted(STRATEGIES)
    queues = []
    for q in range(N_QUEUES):
        a, b = SKILLS[q % len(SKILLS)], SKILLS[(q + 3) % len(SKILLS)]
        reqs = SkillRequirements.build([(a, 3), (b, 1)], [(20.0, [(a, 1)]), (60.0, [])])
        options = {"seed": q} if names[q % len(names)] == "random" else {}
        strategy = make_strategy(names[q % len(names)], **options)
        order = {agent.agent_id: rng.randint(1, 50) for agent in agents}
        queues.append(CallQueue(f"q{q}", strategy, reqs, member_order=order))
    return agents, queues


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target-ms", type=float, default=5.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    agents, queues = build(rng)
    by_name = {q.name: q for q in queues}
    offer_of: dict[str, tuple[str, str]] = {}  # ringing agent -> (queue name, entry id)
    now = 0.0
    callers = 0

    def top_up() -> None:
        nonlocal callers
        for q in queues:
            while len(q) < CALLERS_PER_QUEUE:
                callers += 1
                q.join(f"+3361{callers:07d}", now, priority=rng.choice((0, 0, 0, 0, 1, 5)))

    def offer_over(agent: Agent, answered: bool) -> None:
        qname, entry_id = offer_of.pop(agent.agent_id)
        queue = by_name[qname]
        if not answered:
            queue.offer_ended(entry_id, agent.agent_id)
            return
        _, others = queue.answered(entry_id, agent.agent_id, now)
        for other_id in others:  # ring-all / ring-progressively: the rest stop ringing
            other = agents[int(other_id[2:])]
            offer_of.pop(other_id, None)
            other.handle(OfferCancelled(), now)

    # Start from a busy centre: most agents on a call, some wrapping up or paused.
    for agent in agents:
        roll = rng.random()
        if roll < 0.6:
            agent.handle(Offer("warm-up"), 0.0)
            agent.handle(Answer(), 0.0)
        elif roll < 0.7:
            agent.handle(Pause("break"), 0.0)

    latencies: list[float] = []
    available_seen: list[int] = []
    offers = answered = 0
    for tick in range(args.ticks):
        now += 0.1
        for agent in rng.sample(agents, 12):
            roll = rng.random()
            state = agent.state
            if state is AgentState.RINGING and agent.agent_id in offer_of:
                ok = roll < 0.85
                agent.handle(Answer() if ok else NoAnswer(), now)
                offer_over(agent, ok)
                answered += ok
            elif state is AgentState.ON_CALL and roll < 0.5:
                agent.handle(CallEnded(rng.choice((0.0, 5.0, 15.0))), now)
            elif state is AgentState.WRAP_UP and roll < 0.3:
                agent.handle(WrapUpDone(), now)
            elif state is AgentState.AVAILABLE and roll < 0.05:
                agent.handle(Pause("break"), now)
            elif state is AgentState.PAUSED and roll < 0.3:
                agent.handle(Unpause(), now)
        if tick % 10 == 0:  # the engine's periodic reconcile: ring timeouts, wrap-up timers
            for agent in agents:
                was_ringing = agent.state is AgentState.RINGING
                agent.expire(now)
                if was_ringing and agent.state is not AgentState.RINGING and agent.agent_id in offer_of:
                    offer_over(agent, False)
        top_up()
        available_seen.append(sum(1 for a in agents if a.state is AgentState.AVAILABLE))
        for q in queues:
            t0 = time.perf_counter()
            assignments = q.next_assignment(agents, now)
            latencies.append(time.perf_counter() - t0)
            for assignment in assignments:
                for agent_id in assignment.agent_ids:
                    agents[int(agent_id[2:])].handle(Offer(assignment.entry_id), now)
                    offer_of[agent_id] = (q.name, assignment.entry_id)
                    offers += 1

    ms = sorted(x * 1000.0 for x in latencies)
    p50 = ms[len(ms) // 2]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    waiting = sum(len(q) for q in queues)
    print(
        f"acd decisions={len(ms)} agents={N_AGENTS} queues={N_QUEUES} waiting={waiting} "
        f"offers={offers} answered={answered} available-before-round mean={statistics.fmean(available_seen):.1f} "
        f"max={max(available_seen)}"
    )
    print(
        f"next_assignment latency ms: p50={p50:.3f} p99={p99:.3f} max={ms[-1]:.3f} "
        f"mean={statistics.fmean(ms):.3f} (target p99 <= {args.target_ms})"
    )
    if p99 > args.target_ms:
        print(f"FAIL: p99 {p99:.3f} ms above target {args.target_ms} ms")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

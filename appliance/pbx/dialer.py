"""The outbound dialer service: every second, each running campaign is paced, and the calls it
may place are checked for compliance, audited, and dialled through the campaign's trunk.

Decisions are made here and in `appliance.dialer` (pure: compliance, pacing); each call's life
is `dialer_call.DialerAttempt` (customer first) or `PreviewAttempt` (agent first). The agents
of a campaign are its ACD queue's, so a blended queue serves inbound callers too: callers past
the queue's service-level target go first (`CallDistributor.promote`) and the pacer leaves them
the agents they need. Every decision that matters (pace, refused and why, dial, abandoned,
opt-out) is written to the dialer audit log before it acts. The dialer and its attempts reach the
PBX only through `dialer_ports.DialerPbx` (docs/ARCHITECTURE.md, "Ports"); an attempt reports back
through `dialer_call.AttemptOwner`, so `dialer_call` does not import this module.
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.acd.agent import AgentState
from appliance.dialer import compliance
from appliance.dialer.campaign import CampaignConfig
from appliance.pbx.channel import Party
from appliance.pbx.dialer_call import DialerAttempt, PreviewAttempt
from appliance.pbx.dialer_ports import DialerPbx
from appliance.dialer.pacing import DialerSnapshot, Pacer, PacingDecision
from appliance.dialer import site
from appliance.pbx.dialer_pacing import decision_dict, make_pacer, pacing_key, seed
from appliance.pbx.permission import Principal, refusal
from appliance.pbx.dialplan import ToTrunk
from appliance.pbx.distributor import PAST_SERVICE_LEVEL_PRIORITY
from appliance.pbx.ports import TimerHandle
from appliance.schema.settings import RING_SECONDS_SETTING
from appliance.store import dialer as dstore
from appliance.store.dialer import LeadRecord
from appliance.store.models import OutboundRoute

log = logging.getLogger("plateau.dialer")
TICK_SECONDS = 1.0
Attempt = DialerAttempt | PreviewAttempt


@dataclass
class AgentLead:
    """The lead an agent is talking to, or last talked to and has not dispositioned yet."""

    lead_id: int
    campaign: str
    attempt_id: int


@dataclass
class LiveCampaign:
    """A campaign at run time: its config, its pacer (ledger and measured rates), its calls."""

    config: CampaignConfig
    pacer: Pacer
    key: tuple[Any, ...]
    attempts: dict[int, Attempt] = field(default_factory=dict)  # attempt id -> live attempt
    placed: collections.deque[float] = field(default_factory=collections.deque)  # last minute's dial times
    last_decision: dict[str, Any] | None = None
    last_audited: tuple[int, str] | None = None


class Dialer:
    """Campaigns at run time for one switchboard."""

    def __init__(self, pbx: DialerPbx, clock: Callable[[], float] = time.time) -> None:
        self.pbx = pbx
        self.store = pbx.store
        self.clock = clock
        self.campaigns: dict[str, LiveCampaign] = {}
        self.by_leg: dict[str, DialerAttempt] = {}  # media leg -> attempt listening for AMD
        self.agent_leads: dict[str, AgentLead] = {}
        self.previews: dict[str, tuple[int, str]] = {}  # agent -> (reserved lead id, campaign)
        self.amd_params: dict[str, Any] = {}
        self._timer: TimerHandle | None = None

    # -- configuration -----------------------------------------------------------------------
    def start(self) -> None:
        self.load()
        self._timer = self.pbx.schedule(TICK_SECONDS, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def load(self) -> None:
        """Take the campaigns from the store; live calls and figures of kept campaigns stay (a
        change of mode, cap, window or ratio builds a new pacer, seeded from the store again)."""
        now = self.clock()
        known = {c.name: c for c in dstore.campaigns(self.store)}
        for name in list(self.campaigns):
            if name not in known and not self.campaigns[name].attempts:
                del self.campaigns[name]
        for name, cfg in known.items():
            live = self.campaigns.get(name)
            if live is None or live.key != pacing_key(cfg):
                pacer = make_pacer(cfg)
                seed(pacer, self.store, cfg, now, self._wrapup(cfg))
                if live is None:
                    live = self.campaigns[name] = LiveCampaign(cfg, pacer, pacing_key(cfg))
                live.pacer, live.key = pacer, pacing_key(cfg)
            live.config = cfg

    def _wrapup(self, cfg: CampaignConfig) -> float:
        queue = self.pbx.distributor.queues.get(cfg.queue)
        return float(queue.config.wrapup_seconds) if queue is not None else 0.0

    def reload(self) -> None:
        self.load()

    # -- the tick ------------------------------------------------------------------------------
    def _tick(self) -> None:
        self._timer = self.pbx.schedule(TICK_SECONDS, self._tick)
        for live in list(self.campaigns.values()):
            try:
                if live.config.state == "running":
                    self._blend(live)
                    if live.config.mode != "preview":
                        self.pace(live)
            except Exception:  # one broken campaign must not stop the others
                log.exception("dialer tick failed for campaign %s", live.config.name)

    def _blend(self, live: LiveCampaign) -> None:
        """Inbound callers past the queue's service level go before the dialer's calls."""
        dist = self.pbx.distributor
        for call in dist.inbound_past_service_level(live.config.queue, self.clock()):
            if dist.promote(call, PAST_SERVICE_LEVEL_PRIORITY):
                log.info("%s: past the service level in %s, ahead of dialer calls", call.id, live.config.queue)

    def free_agents(self, live: LiveCampaign, now: float) -> tuple[int, int, list[float], list[float]]:
        """(agents free for the dialer, agents kept for inbound callers past their service level,
        seconds since each talking agent's call was connected, since each wrapping agent's ended)."""
        dist = self.pbx.distributor
        queue = dist.queues.get(live.config.queue)
        if queue is None:
            return 0, 0, [], []
        dist.roster.refresh()  # the site's agents: those of every node count
        members = dist.members(queue)
        available = 0
        talking: list[float] = []
        wrapping: list[float] = []
        for agent in members:
            if agent.state is AgentState.AVAILABLE:
                device = agent.device or ""
                if agent.agent_id in dist.offers or agent.agent_id in self.previews \
                        or self.pbx.device_busy(device) or not self.pbx.device_reachable(device):
                    continue
                available += 1
            elif agent.state is AgentState.ON_CALL:
                call = dist.agent_calls.get(agent.agent_id)
                since = call.agent_answered_at if call is not None and call.agent_answered_at else agent.state_since
                talking.append(max(0.0, now - since))
            elif agent.state is AgentState.WRAP_UP:
                wrapping.append(max(0.0, now - agent.state_since))
        reserved = len(dist.inbound_past_service_level(live.config.queue, now))
        return max(0, available - reserved), reserved, talking, wrapping

    def snapshot(self, live: LiveCampaign, now: float) -> DialerSnapshot:
        """The pacer's picture: free agents, busy agents' call ages, calls ringing, calls waiting."""
        free, _reserved, talking, wrapping = self.free_agents(live, now)
        ringing = tuple(now - a.placed_at for a in live.attempts.values() if a.state.value == "dialing")
        waiting = sum(1 for a in live.attempts.values() if a.state.value in ("detecting", "queued"))
        return DialerSnapshot(agents_free=free, talking_elapsed_s=tuple(talking), wrapping_elapsed_s=tuple(wrapping),
                              ringing_elapsed_s=ringing, waiting=waiting)

    def pace(self, live: LiveCampaign) -> PacingDecision:
        """Ask the pacer, audit the decision, place the calls it allows."""
        now = self.clock()
        snap = self.snapshot(live, now)
        decision = live.pacer.decide(now, snap)
        live.last_decision = decision_dict(decision)
        key = (decision.calls_to_place, decision.reason)
        if decision.calls_to_place > 0 or key != live.last_audited:
            # A row per decision that dials, or that changes: an idle campaign writes one row,
            # not one a second (each audit row is a durable commit).
            live.last_audited = key
            dstore.audit(self.store, "pace", decision.reason, campaign=live.config.name,
                         detail=f"calls={decision.calls_to_place} free={snap.agents_free} "
                                f"ringing={len(snap.ringing_elapsed_s)} waiting={snap.waiting} "
                                f"answer_rate={decision.answer_rate:.2f} headroom={decision.headroom:.2f} "
                                f"expected_abandons={decision.expected_abandons:.3f}", now=now)
        if decision.calls_to_place > 0:
            self.place(live, decision.calls_to_place)
        return decision

    # -- placing calls ---------------------------------------------------------------------------
    def check(self, campaign: CampaignConfig, lead: LeadRecord, now: float) -> compliance.DialCheck:
        """The dial-time compliance check of `lead` (DNC, attempts, per-number limit, windows)."""
        limit, hours = site.number_limit(self.store)
        facts = compliance.DialFacts(
            number=lead.number, timezone=lead.timezone, lead_attempts=lead.attempts,
            number_attempts_recent=dstore.number_attempts_since(self.store, lead.number, now - 3600.0 * hours),
            on_dnc=dstore.is_dnc(self.store, lead.number))
        rules = compliance.DialRules(campaign.windows, campaign.max_attempts,
                                     limit, hours)
        return compliance.check_dial(facts, rules, now)

    def refuse(self, campaign: CampaignConfig, lead: LeadRecord, check: compliance.DialCheck, now: float) -> None:
        """Audit a refusal and move the lead: later when it can wait, else end it."""
        dstore.audit(self.store, "refused", check.reason, campaign=campaign.name, lead_id=lead.id,
                     number=lead.number, detail=check.detail, now=now)
        log.info("campaign %s: lead %d (%s) refused: %s, %s", campaign.name, lead.id, lead.number, check.reason,
                 check.detail)
        if check.reason == compliance.DNC:
            dstore.postpone_lead(self.store, lead.id, None, "dnc", now)
        elif check.retry_at is not None:
            dstore.postpone_lead(self.store, lead.id, check.retry_at, lead.status, now)
        elif check.reason == compliance.OUTSIDE_WINDOW:
            dstore.postpone_lead(self.store, lead.id, now + 86400.0, lead.status, now)
        else:
            dstore.postpone_lead(self.store, lead.id, None, "exhausted", now)

    def trunk_destination(self, campaign: CampaignConfig, number: str) -> ToTrunk | None:
        """The campaign's own trunk and caller ID (no outbound route: the campaign names them)."""
        trunk = self.pbx.dialplan.trunks.get(campaign.trunk)
        if trunk is None or not trunk.enabled:
            return None
        route = OutboundRoute(name=f"campaign:{campaign.name}", pattern="", trunk=trunk.name)
        return ToTrunk(route, trunk, number, campaign.caller_id or trunk.caller_id)

    def busy_leads(self) -> set[int]:
        busy = {lead for lead, _ in self.previews.values()}
        for live in self.campaigns.values():
            busy.update(a.lead.id for a in live.attempts.values())
        return busy

    def next_leads(self, campaign: CampaignConfig, count: int, now: float) -> list[LeadRecord]:
        busy = self.busy_leads()
        leads = dstore.due_leads(self.store, campaign.name, now, count + len(busy))
        return [lead for lead in leads if lead.id not in busy][:count]

    def place(self, live: LiveCampaign, count: int) -> int:
        """Place up to `count` calls to the campaign's due leads; returns how many went out."""
        campaign, now = live.config, self.clock()
        placed = tries = 0
        while placed < count and tries < 4 * count:
            leads = self.next_leads(campaign, count - placed, now)
            if not leads:
                break
            for lead in leads:
                tries += 1
                check = self.check(campaign, lead, now)
                if not check.allowed:
                    self.refuse(campaign, lead, check, now)
                    continue
                if self.dial(live, lead, check, now):
                    placed += 1
                else:
                    return placed
        return placed

    def dial(self, live: LiveCampaign, lead: LeadRecord, check: compliance.DialCheck, now: float) -> bool:
        campaign = live.config
        dest = self.trunk_destination(campaign, lead.number)
        if dest is None:
            dstore.audit(self.store, "refused", "no-trunk", campaign=campaign.name, lead_id=lead.id,
                         number=lead.number, detail=f"trunk {campaign.trunk} is missing or disabled", now=now)
            return False
        why = refusal(Principal.system(f"campaign:{campaign.name}", frozenset({f"campaign:{campaign.name}"})),
                      dest.route, lead.number)  # the same check as every call placed for someone
        if why is not None:
            dstore.audit(self.store, "refused", "forbidden", campaign=campaign.name, lead_id=lead.id,
                         number=lead.number, detail=why, now=now)
            return False
        dstore.audit(self.store, "dial", check.reason, campaign=campaign.name, lead_id=lead.id, number=lead.number,
                     detail=check.detail, now=now)
        chan = self.pbx.channel_for_trunk(dest, Party(dest.caller_id or "", ""))
        attempt_id = dstore.start_attempt(self.store, lead, chan.dialog_key(), now)
        ring = float(site.number(self.store, RING_SECONDS_SETTING))
        attempt = DialerAttempt(self, campaign, lead, attempt_id, chan, ring)
        live.attempts[attempt_id] = attempt
        live.placed.append(now)
        log.info("campaign %s: dialling lead %d (%s), attempt %d", campaign.name, lead.id, lead.number, attempt_id)
        attempt.start()
        return True

    # -- what attempts report ---------------------------------------------------------------------
    def watch_leg(self, leg: str, attempt: DialerAttempt) -> None:
        self.by_leg[leg] = attempt

    def unwatch_leg(self, leg: str) -> None:
        self.by_leg.pop(leg, None)

    def machine_detected(self, leg: str, verdict: str, cause: str, ms: int) -> None:
        """The media engine's AMD verdict for a leg (engine loop)."""
        attempt = self.by_leg.get(leg)
        if attempt is not None:
            attempt.machine_verdict(verdict, cause, ms)

    def about_to_queue(self, attempt: DialerAttempt) -> None:
        log.info("attempt %d: a person answered, to queue %s", attempt.attempt_id, attempt.campaign.queue)

    def agent_took(self, attempt: Attempt, agent_id: str) -> None:
        self.agent_leads[agent_id] = AgentLead(attempt.lead.id, attempt.campaign.name, attempt.attempt_id)

    def abandoned(self, attempt: DialerAttempt, why: str) -> None:
        dstore.audit(self.store, "abandoned", why, campaign=attempt.campaign.name, lead_id=attempt.lead.id,
                     number=attempt.lead.number, detail=f"attempt {attempt.attempt_id}")
        log.warning("campaign %s: attempt %d to %s abandoned (%s)", attempt.campaign.name, attempt.attempt_id,
                    attempt.lead.number, why)

    def opted_out(self, attempt: DialerAttempt) -> None:
        """The called person pressed 9: on the DNC list now, and audited."""
        dstore.add_dnc(self.store, [attempt.lead.number], "opt-out", note=f"campaign {attempt.campaign.name}",
                       by="dialer")
        dstore.audit(self.store, "opt-out", "key 9 after the abandon message", campaign=attempt.campaign.name,
                     lead_id=attempt.lead.id, number=attempt.lead.number)

    def attempt_ended(self, attempt: Attempt, outcome: str, detail: str) -> None:
        """Store the outcome, move the lead on, and update the live figures."""
        live = self.campaigns.get(attempt.campaign.name)
        now = self.clock()
        try:
            dstore.finish_attempt(self.store, attempt.attempt_id, outcome, attempt.campaign, now)
            if isinstance(attempt, DialerAttempt) and attempt.opted_out:
                # The outcome stays "abandoned" (the abandon rate counts it); the lead ends as DNC.
                dstore.postpone_lead(self.store, attempt.lead.id, None, "dnc", now)
        except Exception:  # the store is the record: say so loudly, keep the engine going
            log.exception("attempt %d: could not store outcome %s", attempt.attempt_id, outcome)
        log.info("campaign %s: attempt %d to %s ended: %s (%s)", attempt.campaign.name, attempt.attempt_id,
                 attempt.lead.number, outcome, detail)
        if live is None:
            return
        live.attempts.pop(attempt.attempt_id, None)
        person = attempt.answered_at is not None and outcome != "machine"
        live.pacer.stats.record_attempt(person, (attempt.answered_at or now) - attempt.placed_at)
        if person:
            live.pacer.ledger.record(now, outcome == "abandoned")
        if attempt.connected_at is not None:
            live.pacer.stats.record_handle(now - attempt.connected_at, self._wrapup(attempt.campaign))

    # -- figures for the control API --------------------------------------------------------------
    def today_counts(self, campaign: str, now: float) -> tuple[int, int, int]:
        """(placed, answered, abandoned) since local midnight."""
        midnight = dt.datetime.combine(dt.date.fromtimestamp(now), dt.time()).timestamp()
        counts = dstore.attempt_counts_since(self.store, campaign, midnight)
        return counts.placed, counts.answered, counts.abandoned

    def campaign_status(self, live: LiveCampaign) -> dict[str, Any]:
        now = self.clock()
        cfg = live.config
        while live.placed and live.placed[0] < now - 60.0:
            live.placed.popleft()
        free, reserved, talking, wrapping = self.free_agents(live, now)
        placed, answered, abandoned_today = self.today_counts(cfg.name, now)
        in_window, abandoned_window = live.pacer.ledger.totals(now)
        in_flight = sum(1 for a in live.attempts.values() if a.state.value in ("dialing", "detecting", "queued"))
        return {
            "name": cfg.name, "state": cfg.state, "mode": cfg.mode, "queue": cfg.queue, "trunk": cfg.trunk,
            "agents_free": free, "agents_busy": len(talking) + len(wrapping), "reserved_for_inbound": reserved,
            "in_flight": in_flight, "placed_today": placed, "answered_today": answered,
            "abandoned_today": abandoned_today, "answer_rate": round(answered / placed, 4) if placed else 0.0,
            "abandon_rate": round(live.pacer.ledger.rate(now), 4), "abandon_cap": cfg.abandon_cap,
            "abandon_window_hours": cfg.abandon_window_hours, "answered_window": in_window,
            "abandoned_window": abandoned_window, "dial_rate_per_min": len(live.placed),
            "last_decision": live.last_decision, "leads": dstore.lead_counts(self.store, cfg.name),
            "calls": [a.info() for a in live.attempts.values()],
        }

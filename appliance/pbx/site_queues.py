"""A site's queues seen from one node: whose caller goes first across nodes.

Every node's waiting callers are rows of the store (appliance/store/acd_site.py), in service
order (priority, then arrival). The rule that keeps that order across nodes: a node offers its
own caller only while no caller of another node waits ahead of it in the same queue, unless
that caller is already being offered or no free agent could serve it (its queue's members with
the skills its wait asks for). The node of the caller ahead offers it first; once it rings, the
callers behind it are free to go.
"""
from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

from appliance.acd.agent import Agent
from appliance.acd.skills import SkillRequirements, eligible
from appliance.store import acd_site
from appliance.store.acd_site import SiteCaller
from appliance.store.db import Store

log = logging.getLogger("plateau.acd")


def behind_other_nodes(store: Store, node: str, serving: Mapping[str, tuple[SkillRequirements, Collection[Agent]]],
                       free: Collection[Agent], now: float) -> set[str]:
    """The entry ids of `node`'s callers that wait behind another node's caller in the site's
    rows; `serving` gives each queue's requirements and members, `free` the agents this node
    could offer a caller to now. The site unreadable, none: this node's own order still holds."""
    try:
        site = acd_site.waiting(store, serving)
    except store.db_error as exc:
        log.warning("site queue rows unreadable: %s", exc)
        return set()
    return _behind(node, site, serving, free, now)


def _behind(node: str, site: Sequence[SiteCaller],
            serving: Mapping[str, tuple[SkillRequirements, Collection[Agent]]],
            free: Collection[Agent], now: float) -> set[str]:
    behind: set[str] = set()
    blocked: set[str] = set()
    prefix = f"{node}:"
    for row in site:
        if row.queue not in serving or row.queue in blocked and row.node != node:
            continue
        if row.node == node:
            if row.queue in blocked:
                behind.add(row.entry.removeprefix(prefix))
            continue
        if row.offered:
            continue
        requirements, members = serving[row.queue]
        reqs = requirements.requirements_at(now - row.arrived_at)
        member_ids = {a.agent_id for a in members}
        if any(a.agent_id in member_ids and eligible(a.skills, reqs) for a in free):
            blocked.add(row.queue)
    return behind

"""Automatic call distribution core: agents, skills, selection strategies and queues.

Pure logic with no I/O and no clock of its own: every method takes ``now`` (seconds, the
engine's monotonic clock) so the engine, tests and the benchmark drive time explicitly.
"""

from appliance.acd.agent import (
    Agent,
    AgentEvent,
    AgentState,
    Answer,
    CallEnded,
    IllegalTransition,
    Login,
    Logout,
    NoAnswer,
    Offer,
    OfferCancelled,
    Pause,
    Unpause,
    WrapUpDone,
)
from appliance.acd.queue import Assignment, CallQueue, QueueEntry, UnknownEntry
from appliance.acd.skills import Escalation, SkillError, SkillRequirements, eligible
from appliance.acd.strategies import STRATEGIES, Candidate, Strategy, make_strategy

__all__ = [
    "STRATEGIES",
    "Agent",
    "AgentEvent",
    "AgentState",
    "Answer",
    "Assignment",
    "CallEnded",
    "CallQueue",
    "Candidate",
    "Escalation",
    "IllegalTransition",
    "Login",
    "Logout",
    "NoAnswer",
    "Offer",
    "OfferCancelled",
    "Pause",
    "QueueEntry",
    "SkillError",
    "SkillRequirements",
    "Strategy",
    "Unpause",
    "UnknownEntry",
    "WrapUpDone",
    "eligible",
    "make_strategy",
]

"""Records kept by the store.

These dataclasses are the contract between the store, the engine and the web app
(STYLE.md rule 7: boundaries are data). New fields must have defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The allowed values are rules of the validation layer; the store's records name them from there.
from appliance.schema.records import EXTENSION_RECORDING as EXTENSION_RECORDING
from appliance.schema.records import RECORDING_MODES as RECORDING_MODES
from appliance.schema.records import TRANSPORTS as TRANSPORTS

# Final states of a call record, as Asterisk-style CDR dispositions.
DISPOSITIONS: tuple[str, ...] = (
    "ANSWERED",
    "NO ANSWER",
    "BUSY",
    "FAILED",
    "CANCELLED",
    "INTERRUPTED",
)
DIRECTIONS: tuple[str, ...] = ("internal", "inbound", "outbound")


@dataclass
class Extension:
    """A local user/phone: number, SIP digest secret and call-handling options."""

    number: str
    name: str
    secret: str
    dnd: bool = False
    forward_always: str | None = None
    forward_busy: str | None = None
    forward_noanswer: str | None = None
    noanswer_seconds: int = 20
    # Names of outbound routes this extension may use: the toll-fraud guard.
    dial_permissions: list[str] = field(default_factory=list)
    # Number presented on trunks for calls from this extension.
    external_caller_id: str | None = None
    enabled: bool = True
    recording: str = "none"  # none | always | on-demand (*1 during a call)
    voicemail: bool = False  # busy / no answer / DND without a forward go to voicemail


@dataclass
class Trunk:
    """A SIP trunk towards a carrier or another PBX."""

    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    secret: str | None = None
    register: bool = False
    register_expires: int = 600
    from_domain: str | None = None
    caller_id: str | None = None
    enabled: bool = True


@dataclass
class InboundRoute:
    """Maps a dialled DID arriving on a trunk to a local destination (an extension)."""

    did: str
    destination: str


@dataclass
class OutboundRoute:
    """Sends numbers matching an Asterisk-syntax pattern out of a trunk."""

    name: str
    pattern: str
    trunk: str
    strip: int = 0
    prepend: str = ""
    caller_id: str | None = None
    priority: int = 100


@dataclass
class Registration:
    """One contact binding of an address-of-record (RFC 3261 section 10)."""

    aor: str
    contact: str
    source_host: str
    source_port: int
    transport: str
    expires_at: float
    user_agent: str = ""
    call_id: str = ""
    cseq: int = 0
    path: str = ""  # the REGISTER's Path header values (RFC 3327), the route set to the phone


@dataclass
class Cdr:
    """A call detail record; ``disposition`` is None while the call is open."""

    id: int
    call_id: str
    start: float
    answer: float | None
    end: float | None
    caller: str
    caller_name: str
    callee: str
    direction: str
    disposition: str | None
    hangup_cause: str | None
    duration: float | None
    billsec: float | None
    trunk: str | None


@dataclass
class BlockedAddress:
    """A source address refused until ``until`` (epoch) after repeated auth failures."""

    address: str
    until: float
    reason: str
    failures: int




@dataclass
class AgentConfig:
    """A contact-centre agent: a person who logs in on any desk phone with id and PIN."""

    agent_id: str  # digits, typed at login (*61)
    name: str
    pin: str  # digits, never shown in logs
    skills: list[str] = field(default_factory=list)  # "french:4": proficiency 1-5
    max_no_answer: int = 3  # offers left ringing in a row before the agent is paused
    ring_timeout: int = 20
    enabled: bool = True


@dataclass
class QueueConfig:
    """An ACD queue: who serves it, how callers wait, where they go when it cannot serve them."""

    name: str
    number: str | None = None  # internal number phones dial to reach the queue
    strategy: str = "longest-idle"
    members: list[str] = field(default_factory=list)  # agent ids in order; empty: every agent
    skills: list[str] = field(default_factory=list)  # minimum levels, "french:4"
    escalations: list[str] = field(default_factory=list)  # "after 30s: french:1"
    ring_step_seconds: int = 10  # ring-progressively adds an agent this often
    wrapup_seconds: int = 10
    max_wait_seconds: int = 600  # 0: no limit
    max_callers: int = 0  # 0: no limit
    overflow: str | None = None  # extension, ivr:<flow>, queue:<name> or voicemail:<mailbox>
    join_empty: bool = False  # callers may join while no agent is logged in
    leave_empty: bool = True  # waiting callers go to overflow when the last agent logs out
    announce_seconds: int = 30  # position and expected wait every N s; 0: never
    moh: str | None = None  # WAV (in the sounds directory) callers hear while waiting
    callback_key: str | None = None  # DTMF key a waiting caller presses to be called back
    service_level_seconds: int = 20
    recording: str = "none"  # none | mixed | stereo
    survey: bool = False  # post-call CSAT/NPS/CES survey when the agent hangs up
    label: str = ""  # the name people read ("Réclamations"); empty: `name`

    @property
    def display_name(self) -> str:
        return self.label or self.name


@dataclass
class AgentStatus:
    """An agent's persisted ACD state: what survives an engine restart."""

    agent_id: str
    state: str
    pause_reason: str | None
    device: str | None
    since: float

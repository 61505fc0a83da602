"""Records kept by the store.

These dataclasses are the contract between the store, the engine and the web app
(STYLE.md rule 7: boundaries are data). New fields must have defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
TRANSPORTS: tuple[str, ...] = ("udp", "tcp", "tls")


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

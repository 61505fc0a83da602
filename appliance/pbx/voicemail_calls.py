"""Voicemail as calls reach it: the deposit a `voicemail:` destination (or a forward on busy / no
answer) ends in, and the feature codes *97 (own mailbox) and *98 (any mailbox, with its PIN).

The sessions come from the voicemail service (appliance/voicemail/service.py); this module only
hands them the caller's channel and makes them the call's service.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.pbx.call import Call
from appliance.voicemail.service import Voicemail

log = logging.getLogger("plateau.pbx")


def pin_source(call: Call) -> str:
    """Who is entering a PIN, as the PIN guard counts it: the extension, else trunk + caller ID."""
    if call.caller_ext is not None:
        return f"ext:{call.caller_ext.number}"
    if call.via_trunk is not None:
        return f"trunk:{call.via_trunk}:{call.a.caller.number}"
    return f"caller:{call.a.technology}:{call.a.caller.number}"


class VoicemailOnCalls:
    """Deposits and retrievals on the PBX's calls; `mailbox_exists(number)` checks a mailbox."""

    def __init__(self, voicemail: Voicemail, mailbox_exists: Callable[[str], bool]) -> None:
        self.voicemail = voicemail
        self.mailbox_exists = mailbox_exists

    def codes(self) -> dict[str, Callable[[Call, str], None]]:
        """Feature-code prefix -> handler, for `FeatureCodes.register`."""
        return {"*97": self._own, "*98": self._any}

    def deposit(self, call: Call, mailbox: str) -> None:
        """The answered caller leaves a message for `mailbox`; the phone's lamp follows."""
        if not self.mailbox_exists(mailbox):
            log.error("%s: no mailbox %s", call.id, mailbox)
            call.hangup(call.a)
            return
        session = self.voicemail.deposit(call.a, mailbox, call.id, lambda: call.hangup(call.a))
        call.attach_service(session)
        session.start()

    def _own(self, call: Call, rest: str) -> None:
        """*97: the caller's own mailbox (the phone already proved who it is with digest auth)."""
        if call.caller_ext is None or rest:
            call.answer_here()
            call.hangup(call.a)
            return
        self._retrieve(call, call.caller_ext.number, pin_required=False)

    def _any(self, call: Call, rest: str) -> None:
        """*98: any mailbox, with its PIN (from a colleague's desk)."""
        self._retrieve(call, None, pin_required=True)

    def _retrieve(self, call: Call, mailbox: str | None, pin_required: bool) -> None:
        call.answer_here()
        session = self.voicemail.retrieval(call.a, mailbox, pin_required, pin_source(call),
                                           lambda: call.hangup(call.a))
        call.attach_service(session)
        session.start()

"""Headers we write verbatim: sippy's header classes re-format what they are given.

Shared by the out-of-dialog router (Allow, Accept, Retry-After, digest challenges) and the
MWI notifier (Event, Subscription-State, Allow-Events, Min-Expires).
"""
from __future__ import annotations

from sippy.SipGenericHF import SipGenericHF
from sippy.SipHeader import SipHeader


class VerbatimHeaderField(SipGenericHF):
    """A header body written as given, under its canonical name.

    sippy's generic header writes its name with str.capitalize() ("Proxy-authenticate");
    names are case-insensitive (RFC 3261 §7.3.1), but SIPp and some phones match
    "Proxy-Authenticate" case-sensitively and then ignore the challenge.
    """

    def __init__(self, body: str, name: str) -> None:
        super().__init__(body, name.lower())
        self._canonical = name

    def getCopy(self) -> VerbatimHeaderField:
        return VerbatimHeaderField(self.body, self._canonical)

    def getCanName(self, name: str, compact: bool = False) -> str:
        return self._canonical


def raw_header(name: str, value: str) -> SipHeader:
    """A header sippy copies verbatim (its own auth classes would re-format ours)."""
    return SipHeader(name=name, body=VerbatimHeaderField(value, name))

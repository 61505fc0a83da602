"""sippy's own-address placeholders (``MyAddress``, ``MyPort``, ``MyTransport``), recognised without ``dir()``.

sippy writes every Via, URL and SDP origin by asking ``'my' in dir(value)`` of each host,
port and transport ("is this our placeholder, to be replaced by the local address?").
``dir()`` builds and sorts the whole attribute list of the value: about 12 µs for a ``str``,
several times per header, about a tenth of the SIP loop's CPU at load (bench/sip_load.py,
issue 14 item 8). The modules that ask get a module-level ``dir`` that answers the same
membership question with one attribute lookup; we do not edit sippy's files (it comes from
PyPI), and a module global shadows the builtin only inside that module.
"""
from __future__ import annotations

import builtins
import importlib
from collections.abc import Iterator

#: The sippy modules whose ``'my' in dir(x)`` checks run per message.
CHECKING_MODULES = ("sippy.SipURL", "sippy.SipVia", "sippy.SipConf", "sippy.SdpOrigin")


class AttributeNames:
    """``dir(obj)`` as a container: ``name in`` asks for one attribute, iteration lists them all.

    sippy only asks ``'my' in dir(x)``; iterating (no sippy code path does today) falls back
    to the real ``dir()`` so that any other use still sees the full, sorted list.
    """

    __slots__ = ("_obj",)

    def __init__(self, obj: object) -> None:
        self._obj = obj

    def __contains__(self, name: object) -> bool:
        # dir() lists the instance's, its class's and the bases' attributes: exactly what
        # hasattr finds, for sippy's plain classes and the str/int values it checks.
        return isinstance(name, str) and hasattr(self._obj, name)

    def __iter__(self) -> Iterator[str]:
        return iter(builtins.dir(self._obj))

    def __len__(self) -> int:
        return len(builtins.dir(self._obj))


def attribute_names(obj: object) -> AttributeNames:
    """The module-level ``dir`` installed into sippy's checking modules."""
    return AttributeNames(obj)


def use_fast_placeholder_checks() -> None:
    """Give sippy's checking modules the cheap ``dir``."""
    for name in CHECKING_MODULES:
        importlib.import_module(name).dir = attribute_names  # type: ignore[attr-defined]

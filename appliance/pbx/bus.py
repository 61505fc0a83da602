"""A synchronous, typed event bus in the engine loop (docs/ARCHITECTURE.md, "Event bus").

Call control publishes what happened (a call answered, an agent connected, a call ended...);
services such as recording, surveys, supervision and the dialer subscribe by event class. The bus
runs each handler at once, in the publisher's stack and in subscription order, so a handler sees
the call exactly as the event describes it; there is no queue and no thread. A handler that
raises is logged and does not stop the others: one broken service must not stop call control.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("plateau.pbx.bus")

E = TypeVar("E")


class EventBus:
    """Subscribe handlers to event classes; publish events to them."""

    def __init__(self) -> None:
        self._handlers: defaultdict[type, list[Callable[[Any], None]]] = defaultdict(list)
        self.handler_errors = 0

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Call `handler` with every published event of class `kind`; returns an unsubscribe."""
        self._handlers[kind].append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers[kind]:
                self._handlers[kind].remove(handler)
        return unsubscribe

    def publish(self, event: object) -> None:
        """Run every handler of the event's exact class, in subscription order."""
        for handler in list(self._handlers.get(type(event), ())):
            try:
                handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("event handler %s failed on %s", getattr(handler, "__qualname__", handler),
                              type(event).__name__)

"""Site secrets (migration 11): keys every engine of a shared store must hold alike.

The digest nonce key is one: behind the front door a REGISTER challenged by one engine may be
answered to another, which must accept the nonce the first one made (sip/digest.py). The first
engine to ask makes the key; an engine asking at the same time gets the one that was stored
(INSERT ... ON CONFLICT DO NOTHING, then read back). Module functions over a `Store`; never
exported with the configuration.
"""
from __future__ import annotations

from collections.abc import Callable

from appliance.store.db import Store


def site_secret(store: Store, name: str, make: Callable[[], str]) -> str:
    """The site's secret ``name``, made by ``make()`` and stored if the site has none yet."""
    with store.transaction():
        store.execute("INSERT INTO site_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                      (name, make()))
        rows = store.query("SELECT value FROM site_secrets WHERE name = ?", (name,))
    return str(rows[0][0])

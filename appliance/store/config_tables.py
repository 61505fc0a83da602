"""The configuration tables of the Store: settings, extensions, trunks, inbound and outbound routes.

A mixin of `Store` (store/db.py), which provides the connection, its lock and transactions; every
method checks its record (store/validation.py) and commits before it returns, durably (the
configuration must survive a power cut). The SQL is written for SQLite and PostgreSQL alike, the
upsert built by store/dialect.py (`upsert_sql`).
"""
from __future__ import annotations

from collections.abc import Sequence

from appliance.schema.errors import invalid
from appliance.store.columns import from_row, row_values
from appliance.store.errors import ConfigError
from appliance.store.models import Extension, InboundRoute, OutboundRoute, Trunk
from appliance.store.validation import (
    check_extension,
    check_inbound_route,
    check_outbound_route,
    check_setting,
    check_trunk,
    IVR_PREFIX,
    QUEUE_PREFIX,
    VOICEMAIL_PREFIX,
)
from appliance.store.writes import DeferredWriting
from appliance.store.dialect import upsert_sql

_EXTENSION_COLUMNS = (
    "number", "name", "secret", "dnd", "forward_always", "forward_busy", "forward_noanswer",
    "noanswer_seconds", "external_caller_id", "enabled", "recording", "voicemail",
)
_TRUNK_COLUMNS = (
    "name", "host", "port", "transport", "username", "secret", "register", "register_expires",
    "from_domain", "caller_id", "enabled",
)
_INBOUND_COLUMNS = ("did", "destination")
_OUTBOUND_COLUMNS = ("name", "pattern", "trunk", "strip", "prepend", "caller_id", "priority")


class ConfigTables(DeferredWriting):
    """Settings, extensions (with their dial permissions), trunks and routes."""

    # -- settings ----------------------------------------------------------------------

    def get_setting(self, name: str, default: str | None = None) -> str | None:
        """Return a setting's value, or ``default`` when unset."""
        rows = self.query("SELECT value FROM settings WHERE name = ?", (name,))
        return rows[0][0] if rows else default

    def set_setting(self, name: str, value: str) -> None:
        """Create or replace a setting."""
        check_setting(name, value)
        with self.transaction():
            self.config_changed()
            self.execute(upsert_sql("settings", ("name", "value"), ("name",)), (name, value))

    def delete_setting(self, name: str) -> bool:
        """Delete a setting; return whether it existed."""
        with self.transaction():
            self.config_changed()
            return self.execute("DELETE FROM settings WHERE name = ?", (name,)).rowcount > 0

    def settings(self) -> dict[str, str]:
        """Return every setting, sorted by name."""
        return dict(self.query("SELECT name, value FROM settings ORDER BY name"))

    # -- extensions --------------------------------------------------------------------

    def _permissions(self, number: str | None = None) -> dict[str, list[str]]:
        sql = "SELECT extension, route FROM extension_dial_permissions"
        params: tuple[str, ...] = ()
        if number is not None:
            sql += " WHERE extension = ?"
            params = (number,)
        result: dict[str, list[str]] = {}
        for ext, route in self.query(sql + " ORDER BY extension, route", params):
            result.setdefault(ext, []).append(route)
        return result

    def extensions(self) -> list[Extension]:
        """Return every extension, ordered by number."""
        with self._lock:
            perms = self._permissions()
            rows = self.query(
                f"SELECT {', '.join(_EXTENSION_COLUMNS)} FROM extensions ORDER BY number"
            )
        return [
            from_row(Extension, _EXTENSION_COLUMNS, r, dial_permissions=perms.get(r[0], []))
            for r in rows
        ]

    def get_extension(self, number: str) -> Extension | None:
        """Return one extension, or None."""
        with self._lock:
            rows = self.query(
                f"SELECT {', '.join(_EXTENSION_COLUMNS)} FROM extensions WHERE number = ?",
                (number,),
            )
            if not rows:
                return None
            perms = self._permissions(number).get(number, [])
        return from_row(Extension, _EXTENSION_COLUMNS, rows[0], dial_permissions=perms)

    def put_extension(self, ext: Extension) -> None:
        """Create or update an extension; its dial permissions must name existing routes."""
        check_extension(ext)
        with self.transaction():
            self.config_changed()
            known = {r[0] for r in self.execute("SELECT name FROM outbound_routes")}
            for i, route in enumerate(ext.dial_permissions):
                if route not in known:
                    raise invalid(f"outbound route {route!r} does not exist", "extension", "dial_permissions", i)
            self.execute(
                upsert_sql("extensions", _EXTENSION_COLUMNS, ("number",)),
                row_values(ext, _EXTENSION_COLUMNS),
            )
            self.execute("DELETE FROM extension_dial_permissions WHERE extension = ?", (ext.number,))
            for route in ext.dial_permissions:
                self.execute(
                    "INSERT INTO extension_dial_permissions (extension, route) VALUES (?, ?)",
                    (ext.number, route),
                )

    def delete_extension(self, number: str) -> bool:
        """Delete an extension; refused while an inbound route points at it."""
        with self.transaction():
            self.config_changed()
            targets = (number, f"{VOICEMAIL_PREFIX}{number}")
            dids = [r[0] for r in self.execute(
                "SELECT did FROM inbound_routes WHERE destination IN (?, ?) ORDER BY did", targets
            )]
            if dids:
                raise ConfigError(
                    f"extension {number}: inbound route(s) {', '.join(dids)} point at it"
                )
            queues = [r[0] for r in self.execute(
                "SELECT name FROM queues WHERE overflow IN (?, ?) ORDER BY name", targets
            )]
            if queues:
                raise ConfigError(f"extension {number}: queue(s) {', '.join(queues)} overflow to it")
            return self.execute("DELETE FROM extensions WHERE number = ?", (number,)).rowcount > 0

    # -- trunks ------------------------------------------------------------------------

    def trunks(self) -> list[Trunk]:
        """Return every trunk, ordered by name."""
        rows = self.query(f"SELECT {', '.join(_TRUNK_COLUMNS)} FROM trunks ORDER BY name")
        return [from_row(Trunk, _TRUNK_COLUMNS, r) for r in rows]

    def get_trunk(self, name: str) -> Trunk | None:
        """Return one trunk, or None."""
        rows = self.query(
            f"SELECT {', '.join(_TRUNK_COLUMNS)} FROM trunks WHERE name = ?", (name,)
        )
        return from_row(Trunk, _TRUNK_COLUMNS, rows[0]) if rows else None

    def put_trunk(self, trunk: Trunk) -> None:
        """Create or update a trunk."""
        check_trunk(trunk)
        with self.transaction():
            self.config_changed()
            self.execute(
                upsert_sql("trunks", _TRUNK_COLUMNS, ("name",)), row_values(trunk, _TRUNK_COLUMNS)
            )

    def delete_trunk(self, name: str) -> bool:
        """Delete a trunk; refused while an outbound route uses it."""
        with self.transaction():
            self.config_changed()
            routes = [r[0] for r in self.execute(
                "SELECT name FROM outbound_routes WHERE trunk = ? ORDER BY name", (name,)
            )]
            if routes:
                raise ConfigError(f"trunk {name}: outbound route(s) {', '.join(routes)} use it")
            return self.execute("DELETE FROM trunks WHERE name = ?", (name,)).rowcount > 0

    # -- inbound routes ----------------------------------------------------------------

    def inbound_routes(self) -> list[InboundRoute]:
        """Return every inbound route, ordered by DID."""
        rows = self.query("SELECT did, destination FROM inbound_routes ORDER BY did")
        return [from_row(InboundRoute, _INBOUND_COLUMNS, r) for r in rows]

    def get_inbound_route(self, did: str) -> InboundRoute | None:
        """Return the route for one DID, or None."""
        rows = self.query("SELECT did, destination FROM inbound_routes WHERE did = ?", (did,))
        return from_row(InboundRoute, _INBOUND_COLUMNS, rows[0]) if rows else None

    def put_inbound_route(self, route: InboundRoute) -> None:
        """Create or update an inbound route; its destination extension must exist."""
        check_inbound_route(route)
        with self.transaction():
            self.config_changed()
            self.check_destination(route.destination, "inbound_route", "destination")
            self.execute(
                upsert_sql("inbound_routes", _INBOUND_COLUMNS, ("did",)),
                row_values(route, _INBOUND_COLUMNS),
            )

    def check_destination(self, destination: str, *loc: str) -> None:
        """Raise ConfigError unless the extension, queue or mailbox a destination names exists."""
        if destination.startswith(IVR_PREFIX):
            return  # flows are files, validated when loaded
        if destination.startswith(QUEUE_PREFIX):
            name = destination[len(QUEUE_PREFIX):]
            if not self.execute("SELECT 1 FROM queues WHERE name = ?", (name,)).fetchone():
                raise invalid(f"queue {name!r} does not exist", *loc)
            return
        number = destination.removeprefix(VOICEMAIL_PREFIX)
        if not self.execute("SELECT 1 FROM extensions WHERE number = ?", (number,)).fetchone():
            raise invalid(f"extension {number!r} does not exist", *loc)


    def delete_inbound_route(self, did: str) -> bool:
        """Delete an inbound route; return whether it existed."""
        with self.transaction():
            self.config_changed()
            return self.execute("DELETE FROM inbound_routes WHERE did = ?", (did,)).rowcount > 0

    # -- outbound routes ---------------------------------------------------------------

    def outbound_routes(self) -> list[OutboundRoute]:
        """Return every outbound route, ordered by priority then name."""
        rows = self.query(
            f"SELECT {', '.join(_OUTBOUND_COLUMNS)} FROM outbound_routes ORDER BY priority, name"
        )
        return [from_row(OutboundRoute, _OUTBOUND_COLUMNS, r) for r in rows]

    def get_outbound_route(self, name: str) -> OutboundRoute | None:
        """Return one outbound route, or None."""
        rows = self.query(
            f"SELECT {', '.join(_OUTBOUND_COLUMNS)} FROM outbound_routes WHERE name = ?", (name,)
        )
        return from_row(OutboundRoute, _OUTBOUND_COLUMNS, rows[0]) if rows else None

    def put_outbound_route(self, route: OutboundRoute) -> None:
        """Create or update an outbound route; its trunk must exist."""
        check_outbound_route(route)
        with self.transaction():
            self.config_changed()
            if not self.execute("SELECT 1 FROM trunks WHERE name = ?", (route.trunk,)).fetchone():
                raise invalid(f"trunk {route.trunk!r} does not exist", "outbound_route", "trunk")
            self.execute(
                upsert_sql("outbound_routes", _OUTBOUND_COLUMNS, ("name",)),
                row_values(route, _OUTBOUND_COLUMNS),
            )

    def delete_outbound_route(self, name: str) -> bool:
        """Delete an outbound route (and every extension's permission to use it)."""
        with self.transaction():
            self.config_changed()
            return self.execute("DELETE FROM outbound_routes WHERE name = ?", (name,)).rowcount > 0

    def replace_config(
        self,
        extensions: Sequence[Extension],
        trunks: Sequence[Trunk],
        inbound_routes: Sequence[InboundRoute],
        outbound_routes: Sequence[OutboundRoute],
        settings: dict[str, str],
    ) -> None:
        """Replace the whole configuration in one transaction (all or nothing)."""
        with self.transaction():
            self.config_changed()
            for table in ("extension_dial_permissions", "inbound_routes", "extensions",
                          "outbound_routes", "trunks", "settings"):
                self.execute(f"DELETE FROM {table}")
            for trunk in trunks:
                self.put_trunk(trunk)
            for route in outbound_routes:
                self.put_outbound_route(route)
            for ext in extensions:
                self.put_extension(ext)
            for inbound in inbound_routes:
                self.put_inbound_route(inbound)
            for name, value in settings.items():
                self.set_setting(name, value)

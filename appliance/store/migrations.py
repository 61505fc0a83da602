"""Numbered schema migrations; MIGRATIONS[i] brings the schema to version i + 1.

Each script runs in one transaction (see ``db.Store``); never edit a released
script, append a new one. The SQL stays portable to PostgreSQL: TEXT, INTEGER,
BOOLEAN, DOUBLE PRECISION, CHECK, foreign keys, partial indexes. The one
SQLite-only construct is ``INTEGER PRIMARY KEY AUTOINCREMENT`` for the CDR id
(PostgreSQL: ``BIGINT GENERATED ALWAYS AS IDENTITY``): AUTOINCREMENT guarantees a
CDR id is never reused after rows are purged, which billing exports rely on.
Column names avoid SQL reserved words (``end``, ``key``): start_at, end_at, name.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: configuration, registrations, CDR, blocked addresses.
    """
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE extensions (
        number TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        dnd BOOLEAN NOT NULL DEFAULT FALSE,
        forward_always TEXT,
        forward_busy TEXT,
        forward_noanswer TEXT,
        noanswer_seconds INTEGER NOT NULL DEFAULT 20,
        external_caller_id TEXT,
        enabled BOOLEAN NOT NULL DEFAULT TRUE
    );

    CREATE TABLE trunks (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        port INTEGER NOT NULL DEFAULT 5060 CHECK (port BETWEEN 1 AND 65535),
        transport TEXT NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
        username TEXT,
        secret TEXT,
        register BOOLEAN NOT NULL DEFAULT FALSE,
        register_expires INTEGER NOT NULL DEFAULT 600,
        from_domain TEXT,
        caller_id TEXT,
        enabled BOOLEAN NOT NULL DEFAULT TRUE
    );

    CREATE TABLE inbound_routes (
        did TEXT PRIMARY KEY,
        destination TEXT NOT NULL
    );

    CREATE TABLE outbound_routes (
        name TEXT PRIMARY KEY,
        pattern TEXT NOT NULL,
        trunk TEXT NOT NULL REFERENCES trunks (name) ON DELETE RESTRICT,
        strip INTEGER NOT NULL DEFAULT 0,
        prepend TEXT NOT NULL DEFAULT '',
        caller_id TEXT,
        priority INTEGER NOT NULL DEFAULT 100
    );

    -- The toll-fraud guard: which outbound routes an extension may dial.
    -- Deleting a route removes the permission, never widens it.
    CREATE TABLE extension_dial_permissions (
        extension TEXT NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
        route TEXT NOT NULL REFERENCES outbound_routes (name) ON DELETE CASCADE,
        PRIMARY KEY (extension, route)
    );
    CREATE INDEX extension_dial_permissions_route ON extension_dial_permissions (route);

    CREATE TABLE registrations (
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        source_host TEXT NOT NULL,
        source_port INTEGER NOT NULL,
        transport TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        user_agent TEXT NOT NULL DEFAULT '',
        call_id TEXT NOT NULL DEFAULT '',
        cseq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (aor, contact)
    );
    CREATE INDEX registrations_expires_at ON registrations (expires_at);

    CREATE TABLE cdr (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        start_at DOUBLE PRECISION NOT NULL,
        answer_at DOUBLE PRECISION,
        end_at DOUBLE PRECISION,
        caller TEXT NOT NULL,
        caller_name TEXT NOT NULL,
        callee TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('internal', 'inbound', 'outbound')),
        disposition TEXT CHECK (disposition IN
            ('ANSWERED', 'NO ANSWER', 'BUSY', 'FAILED', 'CANCELLED', 'INTERRUPTED')),
        hangup_cause TEXT,
        duration DOUBLE PRECISION,
        billsec DOUBLE PRECISION,
        trunk TEXT
    );
    CREATE INDEX cdr_start_at ON cdr (start_at);
    CREATE INDEX cdr_call_id ON cdr (call_id);
    CREATE INDEX cdr_open ON cdr (id) WHERE end_at IS NULL;

    CREATE TABLE blocked_addresses (
        address TEXT PRIMARY KEY,
        until_at DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL,
        failures INTEGER NOT NULL
    );
    """,
    # 2: the queue log (issue 3): one row per ACD event, enough for every contact-centre KPI.
    """
    CREATE TABLE queue_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at DOUBLE PRECISION NOT NULL,
        call_id TEXT NOT NULL DEFAULT '',
        queue TEXT NOT NULL DEFAULT '',
        agent TEXT NOT NULL DEFAULT '',
        event TEXT NOT NULL CHECK (event IN (
            'ENTER', 'OFFER', 'RINGNOANSWER', 'CONNECT', 'ABANDON', 'TRANSFER', 'COMPLETE',
            'EXITWITHTIMEOUT', 'EXITFULL', 'CALLBACK_REQUESTED', 'CALLBACK_PLACED',
            'AGENT_LOGIN', 'AGENT_LOGOUT', 'AGENT_PAUSE', 'AGENT_UNPAUSE')),
        caller TEXT NOT NULL DEFAULT '',
        position INTEGER,
        wait_s DOUBLE PRECISION,
        talk_s DOUBLE PRECISION,
        wrap_s DOUBLE PRECISION,
        data TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX queue_log_at ON queue_log (at);
    CREATE INDEX queue_log_queue_at ON queue_log (queue, at);
    CREATE INDEX queue_log_caller_at ON queue_log (caller, at);
    """,
    # 3: contacts (issue 3): who called, found by caller ID from the IVR and shown to agents.
    """
    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        number TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        company TEXT NOT NULL DEFAULT '',
        email TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL
    );
    """,
]

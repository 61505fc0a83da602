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

import sqlite3

from appliance.store.errors import StoreError

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
    # 4: agents and queues (issue 3): ACD configuration, agent state that survives a restart,
    # queued callbacks, and the queue log's EXITEMPTY event (rebuilt: SQLite cannot alter a CHECK).
    """
    CREATE TABLE agents (
        agent_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        pin TEXT NOT NULL,
        max_no_answer INTEGER NOT NULL DEFAULT 3,
        ring_timeout INTEGER NOT NULL DEFAULT 20,
        enabled BOOLEAN NOT NULL DEFAULT TRUE
    );

    CREATE TABLE agent_skills (
        agent_id TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
        skill TEXT NOT NULL,
        level INTEGER NOT NULL CHECK (level BETWEEN 1 AND 5),
        PRIMARY KEY (agent_id, skill)
    );
    CREATE INDEX agent_skills_skill ON agent_skills (skill, level);

    CREATE TABLE queues (
        name TEXT PRIMARY KEY,
        number TEXT UNIQUE,
        strategy TEXT NOT NULL,
        requirements TEXT NOT NULL DEFAULT '',
        escalations TEXT NOT NULL DEFAULT '',
        ring_step_seconds INTEGER NOT NULL DEFAULT 10,
        wrapup_seconds INTEGER NOT NULL DEFAULT 10,
        max_wait_seconds INTEGER NOT NULL DEFAULT 600,
        max_callers INTEGER NOT NULL DEFAULT 0,
        overflow TEXT,
        join_empty BOOLEAN NOT NULL DEFAULT FALSE,
        leave_empty BOOLEAN NOT NULL DEFAULT TRUE,
        announce_seconds INTEGER NOT NULL DEFAULT 30,
        moh TEXT,
        callback_key TEXT,
        service_level_seconds INTEGER NOT NULL DEFAULT 20,
        recording TEXT NOT NULL DEFAULT 'none' CHECK (recording IN ('none', 'mixed', 'stereo')),
        survey BOOLEAN NOT NULL DEFAULT FALSE
    );

    CREATE TABLE queue_members (
        queue TEXT NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
        agent_id TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        PRIMARY KEY (queue, agent_id)
    );
    CREATE INDEX queue_members_agent ON queue_members (agent_id);

    CREATE TABLE agent_state (
        agent_id TEXT PRIMARY KEY REFERENCES agents (agent_id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN
            ('logged-out', 'available', 'ringing', 'on-call', 'wrap-up', 'paused')),
        pause_reason TEXT,
        device TEXT,
        since DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE queue_callbacks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        number TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        priority INTEGER NOT NULL DEFAULT 0,
        requested_at DOUBLE PRECISION NOT NULL,
        call_id TEXT NOT NULL DEFAULT '',
        done_at DOUBLE PRECISION,
        outcome TEXT
    );
    CREATE INDEX queue_callbacks_pending ON queue_callbacks (queue) WHERE done_at IS NULL;

    CREATE TABLE queue_log_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at DOUBLE PRECISION NOT NULL,
        call_id TEXT NOT NULL DEFAULT '',
        queue TEXT NOT NULL DEFAULT '',
        agent TEXT NOT NULL DEFAULT '',
        event TEXT NOT NULL CHECK (event IN (
            'ENTER', 'OFFER', 'RINGNOANSWER', 'CONNECT', 'ABANDON', 'TRANSFER', 'COMPLETE',
            'EXITWITHTIMEOUT', 'EXITFULL', 'EXITEMPTY', 'CALLBACK_REQUESTED', 'CALLBACK_PLACED',
            'AGENT_LOGIN', 'AGENT_LOGOUT', 'AGENT_PAUSE', 'AGENT_UNPAUSE')),
        caller TEXT NOT NULL DEFAULT '',
        position INTEGER,
        wait_s DOUBLE PRECISION,
        talk_s DOUBLE PRECISION,
        wrap_s DOUBLE PRECISION,
        data TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO queue_log_new SELECT * FROM queue_log;
    DROP TABLE queue_log;
    ALTER TABLE queue_log_new RENAME TO queue_log;
    CREATE INDEX queue_log_at ON queue_log (at);
    CREATE INDEX queue_log_queue_at ON queue_log (queue, at);
    CREATE INDEX queue_log_caller_at ON queue_log (caller, at);
    """,
    # 5: recordings and voicemail (issue 3): the recordings index (files under data/recordings),
    # per-extension recording policy and voicemail-on-no-answer, voicemail messages.
    """
    CREATE TABLE recordings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        cdr_id INTEGER REFERENCES cdr (id) ON DELETE SET NULL,
        path TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('mixed', 'stereo')),
        reason TEXT NOT NULL,
        queue TEXT NOT NULL DEFAULT '',
        agent TEXT NOT NULL DEFAULT '',
        started_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        paused_s DOUBLE PRECISION NOT NULL DEFAULT 0,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX recordings_call_id ON recordings (call_id);
    CREATE INDEX recordings_started_at ON recordings (started_at);
    CREATE INDEX recordings_open ON recordings (id) WHERE ended_at IS NULL;

    ALTER TABLE extensions ADD COLUMN recording TEXT NOT NULL DEFAULT 'none'
        CHECK (recording IN ('none', 'always', 'on-demand'));
    ALTER TABLE extensions ADD COLUMN voicemail BOOLEAN NOT NULL DEFAULT FALSE;

    CREATE TABLE voicemail (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        mailbox TEXT NOT NULL,
        caller TEXT NOT NULL DEFAULT '',
        caller_name TEXT NOT NULL DEFAULT '',
        received_at DOUBLE PRECISION NOT NULL,
        duration_s DOUBLE PRECISION NOT NULL,
        path TEXT NOT NULL,
        heard BOOLEAN NOT NULL DEFAULT FALSE,
        deleted_at DOUBLE PRECISION
    );
    CREATE INDEX voicemail_mailbox ON voicemail (mailbox, received_at);
    """,
    # 6: interactions and post-call surveys (issue 3): what each inbound call was about, its
    # status and disposition set by the agent, and the caller's CSAT / NPS / CES answers.
    """
    CREATE TABLE interactions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        contact_id INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
        caller TEXT NOT NULL,
        queue TEXT NOT NULL DEFAULT '',
        agent TEXT NOT NULL DEFAULT '',
        call_id TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'resolved', 'closed', 'follow-up')),
        disposition TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        ivr_path TEXT NOT NULL DEFAULT '{}',
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX interactions_contact ON interactions (contact_id, created_at);
    CREATE INDEX interactions_call_id ON interactions (call_id);
    CREATE INDEX interactions_caller ON interactions (caller, updated_at);

    CREATE TABLE survey_results (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        interaction_id INTEGER REFERENCES interactions (id) ON DELETE SET NULL,
        call_id TEXT NOT NULL DEFAULT '',
        queue TEXT NOT NULL DEFAULT '',
        agent TEXT NOT NULL DEFAULT '',
        csat INTEGER CHECK (csat BETWEEN 1 AND 5),
        nps INTEGER CHECK (nps BETWEEN 0 AND 10),
        ces INTEGER CHECK (ces BETWEEN 1 AND 7),
        at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX survey_results_at ON survey_results (at);
    CREATE INDEX survey_results_queue_at ON survey_results (queue, at);
    CREATE INDEX survey_results_agent_at ON survey_results (agent, at);
    """,
    # 7: the web UI (issue 4): its users and roles, the audit log of every change, and quality
    # scorecards supervisors fill in on recorded calls.
    """
    CREATE TABLE web_users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
        agent_id TEXT,
        must_change BOOLEAN NOT NULL DEFAULT TRUE,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at DOUBLE PRECISION NOT NULL,
        username TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        before_json TEXT,
        after_json TEXT
    );
    CREATE INDEX audit_log_at ON audit_log (at);

    CREATE TABLE quality_scores (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recording_id INTEGER REFERENCES recordings (id) ON DELETE SET NULL,
        call_id TEXT NOT NULL DEFAULT '',
        agent TEXT NOT NULL,
        supervisor TEXT NOT NULL,
        verification INTEGER NOT NULL CHECK (verification BETWEEN 0 AND 5),
        call_handling INTEGER NOT NULL CHECK (call_handling BETWEEN 0 AND 5),
        call_flow INTEGER NOT NULL CHECK (call_flow BETWEEN 0 AND 5),
        soft_skills INTEGER NOT NULL CHECK (soft_skills BETWEEN 0 AND 5),
        resolution INTEGER NOT NULL CHECK (resolution BETWEEN 0 AND 5),
        comment TEXT NOT NULL DEFAULT '',
        at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX quality_scores_agent_at ON quality_scores (agent, at);
    """,
    # 8: outbound campaigns (issue 7): campaigns, their prospect lists and leads, every dial
    # attempt, the do-not-call list, and the audit log of every dialer decision.
    """
    CREATE TABLE campaigns (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'paused' CHECK (state IN ('paused', 'running', 'finished')),
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE lead_lists (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign TEXT NOT NULL REFERENCES campaigns (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        imported_at DOUBLE PRECISION NOT NULL,
        imported_by TEXT NOT NULL DEFAULT '',
        report TEXT NOT NULL DEFAULT '{}'
    );

    CREATE TABLE leads (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        list_id INTEGER NOT NULL REFERENCES lead_lists (id) ON DELETE CASCADE,
        campaign TEXT NOT NULL REFERENCES campaigns (name) ON DELETE CASCADE,
        number TEXT NOT NULL,
        timezone TEXT NOT NULL,
        fields TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'new'
            CHECK (status IN ('new', 'retry', 'callback', 'dialing', 'done', 'dnc', 'exhausted')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_outcome TEXT NOT NULL DEFAULT '',
        disposition TEXT NOT NULL DEFAULT '',
        next_at DOUBLE PRECISION,
        callback_agent TEXT NOT NULL DEFAULT '',
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE UNIQUE INDEX leads_campaign_number ON leads (campaign, number);
    CREATE INDEX leads_due ON leads (campaign, status, next_at);

    CREATE TABLE dial_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign TEXT NOT NULL,
        lead_id INTEGER REFERENCES leads (id) ON DELETE SET NULL,
        number TEXT NOT NULL,
        call_id TEXT NOT NULL DEFAULT '',
        placed_at DOUBLE PRECISION NOT NULL,
        answered_at DOUBLE PRECISION,
        connected_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION,
        outcome TEXT NOT NULL DEFAULT '',
        amd TEXT NOT NULL DEFAULT '',
        agent TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX dial_attempts_campaign_at ON dial_attempts (campaign, placed_at);
    CREATE INDEX dial_attempts_number_at ON dial_attempts (number, placed_at);

    CREATE TABLE dnc (
        number TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        added_by TEXT NOT NULL DEFAULT '',
        added_at DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE dialer_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at DOUBLE PRECISION NOT NULL,
        campaign TEXT NOT NULL DEFAULT '',
        lead_id INTEGER,
        number TEXT NOT NULL DEFAULT '',
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX dialer_audit_at ON dialer_audit (at);
    CREATE INDEX dialer_audit_campaign_at ON dialer_audit (campaign, at);
    """,
    # 9: web UI sessions kept server-side (issue 12, appliance/store/web_sessions.py): revoked on logout and
    # on a password change.
    """
    CREATE TABLE web_sessions (
        token_sha256 TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    CREATE INDEX web_sessions_username ON web_sessions (username);
    """,
]


def split_script(script: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement aware).

    Public: the Store applies migrations with it, and the backup check replays them in memory
    (store/dbfile.py, `expected_tables`)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise StoreError(f"migration has an unterminated statement: {buffer.strip()[:60]!r}")
    return statements

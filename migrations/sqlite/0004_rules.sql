-- Notification rules, events, throttling; how a message was routed; admins to warn.

CREATE TABLE rules (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    match_json     TEXT NOT NULL,
    methods_json   TEXT NOT NULL,
    throttle_secs  INTEGER NOT NULL DEFAULT 0,
    -- set on the built-in rules Herald creates (editable, recreated never)
    system_key     TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE rule_throttle (
    rule_id       TEXT PRIMARY KEY REFERENCES rules(id) ON DELETE CASCADE,
    window_until  INTEGER NOT NULL,
    suppressed    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    type        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    source      TEXT,
    title       TEXT NOT NULL,
    message     TEXT,
    data        TEXT,
    created_at  INTEGER NOT NULL
);

ALTER TABLE messages ADD COLUMN route TEXT;
ALTER TABLE settings ADD COLUMN admin_emails TEXT;
ALTER TABLE settings ADD COLUMN tenant_daily_cap INTEGER;

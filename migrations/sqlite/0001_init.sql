-- Herald's schema. Every row carries its tenant, so tenant scoping is a filter.
-- Timestamps are milliseconds since the Unix epoch; flags are 0/1 integers,
-- so that the same queries run on SQLite and PostgreSQL.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
INSERT INTO tenants (id, name, created_at) VALUES ('platform', 'Platform', 0);

CREATE TABLE api_tokens (
    token_hash  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    provider            TEXT NOT NULL,
    host                TEXT NOT NULL,
    port                INTEGER NOT NULL,
    security            TEXT NOT NULL,
    auth_method         TEXT NOT NULL,
    username            TEXT,
    secret              BLOB,
    oauth               TEXT,
    oauth_client_secret BLOB,
    from_address        TEXT NOT NULL,
    from_name           TEXT,
    tls_ca_pem          TEXT,
    tls_skip_verify     INTEGER NOT NULL DEFAULT 0,
    timeout_secs        INTEGER NOT NULL,
    limit_connections   INTEGER,
    limit_per_minute    INTEGER,
    limit_per_day       INTEGER,
    backup_account      TEXT,
    status              TEXT NOT NULL,
    status_message      TEXT,
    last_report         TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id       TEXT,
    status           TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    idempotency_key  TEXT,
    content          TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT,
    captured         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_tenant ON messages (tenant_id, created_at);

CREATE TABLE attempts (
    id             TEXT PRIMARY KEY,
    message_id     TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    at             INTEGER NOT NULL,
    account_id     TEXT,
    outcome        TEXT NOT NULL,
    stage          TEXT,
    code           INTEGER,
    enhanced_code  TEXT,
    reply          TEXT,
    class          TEXT,
    transcript     TEXT
);
CREATE INDEX attempts_message ON attempts (message_id, at);

CREATE TABLE captured (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    message_id  TEXT NOT NULL,
    mail_from   TEXT NOT NULL,
    rcpt_to     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    raw         TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX captured_tenant ON captured (tenant_id, at);

CREATE TABLE settings (
    tenant_id             TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    default_account       TEXT,
    from_name             TEXT,
    locale                TEXT,
    fallback_to_platform  INTEGER NOT NULL DEFAULT 1,
    updated_at            INTEGER NOT NULL
);

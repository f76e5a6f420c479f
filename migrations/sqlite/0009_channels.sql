-- Webhook and chat-robot channels: a tenant's named destinations that rule
-- methods point at. The URL (it may hold a token), the signing secret and the
-- headers are sealed; `url_display` is the URL with its token masked.
CREATE TABLE channels (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    url           BLOB NOT NULL,
    url_display   TEXT NOT NULL,
    secret        BLOB,
    headers       BLOB,
    header_names  TEXT NOT NULL DEFAULT '[]',
    per_minute    INTEGER,
    status        TEXT NOT NULL DEFAULT 'unverified',
    status_message TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

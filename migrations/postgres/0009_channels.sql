-- Webhook and chat-robot channels: a tenant's named destinations that rule
-- methods point at. The URL (it may hold a token), the signing secret and the
-- headers are sealed; `url_display` is the URL with its token masked.
CREATE TABLE channels (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    url           BYTEA NOT NULL,
    url_display   TEXT NOT NULL,
    secret        BYTEA,
    headers       BYTEA,
    header_names  TEXT NOT NULL DEFAULT '[]',
    per_minute    BIGINT,
    status        TEXT NOT NULL DEFAULT 'unverified',
    status_message TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

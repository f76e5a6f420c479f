-- DKIM keys per sending domain of a tenant. The private key is sealed
-- (secrets, bound to the key's id); the newest key of a domain signs, older
-- ones stay listed (and published) until deleted.
-- (Google service accounts need no table: the JSON key is the account's
-- sealed secret, its tokens live in oauth_tokens like other OAuth2 tokens.)
CREATE TABLE dkim_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    domain        TEXT NOT NULL,
    selector      TEXT NOT NULL,
    algorithm     TEXT NOT NULL,
    private_key   BYTEA NOT NULL,
    public_key    TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'unchecked',
    status_detail TEXT,
    checked_at    BIGINT,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, domain, selector)
);
CREATE INDEX dkim_keys_by_domain ON dkim_keys (tenant_id, domain, created_at);

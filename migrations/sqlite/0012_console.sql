-- The web console: its users (the platform admin, a tenant's admins), their
-- one-time setup links, server-side sessions, failed sign-ins (for the rate
-- limit) and the OAuth2 authorizations started from a console page.

CREATE TABLE console_users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT,
    locale         TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE console_setup_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES console_users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES console_users(id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE console_signin_failures (
    key  TEXT NOT NULL,
    at   INTEGER NOT NULL
);
CREATE INDEX console_signin_failures_key ON console_signin_failures (key, at);

CREATE TABLE console_oauth_returns (
    state_hash  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);

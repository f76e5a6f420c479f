-- OAuth2: tokens per account (sealed), and pending authorizations.

CREATE TABLE oauth_tokens (
    account_id          TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    access_token        BYTEA,
    access_expires_at   BIGINT,
    refresh_token       BYTEA,
    refresh_expires_at  BIGINT,
    -- bumped on every token change, so a waiter sees that someone else refreshed
    generation          BIGINT NOT NULL DEFAULT 0,
    -- the lease on refreshing, held by one node at a time
    refresh_lock_until  BIGINT,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE oauth_states (
    state_hash    TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL,
    verifier      BYTEA NOT NULL,
    redirect_uri  TEXT NOT NULL,
    -- the account's OAuth settings when the authorization began
    fingerprint   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);

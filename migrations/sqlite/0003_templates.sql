-- Per-tenant overrides of the built-in system email templates (templates/).
-- A row replaces the built-in template of that name and locale for the tenant;
-- deleting it brings the built-in back.

CREATE TABLE templates (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    locale      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text        TEXT NOT NULL,
    html        TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, locale)
);

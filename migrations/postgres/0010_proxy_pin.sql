-- SMTP through a proxy, and pinned server certificates.
-- proxy: {"kind":"http|socks5|none","host","port","username"} as JSON; its
-- password sealed apart in proxy_secret. An account without one uses the
-- platform's (settings of the tenant 'platform'); kind "none" dials directly.
ALTER TABLE accounts ADD COLUMN proxy TEXT;
ALTER TABLE accounts ADD COLUMN proxy_secret BYTEA;
-- Lower-case hex SHA-256 of the one server certificate the account trusts.
ALTER TABLE accounts ADD COLUMN tls_pin_sha256 TEXT;
ALTER TABLE settings ADD COLUMN proxy TEXT;
ALTER TABLE settings ADD COLUMN proxy_secret BYTEA;

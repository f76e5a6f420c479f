-- Per-account limits count an account's recent sends.
CREATE INDEX attempts_account ON attempts (account_id, at);

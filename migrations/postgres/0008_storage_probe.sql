-- One row, rewritten while a storage condition stands (disk full, read-only,
-- I/O error): when the write goes through, the database takes writes again.
CREATE TABLE storage_probe (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL
);

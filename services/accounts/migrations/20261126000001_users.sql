-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    -- Milliseconds since the Unix epoch, UTC.
    created_at    BIGINT  NOT NULL
);

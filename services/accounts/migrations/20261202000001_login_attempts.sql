-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

-- Login attempts in the current window, per account (`account:<name as
-- given>`) and per client address (`address:<ip>`): the brake on guessing.
CREATE TABLE login_attempts (
    key         TEXT   PRIMARY KEY,
    attempts    BIGINT NOT NULL,
    -- Milliseconds since the Unix epoch, UTC: when the count starts afresh.
    window_ends BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_end ON login_attempts (window_ends);

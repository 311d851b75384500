-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

-- Who is who, from `user.signed_up`: chat never asks accounts on a request.
CREATE TABLE users (
    id       TEXT PRIMARY KEY,
    username TEXT NOT NULL
);

CREATE TABLE rooms (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL UNIQUE,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    -- The last number given to something that happened in the room. Taking
    -- the next one locks the room's row until commit, so a room's numbers
    -- become visible in order: a reader that has seen n has seen all below n.
    last_seq   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE members (
    room_id   TEXT   NOT NULL REFERENCES rooms (id),
    user_id   TEXT   NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE messages (
    id              TEXT   PRIMARY KEY,
    room_id         TEXT   NOT NULL REFERENCES rooms (id),
    seq             BIGINT NOT NULL,
    author_id       TEXT   NOT NULL,
    author_username TEXT   NOT NULL,
    text            TEXT   NOT NULL,
    -- Milliseconds since the Unix epoch, UTC.
    sent_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_by_room ON messages (room_id, seq);
CREATE INDEX messages_by_age ON messages (sent_at);

CREATE TABLE cards (
    message_id  TEXT   NOT NULL,
    url         TEXT   NOT NULL,
    title       TEXT   NOT NULL,
    description TEXT,
    image       TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (message_id, url)
);

-- What the live stream shows, numbered per room (`Last-Event-ID` resumes it).
CREATE TABLE room_events (
    room_id    TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, seq)
);
CREATE INDEX room_events_by_age ON room_events (created_at);

-- The archive's journal: a batch is written to cold storage under a name
-- fixed here before its messages leave, so a crashed run resumes it exactly.
CREATE TABLE archive_batches (
    object_key TEXT   PRIMARY KEY,
    room_id    TEXT   NOT NULL,
    day        TEXT   NOT NULL,
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    messages   BIGINT NOT NULL,
    -- The batch is the room's messages numbered first_seq..last_seq sent
    -- from the start of `day` until the earlier of its end and `cutoff`.
    cutoff     BIGINT NOT NULL,
    done       BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

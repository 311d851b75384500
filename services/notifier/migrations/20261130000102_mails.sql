-- Every mail notifier means to send, once per recipient and reason, kept
-- before it is sent and marked after: a mail goes out at most once
-- however often its event is delivered (a crash between the SMTP server's
-- acceptance and the mark is the one way to repeat it, with the same
-- Message-ID), and no transaction stays open while the SMTP server works.
CREATE TABLE mails (
    -- The Message-ID's local part: `<event id>.welcome`, `<message id>.mention.<username>`.
    id         TEXT   PRIMARY KEY,
    -- The event that asked for it; its deliveries send what is pending.
    event_id   TEXT   NOT NULL,
    recipient  TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    -- 'pending', 'sent', or 'refused' (the server said no for good: 5xx).
    state      TEXT   NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    -- While a delivery sends it: until when (ms since the epoch) the others
    -- leave it alone. Two deliveries of one event at once send it once.
    sending_until BIGINT,
    last_error TEXT,
    -- Milliseconds since the Unix epoch, UTC.
    created_at BIGINT NOT NULL,
    done_at    BIGINT
);
CREATE INDEX mails_pending_by_event ON mails (event_id) WHERE state = 'pending';

-- `mails` keeps what `mention_mails` kept (a mention mail per message and
-- recipient), for welcome mails too; mention_mails never left a release.
DROP TABLE mention_mails;

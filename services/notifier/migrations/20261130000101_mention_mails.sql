-- Every @mention mail sent, once per message and recipient: the post and
-- each later edit of a message mail only those not mailed for it yet.
CREATE TABLE mention_mails (
    message_id TEXT   NOT NULL,
    username   TEXT   NOT NULL,
    -- Milliseconds since the Unix epoch, UTC.
    sent_at    BIGINT NOT NULL,
    PRIMARY KEY (message_id, username)
);

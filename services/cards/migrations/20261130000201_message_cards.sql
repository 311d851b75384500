-- The cards made for each message, once per URL: an edit previews only the
-- links it adds, and a redelivered event makes no second card.
CREATE TABLE message_cards (
    message_id TEXT   NOT NULL,
    url        TEXT   NOT NULL,
    -- Milliseconds since the Unix epoch, UTC.
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, url)
);

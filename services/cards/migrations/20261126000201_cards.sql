-- What each URL gave, so a URL is fetched once a day at most, and a failing
-- one is not retried on every message (no retry storm).
CREATE TABLE link_cache (
    url TEXT PRIMARY KEY,
    title TEXT,
    description TEXT,
    image TEXT,
    failure TEXT,
    fetched_at BIGINT NOT NULL
);

-- notifier's own directory of users, from user.signed_up: it never asks accounts.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    email TEXT NOT NULL
);
CREATE INDEX users_by_username ON users (username);

-- What happened each day (UTC), for the daily report.
CREATE TABLE daily_counts (
    day TEXT NOT NULL,
    name TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (day, name)
);

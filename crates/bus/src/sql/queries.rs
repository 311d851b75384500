//! The SQL of the SQLite and PostgreSQL backends: the same statements but for
//! the clock, the id column, and how rows are claimed.

/// Which SQL database holds the queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// Every statement, built once per bus.
#[derive(Debug)]
pub(crate) struct Queries {
    pub schema: Vec<String>,
    pub declare: String,
    pub topic_of: String,
    /// `{now}` filled in; `{values}` is filled per batch by [`Queries::publish`].
    publish_template: String,
    pub receive: String,
    pub next_visible: String,
    pub ack: String,
    pub retry: String,
    pub extend: String,
    pub dead_letter: String,
    pub stats: String,
    pub dead_letters: String,
    pub redrive_all: String,
    pub redrive_one: String,
    pub purge_all: String,
    pub purge_one: String,
}

/// Events of an ordered subscription wait for every earlier live event with their key.
const IN_KEY_ORDER: &str = "($2 = 0 OR m.ordering_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM bus_messages e
        WHERE e.subscription = m.subscription AND e.ordering_key = m.ordering_key
          AND e.dead = 0 AND e.id < m.id))";

impl Queries {
    /// The publish statement for `events` events: `$1` the topic, then
    /// (sequence, event id, ordering key, body) per event.
    pub fn publish(&self, events: usize) -> String {
        let values: Vec<String> = (0..events)
            .map(|i| {
                let p = 2 + i * 4;
                format!("(${p}, ${}, ${}, ${})", p + 1, p + 2, p + 3)
            })
            .collect();
        self.publish_template
            .replace("{values}", &values.join(", "))
    }

    pub fn new(dialect: Dialect) -> Self {
        // The database's clock in milliseconds: one clock for every host.
        let now = match dialect {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        };
        let id_column = match dialect {
            Dialect::Sqlite => "id INTEGER PRIMARY KEY",
            Dialect::Postgres => "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        };
        let candidates = format!(
            "SELECT m.id FROM bus_messages m
             WHERE m.subscription = $1 AND m.dead = 0 AND m.visible_at <= {now} AND {IN_KEY_ORDER}
             ORDER BY m.id LIMIT $3"
        );
        let receive = match dialect {
            // One statement is one atomic write in SQLite: no two consumers claim a row.
            Dialect::Sqlite => format!(
                "UPDATE bus_messages SET attempts = attempts + 1, visible_at = {now} + $4, lease = $5
                 WHERE id IN ({candidates})
                 RETURNING id, body, attempts"
            ),
            // Rows another consumer is claiming are skipped, not waited for.
            Dialect::Postgres => format!(
                "WITH picked AS ({candidates} FOR UPDATE SKIP LOCKED)
                 UPDATE bus_messages SET attempts = attempts + 1, visible_at = {now} + $4, lease = $5
                 FROM picked WHERE bus_messages.id = picked.id
                 RETURNING bus_messages.id, bus_messages.body, bus_messages.attempts"
            ),
        };
        let owned = "WHERE id = $1 AND lease = $2";
        Self {
            schema: vec![
                "CREATE TABLE IF NOT EXISTS bus_subscriptions (
                    name       TEXT PRIMARY KEY,
                    topic      TEXT NOT NULL,
                    created_at BIGINT NOT NULL)"
                    .into(),
                "CREATE INDEX IF NOT EXISTS bus_subscriptions_topic ON bus_subscriptions (topic)"
                    .into(),
                format!(
                    "CREATE TABLE IF NOT EXISTS bus_messages (
                    {id_column},
                    subscription TEXT NOT NULL,
                    event_id     TEXT NOT NULL,
                    ordering_key TEXT,
                    body         TEXT NOT NULL,
                    attempts     BIGINT NOT NULL DEFAULT 0,
                    visible_at   BIGINT NOT NULL,
                    lease        TEXT,
                    dead         BIGINT NOT NULL DEFAULT 0,
                    last_error   TEXT,
                    published_at BIGINT NOT NULL,
                    dead_at      BIGINT)"
                ),
                // Claims walk a queue in id order, skipping the few rows in flight.
                "CREATE INDEX IF NOT EXISTS bus_messages_queue
                    ON bus_messages (subscription, dead, id)"
                    .into(),
                "CREATE INDEX IF NOT EXISTS bus_messages_key
                    ON bus_messages (subscription, ordering_key, id)"
                    .into(),
            ],
            declare: format!(
                "INSERT INTO bus_subscriptions (name, topic, created_at) VALUES ($1, $2, {now})
                 ON CONFLICT (name) DO NOTHING"
            ),
            topic_of: "SELECT topic FROM bus_subscriptions WHERE name = $1".into(),
            // Every event of a batch times every subscription of the topic, in
            // publish order (ids follow it, and ordered subscriptions rely on that).
            publish_template: format!(
                "INSERT INTO bus_messages (subscription, event_id, ordering_key, body, visible_at, published_at)
                 SELECT s.name, v.column2, v.column3, v.column4, {now}, {now}
                 FROM bus_subscriptions s CROSS JOIN (VALUES {{values}}) AS v
                 WHERE s.topic = $1
                 ORDER BY v.column1, s.name"
            ),
            receive,
            next_visible: format!(
                "SELECT MIN(m.visible_at) - {now} FROM bus_messages m
                 WHERE m.subscription = $1 AND m.dead = 0 AND {IN_KEY_ORDER}"
            ),
            ack: format!("DELETE FROM bus_messages {owned}"),
            retry: format!(
                "UPDATE bus_messages SET visible_at = {now} + $3, lease = NULL, last_error = $4 {owned}"
            ),
            extend: format!("UPDATE bus_messages SET visible_at = {now} + $3 {owned}"),
            dead_letter: format!(
                "UPDATE bus_messages SET dead = 1, lease = NULL, last_error = $3, dead_at = {now} {owned}"
            ),
            stats: format!(
                "SELECT s.name, s.topic,
                    COUNT(m.id) FILTER (WHERE m.dead = 0 AND (m.lease IS NULL OR m.visible_at <= {now})),
                    COUNT(m.id) FILTER (WHERE m.dead = 0 AND m.lease IS NOT NULL AND m.visible_at > {now}),
                    COUNT(m.id) FILTER (WHERE m.dead = 1)
                 FROM bus_subscriptions s LEFT JOIN bus_messages m ON m.subscription = s.name
                 GROUP BY s.name, s.topic ORDER BY s.name"
            ),
            dead_letters: "SELECT body, attempts, last_error, dead_at FROM bus_messages
                 WHERE subscription = $1 AND dead = 1 ORDER BY id LIMIT $2"
                .into(),
            redrive_all: format!(
                "UPDATE bus_messages SET dead = 0, attempts = 0, visible_at = {now}, dead_at = NULL
                 WHERE subscription = $1 AND dead = 1"
            ),
            redrive_one: format!(
                "UPDATE bus_messages SET dead = 0, attempts = 0, visible_at = {now}, dead_at = NULL
                 WHERE subscription = $1 AND dead = 1 AND event_id = $2"
            ),
            purge_all: "DELETE FROM bus_messages WHERE subscription = $1 AND dead = 1".into(),
            purge_one: "DELETE FROM bus_messages WHERE subscription = $1 AND dead = 1 AND event_id = $2"
                .into(),
        }
    }
}

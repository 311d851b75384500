//! The cache on Redis (or Valkey, or ElastiCache): `redis://` and `rediss://`.
//!
//! An expiring set is two keys under one hash tag (so a Redis Cluster keeps
//! them on one node): a sorted set of members scored by when they expire,
//! and a hash of their values. Scripts run atomically and judge expiry by
//! the server's `TIME`, so instances on hosts with skewed clocks agree. Each
//! set's keys expire with its longest-lived member, so nothing leaks.
//! Channels are Redis pub/sub (`PSUBSCRIBE`), one connection per subscription.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, Script};
use tokio::sync::{mpsc, oneshot};

use crate::{
    hand_over, Backend, CacheError, CacheUrl, Delivery, Entry, Message, SUBSCRIBER_BUFFER,
};

/// How long a command or a connection attempt may take.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The wait before a lost subscription connection is made again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(250);

const PUT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
";

const MEMBERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
if #live == 0 then return {} end
local values = redis.call('HMGET', KEYS[2], unpack(live))
local out = {}
for i, member in ipairs(live) do
  out[#out + 1] = member
  out[#out + 1] = values[i] or ''
end
return out
";

pub(crate) struct RedisCache {
    client: Client,
    commands: ConnectionManager,
    put: Script,
    members: Script,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").finish_non_exhaustive()
    }
}

fn unavailable(error: redis::RedisError) -> CacheError {
    CacheError::Unavailable(error.to_string())
}

/// The set's two keys: `{set}:expiry` and `{set}:values`.
fn keys(set: &str) -> (String, String) {
    (format!("{{{set}}}:expiry"), format!("{{{set}}}:values"))
}

/// `prefix` as a `PSUBSCRIBE` pattern matching every channel it starts.
fn pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

impl RedisCache {
    pub(crate) fn open(url: &CacheUrl) -> Result<Self, CacheError> {
        let client = Client::open(url.without_prefix()).map_err(|e| CacheError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let commands =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)?;
        Ok(Self {
            client,
            commands,
            put: Script::new(PUT),
            members: Script::new(MEMBERS),
        })
    }
}

#[async_trait]
impl Backend for RedisCache {
    async fn put(
        &self,
        set: &str,
        member: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let (expiry, values) = keys(set);
        let _: i64 = self
            .put
            .key(expiry)
            .key(values)
            .arg(member)
            .arg(value)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.commands.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove(&self, set: &str, member: &str) -> Result<(), CacheError> {
        let (expiry, values) = keys(set);
        let _: () = redis::pipe()
            .atomic()
            .zrem(expiry, member)
            .ignore()
            .hdel(values, member)
            .ignore()
            .query_async(&mut self.commands.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn members(&self, set: &str) -> Result<Vec<Entry>, CacheError> {
        let (expiry, values) = keys(set);
        let flat: Vec<String> = self
            .members
            .key(expiry)
            .key(values)
            .invoke_async(&mut self.commands.clone())
            .await
            .map_err(unavailable)?;
        Ok(flat
            .chunks_exact(2)
            .map(|pair| Entry {
                member: pair[0].clone(),
                value: pair[1].clone(),
            })
            .collect())
    }

    async fn publish(&self, channel: &str, payload: &str) -> Result<(), CacheError> {
        let _: i64 = self
            .commands
            .clone()
            .publish(channel, payload)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn subscribe(&self, prefix: &str) -> Result<mpsc::Receiver<Delivery>, CacheError> {
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        let (subscribed, first) = oneshot::channel();
        tokio::spawn(follow(
            self.client.clone(),
            pattern(prefix),
            sender,
            subscribed,
        ));
        first
            .await
            .unwrap_or_else(|_| Err(CacheError::Unavailable("subscription ended".to_owned())))?;
        Ok(receiver)
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.commands.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Keeps one `PSUBSCRIBE` going for `sender` until it is dropped: the
/// first attempt's outcome goes to `subscribed`; later losses are
/// reconnected and reported as a gap.
async fn follow(
    client: Client,
    pattern: String,
    sender: mpsc::Sender<Delivery>,
    subscribed: oneshot::Sender<Result<(), CacheError>>,
) {
    let mut subscribed = Some(subscribed);
    let mut gap_owed = false;
    loop {
        let connected = async {
            let mut pubsub = tokio::time::timeout(TIMEOUT, client.get_async_pubsub())
                .await
                .map_err(|_| CacheError::Unavailable("no connection within 1s".to_owned()))?
                .map_err(unavailable)?;
            pubsub.psubscribe(&pattern).await.map_err(unavailable)?;
            Ok::<_, CacheError>(pubsub)
        }
        .await;
        match (connected, subscribed.take()) {
            (Err(error), Some(first)) => {
                let _ = first.send(Err(error));
                return;
            }
            (Err(error), None) => {
                tracing::warn!(error = %error, "the cache subscription is lost; retrying");
            }
            (Ok(pubsub), first) => {
                if let Some(first) = first {
                    let _ = first.send(Ok(()));
                } else if !hand_over(&sender, Delivery::Gap, &mut gap_owed) {
                    return;
                }
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let Ok(payload) = message.get_payload::<String>() else { continue };
                            let delivery = Delivery::Message(Message {
                                channel: message.get_channel_name().to_owned(),
                                payload,
                            });
                            if !hand_over(&sender, delivery, &mut gap_owed) {
                                return;
                            }
                        }
                        () = sender.closed() => return,
                    }
                }
                tracing::warn!("the cache subscription's connection closed; reconnecting");
                if !hand_over(&sender, Delivery::Lost, &mut gap_owed) {
                    return;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            () = sender.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_becomes_a_pattern_that_matches_only_what_it_starts() {
        assert_eq!(pattern("room:"), "room:*");
        assert_eq!(pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    }

    #[test]
    fn a_sets_keys_share_one_hash_tag() {
        assert_eq!(
            keys("ns:presence:r1"),
            (
                "{ns:presence:r1}:expiry".to_owned(),
                "{ns:presence:r1}:values".to_owned()
            )
        );
    }
}

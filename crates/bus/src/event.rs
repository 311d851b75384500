//! The envelope: CloudEvents 1.0 in its JSON structured form.
//!
//! Events are typed in Rust ([`EventType`]): the type names the topic, the
//! schema version travels in `dataschema`, and decoding ignores fields a
//! consumer does not know, so producers may add fields without breaking anyone.

use dozen_runtime::trace::TraceParent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A typed event: its CloudEvents `type` (which is also its topic) and schema version.
pub trait EventType: Serialize + DeserializeOwned {
    /// e.g. `user.signed_up`.
    const TYPE: &'static str;
    /// Bumped on a change consumers must notice; additions need no bump.
    const VERSION: u32;

    /// The CloudEvents `subject`: what the event is about, e.g. the user id.
    fn subject(&self) -> Option<String> {
        None
    }

    /// Events with the same key are handled in publish order by ordered subscriptions.
    fn ordering_key(&self) -> Option<String> {
        None
    }
}

/// A CloudEvents 1.0 event with JSON data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub time: String,
    pub datacontenttype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    /// W3C trace context (distributed tracing extension), so one trace spans
    /// the producer and every consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Partitioning extension: the ordering key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitionkey: Option<String>,
    pub data: Value,
}

/// An event whose data is not what the consumer expects: retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("expected an event of type {expected}, got {actual}")]
    WrongType {
        expected: &'static str,
        actual: String,
    },
    #[error("event schema version {actual} is newer than the {known} this consumer knows")]
    NewerVersion { known: u32, actual: u32 },
    #[error("event data does not match its type: {0}")]
    Data(#[from] serde_json::Error),
}

impl Event {
    /// A new event from `source` (e.g. `accounts`) with a fresh id and the current time.
    pub fn new<T: EventType>(source: &str, data: &T) -> Result<Self, serde_json::Error> {
        Ok(Self {
            specversion: "1.0".into(),
            id: uuid::Uuid::now_v7().to_string(),
            source: source.into(),
            event_type: T::TYPE.into(),
            subject: data.subject(),
            time: dozen_runtime::clock::now_rfc3339(),
            datacontenttype: "application/json".into(),
            dataschema: Some(schema_uri(T::TYPE, T::VERSION)),
            traceparent: Some(TraceParent::new().to_string()),
            partitionkey: data.ordering_key(),
            data: serde_json::to_value(data)?,
        })
    }

    /// Continues the caller's trace (e.g. the request's) instead of starting a new one.
    pub fn with_trace(mut self, parent: &TraceParent) -> Self {
        self.traceparent = Some(parent.child().to_string());
        self
    }

    /// The data as `T`, refusing another type or a newer major schema.
    pub fn decode<T: EventType>(&self) -> Result<T, DecodeError> {
        if self.event_type != T::TYPE {
            return Err(DecodeError::WrongType {
                expected: T::TYPE,
                actual: self.event_type.clone(),
            });
        }
        if let Some(actual) = self.dataschema.as_deref().and_then(schema_version) {
            if actual > T::VERSION {
                return Err(DecodeError::NewerVersion {
                    known: T::VERSION,
                    actual,
                });
            }
        }
        Ok(serde_json::from_value(self.data.clone())?)
    }

    /// The trace id of `traceparent`, for log lines.
    pub fn trace_id(&self) -> Option<&str> {
        let parent = self.traceparent.as_deref()?;
        parent.split('-').nth(1)
    }
}

fn schema_uri(event_type: &str, version: u32) -> String {
    format!("urn:dozen:event:{event_type}:v{version}")
}

fn schema_version(uri: &str) -> Option<u32> {
    uri.rsplit_once(":v")?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Greeted {
        name: String,
    }

    impl EventType for Greeted {
        const TYPE: &'static str = "test.greeted";
        const VERSION: u32 = 1;
        fn subject(&self) -> Option<String> {
            Some(self.name.clone())
        }
    }

    #[test]
    fn an_event_serialises_as_a_cloudevent_and_back() {
        let event = Event::new("tests", &Greeted { name: "ada".into() }).unwrap();
        let json: Value = serde_json::to_value(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "test.greeted");
        assert_eq!(json["source"], "tests");
        assert_eq!(json["subject"], "ada");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["dataschema"], "urn:dozen:event:test.greeted:v1");
        assert!(TraceParent::parse(json["traceparent"].as_str().unwrap()).is_some());
        assert_eq!(json["data"]["name"], "ada");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.decode::<Greeted>().unwrap().name, "ada");
    }

    #[test]
    fn consumers_ignore_fields_they_do_not_know() {
        let mut event = Event::new("tests", &Greeted { name: "ada".into() }).unwrap();
        event.data["added_later"] = Value::from(42);
        assert_eq!(event.decode::<Greeted>().unwrap().name, "ada");
    }

    #[test]
    fn a_newer_schema_or_another_type_is_refused() {
        let mut event = Event::new("tests", &Greeted { name: "ada".into() }).unwrap();
        event.dataschema = Some("urn:dozen:event:test.greeted:v2".into());
        assert!(matches!(
            event.decode::<Greeted>(),
            Err(DecodeError::NewerVersion {
                known: 1,
                actual: 2
            })
        ));
        event.event_type = "test.other".into();
        assert!(matches!(
            event.decode::<Greeted>(),
            Err(DecodeError::WrongType { .. })
        ));
    }

    #[test]
    fn a_continued_trace_keeps_its_trace_id_and_takes_a_new_span() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let event = Event::new("tests", &Greeted { name: "x".into() })
            .unwrap()
            .with_trace(&TraceParent::parse(parent).unwrap());
        assert_eq!(event.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_ne!(event.traceparent.as_deref(), Some(parent));
    }
}

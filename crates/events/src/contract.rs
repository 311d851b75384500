//! Checking events against their schemas, for producers' and consumers' tests.

use dozen_bus::EventType;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The schema of `event_type` at `version`, parsed.
pub fn schema(event_type: &str, version: u32) -> Option<Value> {
    crate::SCHEMAS
        .iter()
        .find(|(t, v, _)| *t == event_type && *v == version)
        .map(|(_, _, text)| serde_json::from_str(text).expect("checked-in schemas are JSON"))
}

/// Checks `data` (an event's `data`) against the schema of `event_type` at
/// `version`; the error lists every violation.
pub fn validate(event_type: &str, version: u32, data: &Value) -> Result<(), String> {
    let schema = schema(event_type, version)
        .ok_or_else(|| format!("no schema for {event_type} v{version}"))?;
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("the schema of {event_type} v{version} is invalid: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(data)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{event_type} v{version}: {}", errors.join("; ")))
    }
}

/// Checks a typed event against its schema: what a producer's test calls.
pub fn check<T: EventType + Serialize>(data: &T) -> Result<(), String> {
    let json = serde_json::to_value(data).map_err(|e| e.to_string())?;
    validate(T::TYPE, T::VERSION, &json)
}

/// The schema's examples as the type: what a consumer's test feeds its handler.
pub fn examples<T: EventType + DeserializeOwned>() -> Vec<T> {
    let schema = schema(T::TYPE, T::VERSION).expect("every event type has a schema");
    schema["examples"]
        .as_array()
        .expect("every schema has examples")
        .iter()
        .map(|example| {
            serde_json::from_value(example.clone()).unwrap_or_else(|e| {
                panic!(
                    "an example of {} v{} does not decode: {e}",
                    T::TYPE,
                    T::VERSION
                )
            })
        })
        .collect()
}

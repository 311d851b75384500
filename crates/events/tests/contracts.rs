//! The contracts hold: every schema is valid and its examples pass it, and
//! every Rust type reads its schema's examples and writes what the schema allows.

use dozen_bus::EventType;
use dozen_events::contract::{check, examples, validate};
use dozen_events::{CardCreated, MessageEdited, MessageSent, UserSignedUp, SCHEMAS};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Each example decodes into the type, and the type writes it back within the schema.
fn round_trips<T: EventType + Serialize + DeserializeOwned>() -> usize {
    let all = examples::<T>();
    for example in &all {
        check(example).unwrap_or_else(|e| panic!("written back: {e}"));
    }
    all.len()
}

#[test]
fn every_event_type_reads_its_schema_examples_and_writes_what_its_schema_allows() {
    assert!(round_trips::<UserSignedUp>() >= 2);
    assert!(round_trips::<MessageSent>() >= 2);
    assert!(round_trips::<CardCreated>() >= 2);
    assert!(round_trips::<MessageEdited>() >= 2);
}

#[test]
fn every_schema_is_valid_and_its_examples_pass_it() {
    assert_eq!(SCHEMAS.len(), 4, "a schema per event type");
    for (event_type, version, text) in SCHEMAS {
        let schema: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            schema["$id"],
            format!("urn:dozen:event:{event_type}:v{version}"),
            "the $id names the type and version, as the events' dataschema does"
        );
        for example in schema["examples"].as_array().unwrap() {
            validate(event_type, *version, example).unwrap();
        }
    }
}

#[test]
fn a_breaking_change_fails_the_check() {
    let mut example = serde_json::to_value(&examples::<UserSignedUp>()[0]).unwrap();
    example.as_object_mut().unwrap().remove("username");
    let error = validate(UserSignedUp::TYPE, 1, &example).unwrap_err();
    assert!(error.contains("username"), "{error}");

    let mut renamed = serde_json::to_value(&examples::<MessageSent>()[0]).unwrap();
    let text = renamed.as_object_mut().unwrap().remove("text").unwrap();
    renamed["body"] = text;
    assert!(validate(MessageSent::TYPE, 1, &renamed).is_err());
    assert!(
        serde_json::from_value::<MessageSent>(renamed).is_err(),
        "a consumer built on the type cannot read it either"
    );

    let mut bad_url = serde_json::to_value(&examples::<CardCreated>()[0]).unwrap();
    bad_url["url"] = "javascript:alert(1)".into();
    assert!(validate(CardCreated::TYPE, 1, &bad_url).is_err());
}

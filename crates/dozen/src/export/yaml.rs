//! JSON values written as block YAML, what every deployment tool reads. Keys
//! come out sorted (serde_json's maps are ordered), so the output depends on
//! nothing but its input.

use serde_json::Value;

/// `documents` as one YAML stream (`---` between documents).
pub fn stream(documents: &[Value]) -> String {
    let mut out = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_string(document));
    }
    out
}

pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(_) | Value::Array(_) => block(value, 0, &mut out),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                out.push_str(&pad);
                out.push_str(&string(key));
                out.push(':');
                nested(item, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                match item {
                    // A mapping in a list starts on the dash's line.
                    Value::Object(map) if !map.is_empty() => {
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(&inner[indent + 2..]);
                    }
                    _ => nested(item, indent, out),
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

/// What follows `key:` or `-`: a scalar on the same line, a collection below.
fn nested(item: &Value, indent: usize, out: &mut String) {
    match item {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            block(item, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            block(item, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&inline(item));
            out.push('\n');
        }
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string plain when YAML reads it back as the same string, quoted otherwise.
fn string(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:${}@".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && !text.contains(": ")
        && !text.ends_with(':')
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null"
        );
    if plain {
        text.to_owned()
    } else {
        // A JSON string is a YAML double-quoted scalar.
        serde_json::to_string(text).expect("a string serializes")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn nested_maps_and_lists_come_out_as_block_yaml() {
        let value = json!({
            "kind": "Deployment",
            "spec": { "replicas": 2, "args": ["serve"], "empty": {} },
            "env": [{ "name": "PORT", "value": "8080" }, "x"],
        });
        assert_eq!(
            super::to_string(&value),
            "env:\n  - name: PORT\n    value: \"8080\"\n  - x\nkind: Deployment\nspec:\n  args:\n    - serve\n  empty: {}\n  replicas: 2\n"
        );
    }

    #[test]
    fn strings_yaml_would_read_as_something_else_are_quoted() {
        for (text, written) in [
            ("on", "\"on\""),
            ("8080", "\"8080\""),
            ("a: b", "\"a: b\""),
            ("*", "\"*\""),
            ("", "\"\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("nats://nats:4222", "nats://nats:4222"),
            ("${AWS::StackName}-x", "\"${AWS::StackName}-x\""),
        ] {
            assert_eq!(super::string(text), written, "{text:?}");
        }
    }
}

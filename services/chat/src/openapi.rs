//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the rules `text` applies (one source for both). The two live streams are
//! described, but a fuzzer can only open them: they never end.

use axum::Json;
use dozen_runtime::http::openapi::{ErrorBody, ErrorDetail, StandardAnswers};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use crate::routes::{activity, events, messages, rooms};
use crate::text;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dozen chat",
        description = "Rooms, messages, read markers, typing, and the live streams."
    ),
    servers((url = "/api/chat", description = "Behind the gateway or a load balancer")),
    paths(
        rooms::create, rooms::list, rooms::show, rooms::join,
        messages::post, messages::page, messages::edit, messages::delete,
        activity::read, activity::typing, activity::stream, events::stream,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&StandardAnswers, &TextRules)
)]
pub(crate) struct ApiDoc;

/// The rules of room names and message texts, from `text`.
struct TextRules;

impl Modify for TextRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let mut rule = |schema: &str, field: &str, pattern: &str, max: usize| {
            if let Some(RefOr::T(Schema::Object(body))) = components.schemas.get_mut(schema) {
                if let Some(RefOr::T(Schema::Object(property))) = body.properties.get_mut(field) {
                    set(property, pattern, max);
                }
            }
        };
        rule(
            "NewRoom",
            "name",
            text::room_name_pattern(),
            text::MAX_ROOM_NAME_CHARS,
        );
        for schema in ["NewMessage", "EditedMessage"] {
            rule(schema, "text", text::message_pattern(), text::MAX_CHARS);
        }
    }
}

fn set(property: &mut Object, pattern: &str, max: usize) {
    property.pattern = Some(pattern.to_owned());
    property.min_length = Some(1);
    property.max_length = Some(max);
}

pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_states_the_rules_the_text_checks_apply() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["NewRoom"]["properties"]["name"]["pattern"],
            text::room_name_pattern()
        );
        assert_eq!(schemas["NewRoom"]["properties"]["name"]["maxLength"], 64);
        for body in ["NewMessage", "EditedMessage"] {
            assert_eq!(
                schemas[body]["properties"]["text"]["pattern"],
                text::message_pattern()
            );
            assert_eq!(schemas[body]["properties"]["text"]["maxLength"], 4000);
        }
        let post = &doc["paths"]["/v1/rooms/{id}/messages"]["post"]["responses"];
        for status in [
            "200", "201", "400", "401", "403", "404", "409", "413", "415", "422", "503",
        ] {
            assert!(post[status].is_object(), "posting answers {status}");
        }
    }
}

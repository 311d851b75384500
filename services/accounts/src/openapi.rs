//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the rules the validation applies (one source for both).

use axum::Json;
use dozen_runtime::http::openapi::{ErrorBody, ErrorDetail, StandardAnswers};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use crate::routes::{keys, sessions, users};
use crate::validation::{EMAIL_MAX_LENGTH, EMAIL_PATTERN, PASSWORD_LENGTH, USERNAME_PATTERN};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dozen accounts",
        description = "Users, credentials and the keys that sign session tokens."
    ),
    servers((url = "/api/accounts", description = "Behind the gateway or a load balancer")),
    paths(users::sign_up, users::me, users::by_id, sessions::log_in, keys::jwks),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&StandardAnswers, &SignupRules)
)]
pub(crate) struct ApiDoc;

/// The signup fields' rules, from `validation`.
struct SignupRules;

impl Modify for SignupRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(signup))) = components.schemas.get_mut("SignupRequest")
        else {
            return;
        };
        let mut field = |name: &str, rule: &dyn Fn(&mut Object)| {
            if let Some(RefOr::T(Schema::Object(property))) = signup.properties.get_mut(name) {
                rule(property);
            }
        };
        field("username", &|p| p.pattern = Some(USERNAME_PATTERN.into()));
        field("email", &|p| {
            p.pattern = Some(EMAIL_PATTERN.into());
            p.max_length = Some(EMAIL_MAX_LENGTH);
        });
        field("password", &|p| {
            p.min_length = Some(*PASSWORD_LENGTH.start());
            p.max_length = Some(*PASSWORD_LENGTH.end());
        });
    }
}

pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_states_the_rules_the_validation_applies() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let signup = &doc["components"]["schemas"]["SignupRequest"];
        assert_eq!(
            signup["required"],
            serde_json::json!(["username", "email", "password"])
        );
        assert_eq!(signup["properties"]["email"]["pattern"], EMAIL_PATTERN);
        assert_eq!(signup["properties"]["email"]["maxLength"], EMAIL_MAX_LENGTH);
        assert_eq!(
            signup["properties"]["username"]["pattern"],
            USERNAME_PATTERN
        );
        assert_eq!(signup["properties"]["password"]["minLength"], 10);
        assert_eq!(signup["properties"]["password"]["maxLength"], 128);
        let sign_up = &doc["paths"]["/v1/users"]["post"]["responses"];
        for status in ["201", "400", "409", "413", "415", "422", "503"] {
            assert!(
                sign_up[status].is_object(),
                "POST /v1/users answers {status}"
            );
        }
    }
}

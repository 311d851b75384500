//! What every service's OpenAPI 3.1 document shares: the error body, the
//! bearer scheme, and the answers the standard middleware may give any
//! operation — so that a document says every status the service answers.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, ToSchema};

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only; errors are built by `ApiError`
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable, machine-readable, e.g. `validation_failed`.
    code: String,
    message: String,
    /// For `validation_failed`: the problems by field name.
    #[schema(required = false)]
    fields: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// Adds the `bearer` scheme (a JWT from accounts) and, to every operation,
/// the answers of the standard middleware: 503 (a timeout, the database
/// down); for one with query parameters 400 (the query does not parse); for
/// one with path parameters 400 (the gateway refuses a segment that could
/// step out of its place); for
/// one with a JSON body also 400 (not JSON), 413 (larger than
/// `MAX_BODY_BYTES`), 415 (not `application/json`) and 422 (JSON of the
/// wrong shape). Add `ErrorBody` and `ErrorDetail` to the components.
#[derive(Debug)]
pub struct StandardAnswers;

impl Modify for StandardAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_standard_answers(operation);
            }
        }
    }
}

fn add_standard_answers(operation: &mut Operation) {
    let mut answers = vec![("503", "Timed out, or the database is unavailable")];
    if operation.request_body.is_some() {
        answers.extend([
            (
                "400",
                "The body is not JSON, or the query string does not parse",
            ),
            ("413", "The body is too large"),
            ("415", "The body is not `application/json`"),
            ("422", "JSON of the wrong shape, or invalid fields"),
        ]);
    }
    use utoipa::openapi::path::ParameterIn;
    let has = |place: ParameterIn| {
        operation
            .parameters
            .iter()
            .flatten()
            .any(|p| std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&place))
    };
    if has(ParameterIn::Query) {
        answers.push((
            "400",
            "The query string does not parse (a parameter given twice, say)",
        ));
    }
    if has(ParameterIn::Path) {
        answers.push((
            "400",
            "A path segment is `.` or `..`, or holds an encoded `/` or `\\` (refused by the gateway)",
        ));
    }
    if operation.security.is_some() {
        answers.push(("401", "Missing or invalid token"));
    }
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_answer(description).into());
    }
}

/// An answer with the error body.
pub fn error_answer(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
}

//! Problems in what a caller sent, field by field: one 422 answer lists them all.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::json;

use super::ApiError;

/// Problems found in a request body, by field.
#[derive(Debug, Default)]
pub struct FieldErrors(BTreeMap<&'static str, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: &'static str, problem: impl Into<String>) {
        self.0.entry(field).or_default().push(problem.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was found; otherwise the 422 answer listing every field.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let summary = self.0.keys().copied().collect::<Vec<_>>().join(", ");
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("invalid fields: {summary}"),
        )
        .with_detail("fields", json!(self.0)))
    }

    /// The field's value when present; otherwise a "is required" problem and `None`.
    pub fn present<'a>(
        &mut self,
        field: &'static str,
        value: &'a Option<String>,
    ) -> Option<&'a str> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value.as_deref()
    }
}

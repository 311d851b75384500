//! The bus conformance suite, run on every backend.

mod flaky;
mod suite;

mod postgres;
mod sqlite;

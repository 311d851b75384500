//! The cache's conformance suite, run on every backend.

mod embedded;
mod redis;
mod suite;

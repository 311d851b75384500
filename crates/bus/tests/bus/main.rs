//! The bus conformance suite, run on every backend.

mod amqp;
mod flaky;
mod suite;

mod nats;
mod postgres;
mod sns_sqs;
mod sqlite;

//! What chat needs to run, for `chat describe` and `dozen export`.

use dozen_bus::{EventType, ProcessSettings};
use dozen_cache::CacheSettings;
use dozen_events::{MessageEdited, MessageSent};
use dozen_manifest::{Backing, Manifest, Role, Var};

use crate::handlers;

/// Where the public API lives behind a load balancer that routes by path.
pub const ROUTE: &str = "/api/chat";

pub fn manifest() -> Manifest {
    Manifest::new(
        "chat",
        "Rooms, messages, their cards, a live stream, and the archive.",
    )
    .command(
        "serve",
        Role::Web {
            route: ROUTE.into(),
        },
    )
    .command("work", Role::Worker)
    .command("migrate", Role::Release)
    .command("republish", Role::Admin)
    .command("repair", Role::Admin)
    .command("archive", Role::Admin)
    .vars(ProcessSettings::vars())
    .vars([
        Var::required(
            "JWKS_URL",
            "http://127.0.0.1:8180/.well-known/jwks.json",
            "where accounts publishes the keys tokens are checked with",
        ),
        Var::optional("JWKS", "the key set itself, instead of JWKS_URL"),
        Var::optional("JWT_ISSUER", "the tokens' expected iss (default dozen)"),
        Var::optional("JWT_AUDIENCE", "the tokens' expected aud (default dozen)"),
        Var::required(
            "ARCHIVE_URL",
            "file://data/cold",
            "cold storage for `chat archive`: file://<folder> or s3://<bucket>/<prefix>",
        )
        .attaches(Backing::ObjectStore),
        Var::optional(
            "PRESENCE_TTL",
            "how long a user stays online after their instance last said so (default 15s)",
        ),
    ])
    .vars(CacheSettings::vars())
    .publishes(MessageSent::TYPE)
    .publishes(MessageEdited::TYPE)
    .subscribes(handlers::subscriptions().iter().map(|s| s.declared()))
}

#[cfg(test)]
dozen_testing::manifest_agrees_with_settings!(
    manifest(),
    crate::Settings,
    crate::WorkerSettings,
    crate::ReleaseSettings,
    crate::ArchiveSettings
);

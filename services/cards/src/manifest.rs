//! What cards needs to run, for `cards describe` and `dozen export`.

use dozen_bus::{EventType, ProcessSettings};
use dozen_events::CardCreated;
use dozen_manifest::{Manifest, Role, Var};

use crate::previews;

pub fn manifest() -> Manifest {
    Manifest::new("cards", "Link previews for the URLs in messages.")
        .command("work", Role::Worker)
        .command("migrate", Role::Release)
        .command("republish", Role::Admin)
        .vars(ProcessSettings::vars())
        .vars([
            Var::optional(
                "CARDS_ALLOW_ADDRESSES",
                "private addresses or networks that may be fetched anyway (default none)",
            ),
            Var::optional("CARDS_CONNECT_TIMEOUT", "per-connection limit (default 3s)"),
            Var::optional(
                "CARDS_FETCH_TIMEOUT",
                "per-page limit, redirects included (default 10s)",
            ),
            Var::optional(
                "CARDS_MAX_BYTES",
                "the part of a page read (default 1048576)",
            ),
        ])
        .publishes(CardCreated::TYPE)
        .subscribes(previews::subscriptions().iter().map(|s| s.declared()))
}

#[cfg(test)]
dozen_testing::manifest_agrees_with_settings!(manifest(), crate::Settings, crate::ReleaseSettings);

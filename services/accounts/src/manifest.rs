//! What accounts needs to run, for `accounts describe` and `dozen export`.

use dozen_bus::{EventType, ProcessSettings};
use dozen_events::UserSignedUp;
use dozen_manifest::{Manifest, Role, Var};

/// The development signing key of `dev.env`: public, for examples and tests only.
const DEV_KEY: &str = "-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEIIOgOuU7l2XFfYvpIvPp3x+2GyP4AsYcPpOFGGNAa+jF\\n-----END PRIVATE KEY-----";

/// Where the public API lives behind a load balancer that routes by path.
pub const ROUTE: &str = "/api/accounts";

pub fn manifest() -> Manifest {
    Manifest::new(
        "accounts",
        "Sign-up, log-in and the keys tokens are checked with.",
    )
    .command(
        "serve",
        Role::Web {
            route: ROUTE.into(),
        },
    )
    .command("migrate", Role::Release)
    .command("republish", Role::Admin)
    .vars([Var::secret(
        "JWT_PRIVATE_KEY",
        DEV_KEY,
        "the Ed25519 key tokens are signed with (PKCS#8 PEM; \\n escapes allowed)",
    )])
    .vars(ProcessSettings::vars())
    .vars([
        Var::optional("JWT_ISSUER", "the tokens' iss (default dozen)"),
        Var::optional("JWT_AUDIENCE", "the tokens' aud (default dozen)"),
        Var::optional("TOKEN_TTL", "how long a token is good for (default 1h)"),
    ])
    .vars(crate::throttle::ThrottleSettings::vars())
    .publishes(UserSignedUp::TYPE)
}

#[cfg(test)]
dozen_testing::manifest_agrees_with_settings!(
    manifest(),
    crate::Settings,
    crate::MigrateSettings,
    dozen_bus::ReleaseSettings
);

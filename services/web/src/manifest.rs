//! What web needs to run, for `web describe` and `dozen export`.

use dozen_manifest::{Manifest, Role, Var};
use dozen_runtime::http::HttpSettings;
use dozen_runtime::logging::LogSettings;

pub fn manifest() -> Manifest {
    Manifest::new(
        "web",
        "The front door: the browser UI and, in development, the gateway.",
    )
    .command("serve", Role::Web { route: "/".into() })
    .vars(LogSettings::vars())
    .vars(HttpSettings::vars())
    .vars([Var::platform(
        "DOZEN_UPSTREAMS",
        "accounts=127.0.0.1:8180;chat=127.0.0.1:8280",
        "the instances of each service the gateway routes /api/<service>/ to",
    )])
}

#[cfg(test)]
dozen_testing::manifest_agrees_with_settings!(manifest(), crate::Settings);

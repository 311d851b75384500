//! What web needs to run, for `web describe` and `dozen export`.

use dozen_manifest::{Manifest, Role, Var};
use dozen_runtime::http::HttpSettings;
use dozen_runtime::logging::LogSettings;

pub fn manifest() -> Manifest {
    Manifest::new(
        "web",
        "The front door: the home page and, in development, the gateway.",
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
mod tests {
    use dozen_testing::manifest::{assert_agrees, loader};

    #[test]
    fn the_manifest_declares_exactly_what_the_settings_need() {
        assert_agrees(&super::manifest(), &[loader::<crate::Settings>]);
    }
}

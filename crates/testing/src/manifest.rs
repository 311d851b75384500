//! Proof that a service's manifest tells the truth about its settings.

use dozen_manifest::{Manifest, Need};
use dozen_runtime::config::{ConfigError, Env, FromEnv};

/// Loads one settings type of a service, for [`assert_agrees`].
pub type Loader = fn(&Env) -> Result<(), ConfigError>;

/// A [`Loader`] for settings type `T`.
pub fn loader<T: FromEnv>(env: &Env) -> Result<(), ConfigError> {
    T::from_env(env).map(|_| ())
}

/// Panics unless `manifest` agrees with the settings `loaders` read:
/// - every settings type loads from the declared examples alone;
/// - every variable any of them asks for is declared;
/// - every variable declared required (or secret) is needed: without it,
///   some settings type fails and names it.
pub fn assert_agrees(manifest: &Manifest, loaders: &[Loader]) {
    let examples = || {
        manifest
            .vars
            .iter()
            .filter(|v| v.need != Need::Optional)
            .filter_map(|v| Some((v.name.as_str(), v.example.as_deref()?)))
    };
    let env = Env::from_pairs(examples());
    for load in loaders {
        if let Err(error) = load(&env) {
            panic!(
                "{}'s settings do not load from its manifest's examples: {error}",
                manifest.service
            );
        }
    }
    let undeclared: Vec<String> = env
        .asked()
        .into_iter()
        .filter(|name| manifest.var(name).is_none())
        .collect();
    assert!(
        undeclared.is_empty(),
        "{} reads variables its manifest does not declare: {undeclared:?}",
        manifest.service
    );
    for var in manifest.required() {
        let without = Env::from_pairs(examples().filter(|(name, _)| *name != var.name));
        let named = loaders
            .iter()
            .any(|load| load(&without).is_err_and(|e| e.var == var.name));
        assert!(
            named,
            "{} declares {} required, but every settings type loads without it",
            manifest.service, var.name
        );
    }
}

/// The test that a service's manifest agrees with its settings types:
/// `manifest_agrees_with_settings!(manifest(), Settings, MigrateSettings);`
#[macro_export]
macro_rules! manifest_agrees_with_settings {
    ($manifest:expr, $($settings:ty),+ $(,)?) => {
        #[test]
        fn the_manifest_declares_exactly_what_the_settings_need() {
            $crate::manifest::assert_agrees(
                &$manifest,
                &[$($crate::manifest::loader::<$settings>),+],
            );
        }
    };
}

//! Password hashing with argon2id, off the async executor.
//!
//! A password is hashed and checked in Unicode NFKC, as NIST SP 800-63B
//! §5.1.1.2 asks, so the same password typed on another keyboard (`é` as
//! one code point or as `e` and a combining accent, a full-width digit)
//! matches. Hashes made before of the text as typed still verify.
//!
//! Hashing is deliberately slow and memory-hungry (19 MiB each), so it runs on
//! the blocking pool behind a semaphore sized to the CPUs: a burst of logins
//! queues instead of stalling other requests or exhausting memory.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use dozen_runtime::metrics::Counter;
use tokio::sync::Semaphore;

/// Hashes and verifies passwords; cheap to clone.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    checks: Counter,
}

impl Passwords {
    /// `checks` counts every verification, the dummy ones for unknown users included.
    pub fn new(checks: Counter) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            permits: Arc::new(Semaphore::new(cpus)),
            checks,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Passwords {
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash_now(&normalized(&password))).await?
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown user) a
    /// dummy hash is checked instead, so the answer takes the same time.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let checks = self.checks.clone();
        self.run(move || {
            checks.inc();
            let stored = stored.as_deref().unwrap_or_else(|| dummy_hash());
            let Ok(parsed) = PasswordHash::new(stored) else {
                return false;
            };
            let matches = |text: &str| {
                Argon2::default()
                    .verify_password(text.as_bytes(), &parsed)
                    .is_ok()
            };
            let normal = normalized(&password);
            // The text as typed: a hash from before passwords were
            // normalised. Checked for unknown users too, so the time tells nothing.
            let matched = matches(&normal) || (normal != password && matches(&password));
            matched && stored != dummy_hash()
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        Ok(tokio::task::spawn_blocking(work).await?)
    }
}

/// `password` in Unicode NFKC.
pub fn normalized(password: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    password.nfkc().collect()
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(HashError::Hash)
}

/// A hash of a random password with the same parameters as real ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = uuid::Uuid::new_v4().to_string();
        hash_now(&random).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_and_no_other() {
        let passwords = Passwords::new(Counter::default());
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(passwords
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("wrong horse!".into(), Some(hash))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_password_matches_however_its_characters_are_composed() {
        let passwords = Passwords::new(Counter::default());
        // é as one code point (NFC); e and a combining acute (NFD); the
        // compatibility forms NFKC folds: full-width digits, the ligature ﬁ.
        let hash = passwords.hash("caf\u{e9} 2024 fine".into()).await.unwrap();
        for typed in [
            "caf\u{e9} 2024 fine",
            "cafe\u{301} 2024 fine",
            "caf\u{e9} \u{ff12}\u{ff10}\u{ff12}\u{ff14} fine",
            "cafe\u{301} 2024 \u{fb01}ne",
        ] {
            assert!(
                passwords
                    .verify(typed.into(), Some(hash.clone()))
                    .await
                    .unwrap(),
                "{typed:?}"
            );
        }
        for wrong in [
            "cafe 2024 fine",
            "caf\u{e8} 2024 fine",
            "CAF\u{c9} 2024 FINE",
        ] {
            assert!(
                !passwords
                    .verify(wrong.into(), Some(hash.clone()))
                    .await
                    .unwrap(),
                "{wrong:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_hash_of_the_text_as_typed_from_before_normalising_still_verifies() {
        let passwords = Passwords::new(Counter::default());
        let typed = "cafe\u{301} au lait";
        let legacy = hash_now(typed).unwrap();
        assert!(passwords
            .verify(typed.into(), Some(legacy.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("cafe au lait".into(), Some(legacy))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let passwords = Passwords::new(Counter::default());
        assert!(!passwords
            .verify("anything at all".into(), None)
            .await
            .unwrap());
    }
}

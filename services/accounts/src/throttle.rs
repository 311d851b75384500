//! A brake on guessing passwords: login attempts counted per account and
//! per client address in fixed windows, kept in accounts' own database so
//! every instance counts together (OWASP's Authentication Cheat Sheet;
//! NIST SP 800-63B §5.2.2 asks for a limit on failed attempts per account).
//!
//! An attempt is counted before its password is checked, so a burst cannot
//! slip through while the checks run; a login that succeeds is taken back
//! from its address and clears its account's count. Past a limit, logins
//! answer 429 with `Retry-After` until the window ends — the same answer
//! whether the account exists or not, since it is counted by the name
//! given. An attacker can so hold an account shut for one window at a time
//! while they keep guessing, never longer: the window is short and a
//! setting, and the limit per account is higher than any person's typos.

use std::time::Duration;

use dozen_manifest::Var;
use dozen_runtime::clock::now_millis;
use dozen_runtime::config::{ConfigError, Env, FromEnv};
use sqlx::AnyPool;

/// `LOGIN_ATTEMPTS_PER_ACCOUNT` (default 10), `LOGIN_ATTEMPTS_PER_ADDRESS`
/// (default 100) and `LOGIN_ATTEMPT_WINDOW` (default 5m).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    pub per_account: i64,
    pub per_address: i64,
    pub window: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            per_account: 10,
            per_address: 100,
            window: Duration::from_secs(300),
        }
    }
}

impl FromEnv for ThrottleSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let at_least_one = |var: &str, default: i64| -> Result<i64, ConfigError> {
            let n = env.or(var, default)?;
            if n < 1 {
                return Err(ConfigError::new(var, "must be at least 1"));
            }
            Ok(n)
        };
        let window = env.duration_or("LOGIN_ATTEMPT_WINDOW", defaults.window)?;
        if window < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "LOGIN_ATTEMPT_WINDOW",
                "must be at least 1s",
            ));
        }
        Ok(Self {
            per_account: at_least_one("LOGIN_ATTEMPTS_PER_ACCOUNT", defaults.per_account)?,
            per_address: at_least_one("LOGIN_ATTEMPTS_PER_ADDRESS", defaults.per_address)?,
            window,
        })
    }
}

impl ThrottleSettings {
    /// The variables [`ThrottleSettings::from_env`] reads, for the manifest.
    pub fn vars() -> Vec<Var> {
        vec![
            Var::optional(
                "LOGIN_ATTEMPTS_PER_ACCOUNT",
                "login attempts one account may have per window before 429 (default 10)",
            ),
            Var::optional(
                "LOGIN_ATTEMPTS_PER_ADDRESS",
                "login attempts one client address may make per window before 429 (default 100)",
            ),
            Var::optional(
                "LOGIN_ATTEMPT_WINDOW",
                "the window the login attempts are counted in (default 5m)",
            ),
        ]
    }
}

/// What to tell a login that is over a limit: how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

/// The counts of one login's keys.
#[derive(Debug)]
pub struct Attempt {
    account: String,
    address: String,
}

impl Attempt {
    /// The attempt to log in as `login` (a username or an e-mail address, as
    /// given) from `address`.
    pub fn new(login: &str, address: std::net::IpAddr) -> Self {
        Self {
            account: format!("account:{}", login.to_lowercase()),
            address: format!("address:{address}"),
        }
    }

    /// Counts the attempt; `Err` if its account or its address is past its
    /// limit, with the longer wait of the two.
    pub async fn count(
        &self,
        db: &AnyPool,
        settings: &ThrottleSettings,
    ) -> Result<Result<(), Throttled>, sqlx::Error> {
        let now = now_millis();
        let window = i64::try_from(settings.window.as_millis()).unwrap_or(i64::MAX);
        // Names nobody has, tried once, must not pile up.
        forget_ended(db, now).await?;
        let mut wait_ms = 0_i64;
        for (key, limit) in [
            (&self.account, settings.per_account),
            (&self.address, settings.per_address),
        ] {
            let (attempts, window_ends): (i64, i64) = sqlx::query_as(
                "INSERT INTO login_attempts (key, attempts, window_ends) VALUES ($1, 1, $2)
                 ON CONFLICT (key) DO UPDATE SET
                     attempts = CASE WHEN login_attempts.window_ends <= $3 THEN 1
                                     ELSE login_attempts.attempts + 1 END,
                     window_ends = CASE WHEN login_attempts.window_ends <= $3 THEN excluded.window_ends
                                        ELSE login_attempts.window_ends END
                 RETURNING attempts, window_ends",
            )
            .bind(key)
            .bind(now + window)
            .bind(now)
            .fetch_one(db)
            .await?;
            if attempts > limit {
                wait_ms = wait_ms.max(window_ends - now);
            }
        }
        if wait_ms > 0 {
            let seconds = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1);
            return Ok(Err(Throttled {
                retry_after: Duration::from_secs(seconds),
            }));
        }
        Ok(Ok(()))
    }

    /// The login succeeded: its account starts afresh, and the attempt does
    /// not count against its address.
    pub async fn succeeded(&self, db: &AnyPool) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_attempts WHERE key = $1")
            .bind(&self.account)
            .execute(db)
            .await?;
        sqlx::query(
            "UPDATE login_attempts SET attempts = attempts - 1 WHERE key = $1 AND attempts > 0",
        )
        .bind(&self.address)
        .execute(db)
        .await?;
        Ok(())
    }
}

/// Deletes the counts whose window ended before `before` (ms since the epoch).
async fn forget_ended(db: &AnyPool, before: i64) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM login_attempts WHERE window_ends < $1")
            .bind(before)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

//! The users table. SQL here runs on SQLite and PostgreSQL alike.

use sqlx::{Any, AnyPool, FromRow, Transaction};

/// A stored user.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("the username is taken")]
    UsernameTaken,
    #[error("the e-mail address is taken")]
    EmailTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, username, email, password_hash, created_at";

/// Inserts the user in the caller's transaction. On a duplicate the transaction
/// is rolled back (PostgreSQL would refuse anything more in it) and the pool
/// is asked which of username and e-mail is taken.
pub async fn insert(
    pool: &AnyPool,
    mut tx: Transaction<'static, Any>,
    user: &UserRow,
) -> Result<Transaction<'static, Any>, InsertError> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(user.created_at)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => Ok(tx),
        Err(error) if is_unique_violation(&error) => {
            tx.rollback().await?;
            if by_username(pool, &user.username).await?.is_some() {
                Err(InsertError::UsernameTaken)
            } else {
                Err(InsertError::EmailTaken)
            }
        }
        Err(error) => Err(error.into()),
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

pub async fn by_id(pool: &AnyPool, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn by_username(pool: &AnyPool, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
        .bind(username)
        .fetch_optional(pool)
        .await
}

pub async fn by_email(pool: &AnyPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
        .bind(email)
        .fetch_optional(pool)
        .await
}

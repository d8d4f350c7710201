//! The PLC side's database: one `sqlx` `AnyPool` over a SQLite file (the default, `plc.db` in
//! the state directory) or PostgreSQL (a `postgres://` URL), brought to the schema in
//! `agent/migrations/` before anything else touches it.
//!
//! Both databases run the same SQL text: `$n` placeholders, portable types, `INSERT … ON
//! CONFLICT DO NOTHING`, `RETURNING`. Every statement is a `&'static str` (sqlx refuses anything
//! else without an explicit `AssertSqlSafe`), so no value ever becomes SQL text: names with
//! quotes or semicolons are stored and returned verbatim. This module owns opening, migrating,
//! id allocation and the store's error type; the tables' meaning belongs to `store` (registry
//! records) and `embedded` (the embedded PLC).

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbKind {
    Postgres,
    Sqlite,
}

/// An open, migrated database.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pool: AnyPool,
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A row with the same key is already there.
    #[error("{0} already exists")]
    Exists(String),
    /// A stored value that does not read back (edited by hand, or a bug that wrote it).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL is not one this build opens.
    #[error("{0}")]
    Url(String),
}

pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// Every migration, oldest first. A schema change is a new file here, never an edit of an old
/// one: sqlx refuses to start on a database whose applied migration no longer matches.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "registry records and the embedded PLC",
    include_str!("../../migrations/0001_plc.sql"),
)];

impl DbKind {
    /// The kind of `url`, or an error naming the forms accepted.
    pub(crate) fn of(url: &str) -> StoreResult<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(StoreError::Url(format!(
                "database {:?} is neither a postgres:// nor a sqlite: URL",
                redact(url)
            )))
        }
    }
}

impl Db {
    /// Connects to `url` (creating a SQLite file if missing) and applies pending migrations.
    pub(crate) async fn open(url: &str) -> StoreResult<Self> {
        let kind = DbKind::of(url)?;
        sqlx::any::install_default_drivers();
        // SQLite serialises writers anyway; a few readers next to one writer is all WAL needs.
        let max = match kind {
            DbKind::Sqlite => 4,
            DbKind::Postgres => 8,
        };
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        if kind == DbKind::Sqlite {
            // Persistent in the file: readers no longer block the writer, and a crash loses no
            // committed transaction (synchronous stays FULL, sqlx's default).
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection (SQLite checkpoints its WAL on the last close).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Allocates the next id of `table` (`site`, `person`, …) inside `tx`. A write, so that a
/// SQLite transaction takes the write lock first and never has to upgrade a read lock (which
/// fails at once rather than waiting when another writer got there first).
pub(crate) async fn next_id(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    table: &str,
) -> StoreResult<i64> {
    let id: i64 = sqlx::query_scalar(
        "UPDATE plc_ids SET next_id = next_id + 1 WHERE name = $1 RETURNING next_id - 1",
    )
    .bind(table)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// The `sqlite:` URL of a database file, creating it if missing. `%`, `?` and `#` are
/// percent-encoded because sqlx decodes the path and splits parameters at `?`.
pub(crate) fn sqlite_url(path: &Path) -> String {
    let mut encoded = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    format!("sqlite://{encoded}?mode=rwc")
}

/// `url` without its password, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Whether `e` is a unique-constraint violation (a duplicate key).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(sqlx::error::DatabaseError::is_unique_violation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            sqlite_url(Path::new("/var/lib/a?b#c%d/plc.db")),
            "sqlite:///var/lib/a%3Fb%23c%25d/plc.db?mode=rwc"
        );
        assert_eq!(
            redact("postgres://geni:s3cret@db.example:5432/plc"),
            "postgres://geni:***@db.example:5432/plc"
        );
        assert_eq!(redact("postgres://db/plc"), "postgres://db/plc");
        assert_eq!(DbKind::of("postgresql://x/y").unwrap(), DbKind::Postgres);
        assert_eq!(DbKind::of("sqlite:///x").unwrap(), DbKind::Sqlite);
        assert!(DbKind::of("mysql://x/y").is_err());
    }

    #[tokio::test]
    async fn migrates_once_and_hands_out_ids() {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir.path().join("plc.db"));
        let db = Db::open(&url).await.unwrap();
        let mut tx = db.pool().begin().await.unwrap();
        assert_eq!(next_id(&mut tx, "site").await.unwrap(), 1);
        assert_eq!(next_id(&mut tx, "site").await.unwrap(), 2);
        tx.commit().await.unwrap();
        db.close().await;
        // Reopening applies nothing new and keeps the counters.
        let db = Db::open(&url).await.unwrap();
        let mut tx = db.pool().begin().await.unwrap();
        assert_eq!(next_id(&mut tx, "site").await.unwrap(), 3);
        tx.rollback().await.unwrap();
    }
}

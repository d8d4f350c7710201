//! The registry's own table: one row per 2008 record `{name, gid, type, pointer}`, keyed by
//! `(hrn, type)` because an authority's sa and ma records share its hrn.
//!
//! 2008 kept one table per authority and built every statement by concatenating names into SQL;
//! here there is one table, every value is a bound parameter, and the GID is stored exactly as
//! issued (the PEM chain text), so a record reads back byte for byte. `pl_info` and `geni_info`
//! are not stored: they are filled from PLC when a record is shown, as 2008 did.

use geni_trust::{Hrn, RecordType};
use sqlx::Row;

use super::db::{Db, StoreError, StoreResult};

/// One registry record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRecord {
    pub(crate) hrn: Hrn,
    pub(crate) kind: RecordType,
    /// The GID chain text as issued.
    pub(crate) gid: String,
    /// The PLC id (site for sa/ma, person, slice, node), −1 when there is none.
    pub(crate) pointer: i64,
}

/// The registry records of one database.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: Db,
}

impl Store {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// The record of `kind` at `hrn`.
    pub(crate) async fn find(
        &self,
        hrn: &Hrn,
        kind: RecordType,
    ) -> StoreResult<Option<StoredRecord>> {
        let row = sqlx::query(
            "SELECT hrn, type, gid, pointer FROM registry_records WHERE hrn = $1 AND type = $2",
        )
        .bind(hrn.as_str())
        .bind(kind.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Every record at `hrn` (sa and ma of an authority, or the one record of anything else).
    pub(crate) async fn find_all(&self, hrn: &Hrn) -> StoreResult<Vec<StoredRecord>> {
        let rows = sqlx::query(
            "SELECT hrn, type, gid, pointer FROM registry_records WHERE hrn = $1 ORDER BY type",
        )
        .bind(hrn.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// The records directly under `authority`, by hrn then type.
    pub(crate) async fn under(&self, authority: &Hrn) -> StoreResult<Vec<StoredRecord>> {
        let rows = sqlx::query(
            "SELECT hrn, type, gid, pointer FROM registry_records WHERE authority = $1 \
             ORDER BY hrn, type",
        )
        .bind(authority.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// The records of `kind` pointing at PLC id `pointer` (a person's user record, a site's sa
    /// and ma records).
    pub(crate) async fn by_pointer(
        &self,
        kind: RecordType,
        pointer: i64,
    ) -> StoreResult<Vec<StoredRecord>> {
        let rows = sqlx::query(
            "SELECT hrn, type, gid, pointer FROM registry_records WHERE type = $1 AND pointer = $2 \
             ORDER BY hrn",
        )
        .bind(kind.as_str())
        .bind(pointer)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Adds `record`; [`StoreError::Exists`] if `(hrn, type)` is taken, and then nothing changed.
    pub(crate) async fn insert(&self, record: &StoredRecord) -> StoreResult<()> {
        self.insert_all(std::slice::from_ref(record)).await
    }

    /// Replaces the GID and pointer of an existing record; false when there is none.
    pub(crate) async fn update(&self, record: &StoredRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE registry_records SET gid = $3, pointer = $4 WHERE hrn = $1 AND type = $2",
        )
        .bind(record.hrn.as_str())
        .bind(record.kind.as_str())
        .bind(record.gid.as_str())
        .bind(record.pointer)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes one record; false when there was none.
    pub(crate) async fn delete(&self, hrn: &Hrn, kind: RecordType) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM registry_records WHERE hrn = $1 AND type = $2")
            .bind(hrn.as_str())
            .bind(kind.as_str())
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes every record (`plc nuke`); returns how many there were.
    pub(crate) async fn clear(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM registry_records")
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// `(hrn, type)` of every record (what `plc import` compares PLC against).
    pub(crate) async fn keys(&self) -> StoreResult<Vec<(String, RecordType)>> {
        let rows = sqlx::query("SELECT hrn, type FROM registry_records")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let hrn: String = row.try_get("hrn")?;
                let kind: String = row.try_get("type")?;
                let kind =
                    kind.parse()
                        .map_err(|e: geni_trust::TrustError| StoreError::Corrupt {
                            what: format!("record {hrn:?} ({kind})"),
                            reason: e.to_string(),
                        })?;
                Ok((hrn, kind))
            })
            .collect()
    }

    /// Adds `records` in one transaction: all of them, or (when one's `(hrn, type)` is taken,
    /// [`StoreError::Exists`]) none.
    pub(crate) async fn insert_all(&self, records: &[StoredRecord]) -> StoreResult<()> {
        let mut tx = self.db.pool().begin().await?;
        for record in records {
            let authority = record
                .hrn
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default();
            let done = sqlx::query(
                "INSERT INTO registry_records (hrn, type, authority, gid, pointer) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hrn, type) DO NOTHING",
            )
            .bind(record.hrn.as_str())
            .bind(record.kind.as_str())
            .bind(authority)
            .bind(record.gid.as_str())
            .bind(record.pointer)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                // Dropping the transaction rolls it back.
                return Err(StoreError::Exists(format!(
                    "record {} ({})",
                    record.hrn, record.kind
                )));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn count(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM registry_records")
            .fetch_one(self.db.pool())
            .await?)
    }
}

fn decode(row: &sqlx::any::AnyRow) -> StoreResult<StoredRecord> {
    let hrn: String = row.try_get("hrn")?;
    let kind: String = row.try_get("type")?;
    let corrupt = |reason: String| StoreError::Corrupt {
        what: format!("record {hrn:?} ({kind})"),
        reason,
    };
    Ok(StoredRecord {
        hrn: Hrn::parse(&hrn).map_err(|e| corrupt(e.to_string()))?,
        kind: kind
            .parse()
            .map_err(|e: geni_trust::TrustError| corrupt(e.to_string()))?,
        gid: row.try_get("gid")?,
        pointer: row.try_get("pointer")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plc::db::sqlite_url;

    #[tokio::test]
    async fn records_round_trip_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&sqlite_url(&dir.path().join("plc.db")))
            .await
            .unwrap();
        let store = Store::new(db);
        // Quotes cannot be in an hrn (the grammar refuses them); a LIKE wildcard and a SQL
        // comment can, and the GID text may hold anything.
        let hrn: Hrn = "planetlab.us.pl.o_hara--DROP_TABLE_registry_records--"
            .parse()
            .unwrap();
        let rec = StoredRecord {
            hrn: hrn.clone(),
            kind: RecordType::User,
            gid: "-----BEGIN CERTIFICATE-----\n'\";--\n".into(),
            pointer: 7,
        };
        store.insert(&rec).await.unwrap();
        assert!(matches!(
            store.insert(&rec).await,
            Err(StoreError::Exists(_))
        ));
        assert_eq!(
            store.find(&hrn, RecordType::User).await.unwrap(),
            Some(rec.clone())
        );
        assert_eq!(store.find(&hrn, RecordType::Slice).await.unwrap(), None);
        let parent: Hrn = "planetlab.us.pl".parse().unwrap();
        assert_eq!(
            store.under(&parent).await.unwrap(),
            std::slice::from_ref(&rec)
        );
        assert_eq!(
            store.by_pointer(RecordType::User, 7).await.unwrap(),
            std::slice::from_ref(&rec)
        );
        assert!(store.delete(&hrn, RecordType::User).await.unwrap());
        assert!(!store.delete(&hrn, RecordType::User).await.unwrap());
        assert_eq!(store.count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn insert_all_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&sqlite_url(&dir.path().join("plc.db")))
            .await
            .unwrap();
        let store = Store::new(db);
        let rec = |hrn: &str, kind| StoredRecord {
            hrn: hrn.parse().unwrap(),
            kind,
            gid: format!("gid of {hrn}"),
            pointer: 1,
        };
        let first = [
            rec("planetlab.us.pl", RecordType::Sa),
            rec("planetlab.us.pl", RecordType::Ma),
            rec("planetlab.us.pl.a", RecordType::User),
        ];
        store.insert_all(&first).await.unwrap();
        // The last of these is taken: none of them is stored.
        let second = [
            rec("planetlab.us.pl.b", RecordType::User),
            rec("planetlab.us.pl.a", RecordType::User),
        ];
        assert!(matches!(
            store.insert_all(&second).await,
            Err(StoreError::Exists(what)) if what.contains("planetlab.us.pl.a")
        ));
        let mut keys = store.keys().await.unwrap();
        keys.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        assert_eq!(
            keys,
            [
                ("planetlab.us.pl".to_owned(), RecordType::Ma),
                ("planetlab.us.pl".to_owned(), RecordType::Sa),
                ("planetlab.us.pl.a".to_owned(), RecordType::User),
            ]
        );
    }
}

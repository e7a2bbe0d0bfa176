//! Named connections: a connector type and its config (secrets as references).

use sqlx::Row;

use super::rows::{connection_from_row, fetch_connection, lock_row, to_json, CONNECTION_COLUMNS};
use super::{Result, Store, StoreError};
use crate::model::ConnectionRecord;

const KIND: &str = "connection";

impl Store {
    /// Stores a new connection; its id must be free.
    pub async fn create_connection(&self, connection: &ConnectionRecord) -> Result<()> {
        let inserted = sqlx::query(
            "INSERT INTO connections (id, kind, config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&connection.id)
        .bind(&connection.kind)
        .bind(to_json(&connection.config)?)
        .bind(connection.created_at)
        .bind(connection.updated_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                kind: KIND,
                id: connection.id.clone(),
            });
        }
        Ok(())
    }

    /// One connection.
    pub async fn get_connection(&self, id: &str) -> Result<ConnectionRecord> {
        let mut conn = self.pool.acquire().await?;
        fetch_connection(&mut conn, id)
            .await?
            .ok_or_else(|| StoreError::not_found(KIND, id))
    }

    /// A page of connections ordered by id, starting after `after` (the last id of the
    /// previous page), so pages stay stable while connections are added.
    pub async fn list_connections(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConnectionRecord>> {
        let rows = match after {
            Some(after) => {
                let sql = format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections WHERE id > $1 \
                     ORDER BY id LIMIT $2"
                );
                sqlx::query(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql =
                    format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY id LIMIT $1");
                sqlx::query(&sql)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(connection_from_row).collect()
    }

    /// Replaces a connection's kind and config; its creation time is kept and `updated_at`
    /// taken from the record. Returns the stored connection.
    pub async fn update_connection(
        &self,
        connection: &ConnectionRecord,
    ) -> Result<ConnectionRecord> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE connections SET kind = $1, config = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&connection.kind)
        .bind(to_json(&connection.config)?)
        .bind(connection.updated_at)
        .bind(&connection.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::not_found(KIND, &connection.id));
        }
        let stored = fetch_connection(&mut tx, &connection.id)
            .await?
            .ok_or_else(|| StoreError::not_found(KIND, &connection.id))?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Deletes a connection, refused while a sync uses it (the error names those syncs).
    pub async fn delete_connection(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Locking the row makes a concurrent create_sync (which holds it FOR SHARE) wait, so
        // the usage check below cannot miss a sync being created.
        lock_row(&mut tx, "connections", KIND, id, self.dialect.for_update()).await?;
        let users: Vec<String> = sqlx::query(
            "SELECT id FROM syncs WHERE source_connection = $1 OR destination_connection = $1 \
             ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;
        if !users.is_empty() {
            return Err(StoreError::FailedPrecondition(format!(
                "connection `{id}` is used by sync(s) {}; delete or change them first",
                users
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

//! The `scores` rows both end-to-end mirror suites compare: a source (PostgreSQL or a
//! warehouse) against a destination, each read back with its own client.

use std::collections::BTreeMap;

use anyhow::{ensure, Context as _, Result};
use sqlx::Row as _;

/// One row in a form every system can be compared in: timestamps as whole microseconds since
/// the epoch (the tests write whole seconds, so millisecond BSON dates hold them exactly).
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub name: String,
    pub score: Option<f64>,
    pub active: bool,
    pub updated_at_micros: i64,
}

/// Rows by key.
pub type Rows = BTreeMap<i64, Score>;

/// A PostgreSQL table of scores; the casts make the comparison independent of the column
/// types a sync's `create_table` chose for the source's types.
pub async fn read_pg(pool: &sqlx::PgPool, table: &str) -> Result<Rows> {
    let rows = sqlx::query(&format!(
        "SELECT id::bigint AS id, name::text AS name, score::float8 AS score, \
                active::bool AS active, \
                (extract(epoch FROM updated_at) * 1000000)::bigint AS micros \
         FROM {table}"
    ))
    .fetch_all(pool)
    .await
    .with_context(|| format!("reading {table}"))?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("id")?,
                Score {
                    name: r.try_get("name")?,
                    score: r.try_get("score")?,
                    active: r.try_get("active")?,
                    updated_at_micros: r.try_get("micros")?,
                },
            ))
        })
        .collect()
}

/// Fails unless `destination` holds exactly `source`, naming the first differing keys.
pub fn ensure_equal(kind: &str, source: &Rows, destination: &Rows) -> Result<()> {
    let missing: Vec<_> = source
        .keys()
        .filter(|k| !destination.contains_key(k))
        .take(5)
        .collect();
    let extra: Vec<_> = destination
        .keys()
        .filter(|k| !source.contains_key(k))
        .take(5)
        .collect();
    let different: Vec<_> = source
        .iter()
        .filter_map(|(k, s)| match destination.get(k) {
            Some(d) if d != s => Some((k, s, d)),
            _ => None,
        })
        .take(3)
        .collect();
    ensure!(
        missing.is_empty() && extra.is_empty() && different.is_empty(),
        "{kind}: destination differs from source ({} vs {} rows); missing keys {missing:?}, \
         extra keys {extra:?}, different (source, destination) {different:?}",
        destination.len(),
        source.len()
    );
    Ok(())
}

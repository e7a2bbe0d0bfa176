//! The SQL text the MySQL/MariaDB destination sends, built without I/O from the target's
//! quoted name and its column names, so every statement can be checked exactly by unit tests
//! and the writer's I/O code only runs it.

use backflow_connector_core::WriteMode;

use crate::destination::ROW_COLUMN;
use crate::ident::quote;

/// The temporary table of rows to update.
pub(crate) const STAGE: &str = "`__backflow_stage`";
/// The temporary table of keys to look up or delete.
pub(crate) const KEYS: &str = "`__backflow_keys`";
/// Target size of one multi-row statement; capped by the server's `max_allowed_packet`.
const STATEMENT_BYTES: usize = 4 << 20;

/// How long one multi-row statement may grow: half the server's `max_allowed_packet` (room
/// for the escaping a literal may need), at most [`STATEMENT_BYTES`], at least 1 KiB.
pub(crate) fn max_statement_bytes(max_allowed_packet: u64) -> usize {
    STATEMENT_BYTES
        .min((max_allowed_packet / 2) as usize)
        .max(1024)
}

/// The query returning a row when `target` (quoted) holds any: only an empty table takes the
/// plain inserts of an initial load.
pub(crate) fn any_row(target: &str) -> String {
    format!("SELECT 1 FROM {target} LIMIT 1")
}

/// The statements that (re)create the staging tables for `target`: the key table always, the
/// row table for `update`. They copy the target's column types, so staged values convert
/// exactly as they would into the target and the join compares like with like (same
/// collation).
pub(crate) fn staging_tables(
    target: &str,
    columns: &[&str],
    keys: &[&str],
    mode: WriteMode,
) -> Vec<String> {
    let row = quote(ROW_COLUMN);
    let index = quoted(keys).join(", ");
    let create = |name: &str, columns: &[&str]| {
        let selected: Vec<String> = columns.iter().map(|c| format!("t.{}", quote(c))).collect();
        format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {name} (PRIMARY KEY ({row}), KEY ({index})) \
             SELECT CAST(0 AS UNSIGNED) AS {row}, {} FROM {target} AS t WHERE 1=0",
            selected.join(", ")
        )
    };
    let mut setup = vec![
        format!("DROP TEMPORARY TABLE IF EXISTS {KEYS}, {STAGE}"),
        create(KEYS, keys),
    ];
    if mode == WriteMode::Update {
        setup.push(create(STAGE, columns));
    }
    setup
}

/// The SQL a writer runs, built once at open.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `INSERT INTO target (…) VALUES `, followed by the row tuples.
    pub(crate) insert_prefix: String,
    /// Turns an insert into an upsert.
    pub(crate) upsert_suffix: String,
    /// `INSERT INTO stage (row, …) VALUES `, followed by numbered row tuples.
    pub(crate) stage_prefix: String,
    /// `INSERT INTO keys (row, …) VALUES `, followed by numbered key tuples.
    pub(crate) keys_prefix: String,
    /// The row numbers of staged rows whose key exists (locking those rows).
    pub(crate) existing_stage: String,
    /// The row numbers of staged keys that exist (locking those rows).
    pub(crate) existing_keys: String,
    /// Applies the staged rows to the existing ones; `None` when every column is a key.
    pub(crate) update: Option<String>,
    /// Deletes the rows of the staged keys.
    pub(crate) delete: String,
}

impl Statements {
    /// Builds every statement for writing `columns` (keyed by `keys`, a subset of them, in
    /// key order) into `target`, the quoted table name.
    pub(crate) fn new(target: &str, columns: &[&str], keys: &[&str]) -> Self {
        let all = quoted(columns).join(", ");
        let key_list = quoted(keys).join(", ");
        let non_keys: Vec<String> = columns
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| quote(c))
            .collect();
        let key_match = quoted(keys)
            .iter()
            .map(|k| format!("t.{k} = s.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let row = quote(ROW_COLUMN);
        let existing = |staged: &str| {
            format!(
                "SELECT s.{row} FROM {staged} AS s JOIN {target} AS t ON {key_match} FOR UPDATE"
            )
        };
        Self {
            insert_prefix: format!("INSERT INTO {target} ({all}) VALUES "),
            upsert_suffix: upsert_suffix(&non_keys, &quote(keys[0])),
            stage_prefix: format!("INSERT INTO {STAGE} ({row}, {all}) VALUES "),
            keys_prefix: format!("INSERT INTO {KEYS} ({row}, {key_list}) VALUES "),
            existing_stage: existing(STAGE),
            existing_keys: existing(KEYS),
            update: (!non_keys.is_empty()).then(|| {
                let sets: Vec<String> = non_keys.iter().map(|c| format!("t.{c} = s.{c}")).collect();
                format!(
                    "UPDATE {target} AS t JOIN {STAGE} AS s ON {key_match} SET {}",
                    sets.join(", ")
                )
            }),
            delete: format!("DELETE t FROM {target} AS t JOIN {KEYS} AS s ON {key_match}"),
        }
    }
}

/// ` ON DUPLICATE KEY UPDATE …` setting every (quoted) non-key column to the inserted value;
/// with none, a no-op assignment of the first key, so an existing row is left as it is.
fn upsert_suffix(non_keys: &[String], first_key: &str) -> String {
    if non_keys.is_empty() {
        return format!(" ON DUPLICATE KEY UPDATE {first_key} = {first_key}");
    }
    let sets: Vec<String> = non_keys
        .iter()
        .map(|c| format!("{c} = VALUES({c})"))
        .collect();
    format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
}

/// A statement that, run under `EXPLAIN`, fails unless the connection's user holds
/// `privilege`, without changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrivilegeProbe {
    pub(crate) privilege: &'static str,
    pub(crate) sql: String,
}

/// The probes for the privileges `mode` (and deletes, in mirror mode) needs on `target`
/// (quoted) when writing `columns`, in the order `check` reports them.
pub(crate) fn privilege_probes(
    target: &str,
    columns: &[&str],
    mode: WriteMode,
    deletes: bool,
) -> Vec<PrivilegeProbe> {
    let all = quoted(columns);
    let insert = PrivilegeProbe {
        privilege: "INSERT",
        sql: format!(
            "EXPLAIN INSERT INTO {target} ({0}) SELECT {0} FROM {target} WHERE 1=0",
            all.join(", ")
        ),
    };
    let assignments: Vec<String> = all.iter().map(|c| format!("{c} = {c}")).collect();
    let update = PrivilegeProbe {
        privilege: "UPDATE",
        sql: format!(
            "EXPLAIN UPDATE {target} SET {} WHERE 1=0",
            assignments.join(", ")
        ),
    };
    let mut probes = match mode {
        WriteMode::Upsert => vec![insert, update],
        WriteMode::Insert => vec![insert],
        WriteMode::Update => vec![update],
    };
    if deletes {
        probes.push(PrivilegeProbe {
            privilege: "DELETE",
            sql: format!("EXPLAIN DELETE FROM {target} WHERE 1=0"),
        });
    }
    probes
}

/// Each name backquoted, so any identifier is safe in SQL text.
fn quoted(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| quote(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "`shop`.`items`";

    #[test]
    fn inserts_and_upserts_list_every_column() {
        let s = Statements::new(TARGET, &["id", "name", "price"], &["id"]);
        assert_eq!(
            s.insert_prefix,
            "INSERT INTO `shop`.`items` (`id`, `name`, `price`) VALUES "
        );
        assert_eq!(
            s.upsert_suffix,
            " ON DUPLICATE KEY UPDATE `name` = VALUES(`name`), `price` = VALUES(`price`)"
        );
    }

    #[test]
    fn an_upsert_of_key_columns_only_leaves_the_row_as_it_is() {
        let s = Statements::new(TARGET, &["a", "b"], &["b", "a"]);
        assert_eq!(s.upsert_suffix, " ON DUPLICATE KEY UPDATE `b` = `b`");
        assert_eq!(s.update, None);
    }

    #[test]
    fn staged_rows_and_keys_are_numbered() {
        let s = Statements::new(TARGET, &["id", "name"], &["id"]);
        assert_eq!(
            s.stage_prefix,
            "INSERT INTO `__backflow_stage` (`__backflow_row`, `id`, `name`) VALUES "
        );
        assert_eq!(
            s.keys_prefix,
            "INSERT INTO `__backflow_keys` (`__backflow_row`, `id`) VALUES "
        );
    }

    #[test]
    fn existing_keys_are_found_and_locked_by_a_join_on_every_key_column() {
        let s = Statements::new(TARGET, &["k1", "v", "k2"], &["k2", "k1"]);
        assert_eq!(
            s.existing_keys,
            "SELECT s.`__backflow_row` FROM `__backflow_keys` AS s JOIN `shop`.`items` AS t \
             ON t.`k2` = s.`k2` AND t.`k1` = s.`k1` FOR UPDATE"
        );
        assert_eq!(
            s.existing_stage,
            "SELECT s.`__backflow_row` FROM `__backflow_stage` AS s JOIN `shop`.`items` AS t \
             ON t.`k2` = s.`k2` AND t.`k1` = s.`k1` FOR UPDATE"
        );
    }

    #[test]
    fn update_and_delete_join_the_staging_tables() {
        let s = Statements::new(TARGET, &["id", "name", "price"], &["id"]);
        assert_eq!(
            s.update.as_deref(),
            Some(
                "UPDATE `shop`.`items` AS t JOIN `__backflow_stage` AS s ON t.`id` = s.`id` \
                 SET t.`name` = s.`name`, t.`price` = s.`price`"
            )
        );
        assert_eq!(
            s.delete,
            "DELETE t FROM `shop`.`items` AS t JOIN `__backflow_keys` AS s ON t.`id` = s.`id`"
        );
    }

    #[test]
    fn odd_identifiers_are_quoted_everywhere() {
        let target = "`my``db`.`t.x`";
        let s = Statements::new(target, &["we`ird", "select"], &["we`ird"]);
        assert_eq!(
            s.insert_prefix,
            "INSERT INTO `my``db`.`t.x` (`we``ird`, `select`) VALUES "
        );
        assert_eq!(
            s.upsert_suffix,
            " ON DUPLICATE KEY UPDATE `select` = VALUES(`select`)"
        );
        assert_eq!(
            s.delete,
            "DELETE t FROM `my``db`.`t.x` AS t JOIN `__backflow_keys` AS s \
             ON t.`we``ird` = s.`we``ird`"
        );
    }

    #[test]
    fn staging_tables_copy_the_target_types_and_stage_rows_only_for_update() {
        let setup = staging_tables(TARGET, &["id", "name"], &["id"], WriteMode::Upsert);
        assert_eq!(
            setup,
            vec![
                "DROP TEMPORARY TABLE IF EXISTS `__backflow_keys`, `__backflow_stage`".to_string(),
                "CREATE TEMPORARY TABLE IF NOT EXISTS `__backflow_keys` \
                 (PRIMARY KEY (`__backflow_row`), KEY (`id`)) \
                 SELECT CAST(0 AS UNSIGNED) AS `__backflow_row`, t.`id` \
                 FROM `shop`.`items` AS t WHERE 1=0"
                    .to_string(),
            ]
        );
        let setup = staging_tables(TARGET, &["id", "name"], &["id"], WriteMode::Update);
        assert_eq!(setup.len(), 3);
        assert_eq!(
            setup[2],
            "CREATE TEMPORARY TABLE IF NOT EXISTS `__backflow_stage` \
             (PRIMARY KEY (`__backflow_row`), KEY (`id`)) \
             SELECT CAST(0 AS UNSIGNED) AS `__backflow_row`, t.`id`, t.`name` \
             FROM `shop`.`items` AS t WHERE 1=0"
        );
    }

    #[test]
    fn statements_stay_within_half_the_packet_limit() {
        assert_eq!(max_statement_bytes(64 << 20), 4 << 20);
        assert_eq!(max_statement_bytes(1 << 20), 512 << 10);
        assert_eq!(max_statement_bytes(100), 1024);
        assert_eq!(any_row(TARGET), "SELECT 1 FROM `shop`.`items` LIMIT 1");
    }

    #[test]
    fn each_mode_probes_its_own_privileges() {
        let probes = |mode, deletes| privilege_probes(TARGET, &["id", "na`me"], mode, deletes);
        let insert = PrivilegeProbe {
            privilege: "INSERT",
            sql: "EXPLAIN INSERT INTO `shop`.`items` (`id`, `na``me`) SELECT `id`, `na``me` \
                  FROM `shop`.`items` WHERE 1=0"
                .to_string(),
        };
        let update = PrivilegeProbe {
            privilege: "UPDATE",
            sql: "EXPLAIN UPDATE `shop`.`items` SET `id` = `id`, `na``me` = `na``me` WHERE 1=0"
                .to_string(),
        };
        let delete = PrivilegeProbe {
            privilege: "DELETE",
            sql: "EXPLAIN DELETE FROM `shop`.`items` WHERE 1=0".to_string(),
        };
        assert_eq!(
            probes(WriteMode::Upsert, false),
            vec![insert.clone(), update.clone()]
        );
        assert_eq!(probes(WriteMode::Insert, false), vec![insert]);
        assert_eq!(probes(WriteMode::Update, true), vec![update, delete]);
    }
}

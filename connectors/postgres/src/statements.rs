//! The SQL text the PostgreSQL destination sends, built without I/O from the plan and what the
//! catalog says about the table, so every statement can be checked exactly by unit tests and
//! the writer's I/O code only runs it.

use backflow_connector_core::WriteMode;

use crate::destination::{WriteColumn, ROW_COLUMN};
use crate::ident::quote;
use crate::table::Table;

/// The staging table of rows to write.
pub(crate) const STAGE: &str = "pg_temp.\"__backflow_stage\"";
/// The staging table of keys to delete.
pub(crate) const KEYS: &str = "pg_temp.\"__backflow_keys\"";

/// Type OIDs without an equality operator (`json`, `json[]`, `xml`, `xml[]`): change
/// detection compares their text instead.
const WITHOUT_EQUALITY: [u32; 4] = [114, 199, 142, 143];

/// `CREATE TEMP TABLE` for a staging table: the batch row number, then `columns` in their
/// native types. Rows go at every commit, so each transaction starts from an empty stage.
pub(crate) fn create_staging_table(name: &str, columns: &[WriteColumn]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), c.native.sql))
        .collect();
    format!(
        "CREATE TEMP TABLE {name} ({} int4, {}) ON COMMIT DELETE ROWS",
        quote(ROW_COLUMN),
        columns.join(", ")
    )
}

/// The query answering whether `target` (quoted) holds no row: only then may an initial load
/// COPY straight into it.
pub(crate) fn table_is_empty(target: &str) -> String {
    format!("SELECT NOT EXISTS (SELECT 1 FROM {target})")
}

/// A statement that fails unless a value of the `native` type can be cast to `column_type`,
/// which is what every staged value goes through on its way into the table.
pub(crate) fn cast_probe(native: &str, column_type: &str) -> String {
    format!("SELECT NULL::{native}::{column_type}")
}

/// One privilege a write mode needs, on the whole table or on every one of `columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Privilege<'a> {
    pub(crate) name: &'static str,
    pub(crate) columns: Vec<&'a str>,
}

/// The privileges `mode` (and deletes, in mirror mode) needs, in the order `check` reports
/// them: `columns` are all written columns, `keys` the key columns.
pub(crate) fn required_privileges<'a>(
    mode: WriteMode,
    deletes: bool,
    columns: &[&'a str],
    keys: &[&'a str],
) -> Vec<Privilege<'a>> {
    let on = |name, columns: &[&'a str]| Privilege {
        name,
        columns: columns.to_vec(),
    };
    let mut needed = match mode {
        WriteMode::Upsert => vec![
            on("INSERT", columns),
            on("UPDATE", columns),
            on("SELECT", columns),
        ],
        WriteMode::Insert => vec![on("INSERT", columns), on("SELECT", keys)],
        WriteMode::Update => vec![on("UPDATE", columns), on("SELECT", columns)],
    };
    if deletes {
        needed.push(on("DELETE", &[]));
    }
    needed
}

/// The SQL a writer runs, built once at open.
#[derive(Debug)]
pub(crate) struct Statements {
    /// COPY of numbered rows into the staging table.
    pub(crate) copy_stage: String,
    /// COPY of numbered keys into the key staging table.
    pub(crate) copy_keys: String,
    /// COPY straight into the target (initial load into an empty table).
    pub(crate) copy_direct: String,
    /// Applies the staged rows in the write mode.
    pub(crate) apply: String,
    /// Whether `apply` returns the row numbers the mode skipped.
    pub(crate) apply_returns_skipped: bool,
    /// Deletes the staged keys and returns the row numbers of keys that were not there.
    pub(crate) delete: String,
}

impl Statements {
    /// Builds every statement for writing `columns` (keyed by `keys`, a subset of them) into
    /// `table` in `mode`. Staged values are cast to each column's base type so the column's
    /// typmod is enforced by assignment, an error, rather than by a silently truncating cast.
    pub(crate) fn new(
        table: &Table,
        columns: &[WriteColumn],
        keys: &[WriteColumn],
        mode: WriteMode,
    ) -> Self {
        let sql = Sql::new(table, columns, keys);
        let (apply, apply_returns_skipped) = match mode {
            WriteMode::Upsert => (sql.upsert(), false),
            WriteMode::Insert => (sql.insert(), true),
            WriteMode::Update => (sql.update(), true),
        };
        Self {
            copy_stage: format!(
                "COPY {STAGE} ({}, {}) FROM STDIN (FORMAT binary)",
                sql.row,
                names(columns)
            ),
            copy_keys: format!(
                "COPY {KEYS} ({}, {}) FROM STDIN (FORMAT binary)",
                sql.row,
                names(keys)
            ),
            copy_direct: format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                sql.target,
                names(columns)
            ),
            apply,
            apply_returns_skipped,
            delete: sql.delete(),
        }
    }
}

/// Joins `f` of each column with `separator`.
fn join<'c>(
    columns: impl IntoIterator<Item = &'c WriteColumn>,
    separator: &str,
    f: impl Fn(&WriteColumn) -> String,
) -> String {
    columns
        .into_iter()
        .map(f)
        .collect::<Vec<_>>()
        .join(separator)
}

/// `"a", "b"`.
fn names<'c>(columns: impl IntoIterator<Item = &'c WriteColumn>) -> String {
    join(columns, ", ", |c| quote(&c.name))
}

/// What the apply statements are assembled from.
struct Sql<'a> {
    table: &'a Table,
    /// The target, schema-qualified and quoted.
    target: String,
    columns: &'a [WriteColumn],
    keys: &'a [WriteColumn],
    non_keys: Vec<&'a WriteColumn>,
    /// The quoted row-number column.
    row: String,
}

impl<'a> Sql<'a> {
    fn new(table: &'a Table, columns: &'a [WriteColumn], keys: &'a [WriteColumn]) -> Self {
        let non_keys = columns
            .iter()
            .filter(|c| !keys.iter().any(|k| k.name == c.name))
            .collect();
        Self {
            table,
            target: table.quoted(),
            columns,
            keys,
            non_keys,
            row: quote(ROW_COLUMN),
        }
    }

    /// The type staged values of `c` are cast to: the column's base type.
    fn cast(&self, c: &WriteColumn) -> String {
        self.table
            .column(&c.name)
            .map(|t| t.base.clone())
            .unwrap_or_else(|| c.native.sql.clone())
    }

    /// `s."c"::type`, a staged value as the column takes it.
    fn staged(&self, c: &WriteColumn) -> String {
        format!("s.{}::{}", quote(&c.name), self.cast(c))
    }

    /// `expr` in a form `IS DISTINCT FROM` can compare.
    fn comparable(&self, expr: String, c: &WriteColumn) -> String {
        match self.table.column(&c.name).map(|t| t.type_oid) {
            Some(oid) if WITHOUT_EQUALITY.contains(&oid) => format!("{expr}::text"),
            _ => expr,
        }
    }

    /// `t."k" = s."k"::type AND …` over the key columns.
    fn key_match(&self, t: &str, s: &str) -> String {
        join(self.keys, " AND ", |c| {
            let name = quote(&c.name);
            format!("{t}.{name} = {s}.{name}::{}", self.cast(c))
        })
    }

    /// `(old…) IS DISTINCT FROM (new…)` over the non-key columns, so unchanged rows are not
    /// rewritten.
    fn changed(
        &self,
        old: impl Fn(&WriteColumn) -> String,
        new: impl Fn(&WriteColumn) -> String,
    ) -> String {
        let values = |value: &dyn Fn(&WriteColumn) -> String| {
            join(self.non_keys.iter().copied(), ", ", |c| {
                self.comparable(value(c), c)
            })
        };
        format!("({}) IS DISTINCT FROM ({})", values(&old), values(&new))
    }

    /// `INSERT … SELECT` of the staged rows into the target, up to the conflict clause.
    fn insert_staged(&self) -> String {
        format!(
            "INSERT INTO {} AS t ({}) SELECT {} FROM {STAGE} AS s ON CONFLICT ({})",
            self.target,
            names(self.columns),
            join(self.columns, ", ", |c| self.staged(c)),
            names(self.keys),
        )
    }

    /// Upsert: insert, or update a row whose non-key values differ. Returns nothing.
    fn upsert(&self) -> String {
        let action = if self.non_keys.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!(
                "DO UPDATE SET {} WHERE {}",
                join(self.non_keys.iter().copied(), ", ", |c| {
                    format!("{0} = EXCLUDED.{0}", quote(&c.name))
                }),
                self.changed(
                    |c| format!("t.{}", quote(&c.name)),
                    |c| format!("EXCLUDED.{}", quote(&c.name)),
                ),
            )
        };
        format!("{} {action}", self.insert_staged())
    }

    /// Insert: new keys only. Returns the row numbers of keys that already existed.
    fn insert(&self) -> String {
        format!(
            "WITH ins AS ({} DO NOTHING RETURNING {}) SELECT s.{row} FROM {STAGE} AS s \
             WHERE NOT EXISTS (SELECT 1 FROM ins WHERE {})",
            self.insert_staged(),
            join(self.keys, ", ", |c| format!("t.{}", quote(&c.name))),
            self.key_match("ins", "s"),
            row = self.row,
        )
    }

    /// Update: existing keys only. Returns the row numbers of keys that do not exist.
    fn update(&self) -> String {
        let missing = format!(
            "SELECT s.{} FROM {STAGE} AS s WHERE NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})",
            self.row,
            self.target,
            self.key_match("t", "s")
        );
        if self.non_keys.is_empty() {
            return missing;
        }
        format!(
            "WITH upd AS (UPDATE {} AS t SET {} FROM {STAGE} AS s WHERE {} AND {} RETURNING 1) \
             {missing}",
            self.target,
            join(self.non_keys.iter().copied(), ", ", |c| {
                format!("{} = {}", quote(&c.name), self.staged(c))
            }),
            self.key_match("t", "s"),
            self.changed(|c| format!("t.{}", quote(&c.name)), |c| self.staged(c)),
        )
    }

    /// Delete of the staged keys. Returns the row numbers of keys that were not there.
    fn delete(&self) -> String {
        format!(
            "WITH del AS (DELETE FROM {} AS t USING {KEYS} AS s WHERE {} RETURNING s.{row}) \
             SELECT s.{row} FROM {KEYS} AS s WHERE s.{row} NOT IN (SELECT {row} FROM del)",
            self.target,
            self.key_match("t", "s"),
            row = self.row,
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use backflow_connector_core::CanonicalType;

    use super::*;
    use crate::table::TableColumn;
    use crate::types::native_type;

    pub(crate) fn write_column(name: &str, canonical: CanonicalType) -> WriteColumn {
        WriteColumn {
            name: name.to_string(),
            native: native_type(name, &canonical).unwrap(),
            canonical,
        }
    }

    /// A table column of type `oid`, spelled `base` by `format_type(oid, NULL)`.
    pub(crate) fn table_column(name: &str, oid: u32, base: &str) -> TableColumn {
        TableColumn {
            name: name.to_string(),
            type_oid: oid,
            typmod: -1,
            formatted: base.to_string(),
            base: base.to_string(),
            not_null: false,
            has_default: false,
            generated: false,
            identity: false,
        }
    }

    pub(crate) fn table(schema: &str, name: &str, columns: Vec<TableColumn>) -> Table {
        Table {
            oid: 1,
            schema: schema.to_string(),
            name: name.to_string(),
            columns,
            unique_keys: Vec::new(),
        }
    }

    /// `public.items (id bigint, name text)` keyed by `id`.
    fn items() -> (Table, Vec<WriteColumn>, Vec<WriteColumn>) {
        let table = table(
            "public",
            "items",
            vec![
                table_column("id", 20, "bigint"),
                table_column("name", 25, "text"),
            ],
        );
        let columns = vec![
            write_column("id", CanonicalType::Int64),
            write_column("name", CanonicalType::Text),
        ];
        let keys = vec![columns[0].clone()];
        (table, columns, keys)
    }

    #[test]
    fn upsert_updates_only_rows_whose_values_changed() {
        let (table, columns, keys) = items();
        let s = Statements::new(&table, &columns, &keys, WriteMode::Upsert);
        assert_eq!(
            s.apply,
            "INSERT INTO \"public\".\"items\" AS t (\"id\", \"name\") \
             SELECT s.\"id\"::bigint, s.\"name\"::text FROM pg_temp.\"__backflow_stage\" AS s \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\" \
             WHERE (t.\"name\") IS DISTINCT FROM (EXCLUDED.\"name\")"
        );
        assert!(!s.apply_returns_skipped);
    }

    #[test]
    fn upsert_of_key_columns_only_does_nothing_on_conflict() {
        let (table, _, keys) = items();
        let s = Statements::new(&table, &keys, &keys, WriteMode::Upsert);
        assert_eq!(
            s.apply,
            "INSERT INTO \"public\".\"items\" AS t (\"id\") SELECT s.\"id\"::bigint \
             FROM pg_temp.\"__backflow_stage\" AS s ON CONFLICT (\"id\") DO NOTHING"
        );
    }

    #[test]
    fn insert_returns_the_rows_whose_key_existed() {
        let (table, columns, keys) = items();
        let s = Statements::new(&table, &columns, &keys, WriteMode::Insert);
        assert_eq!(
            s.apply,
            "WITH ins AS (INSERT INTO \"public\".\"items\" AS t (\"id\", \"name\") \
             SELECT s.\"id\"::bigint, s.\"name\"::text FROM pg_temp.\"__backflow_stage\" AS s \
             ON CONFLICT (\"id\") DO NOTHING RETURNING t.\"id\") \
             SELECT s.\"__backflow_row\" FROM pg_temp.\"__backflow_stage\" AS s \
             WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.\"id\" = s.\"id\"::bigint)"
        );
        assert!(s.apply_returns_skipped);
    }

    #[test]
    fn update_changes_existing_rows_and_returns_missing_keys() {
        let (table, columns, keys) = items();
        let s = Statements::new(&table, &columns, &keys, WriteMode::Update);
        assert_eq!(
            s.apply,
            "WITH upd AS (UPDATE \"public\".\"items\" AS t SET \"name\" = s.\"name\"::text \
             FROM pg_temp.\"__backflow_stage\" AS s WHERE t.\"id\" = s.\"id\"::bigint \
             AND (t.\"name\") IS DISTINCT FROM (s.\"name\"::text) RETURNING 1) \
             SELECT s.\"__backflow_row\" FROM pg_temp.\"__backflow_stage\" AS s \
             WHERE NOT EXISTS (SELECT 1 FROM \"public\".\"items\" AS t \
             WHERE t.\"id\" = s.\"id\"::bigint)"
        );
        assert!(s.apply_returns_skipped);
    }

    #[test]
    fn update_of_key_columns_only_just_reports_missing_keys() {
        let (table, _, keys) = items();
        let s = Statements::new(&table, &keys, &keys, WriteMode::Update);
        assert_eq!(
            s.apply,
            "SELECT s.\"__backflow_row\" FROM pg_temp.\"__backflow_stage\" AS s \
             WHERE NOT EXISTS (SELECT 1 FROM \"public\".\"items\" AS t \
             WHERE t.\"id\" = s.\"id\"::bigint)"
        );
        assert!(s.apply_returns_skipped);
    }

    #[test]
    fn delete_returns_the_keys_that_were_not_there() {
        let (table, columns, keys) = items();
        let s = Statements::new(&table, &columns, &keys, WriteMode::Upsert);
        assert_eq!(
            s.delete,
            "WITH del AS (DELETE FROM \"public\".\"items\" AS t \
             USING pg_temp.\"__backflow_keys\" AS s WHERE t.\"id\" = s.\"id\"::bigint \
             RETURNING s.\"__backflow_row\") \
             SELECT s.\"__backflow_row\" FROM pg_temp.\"__backflow_keys\" AS s \
             WHERE s.\"__backflow_row\" NOT IN (SELECT \"__backflow_row\" FROM del)"
        );
    }

    #[test]
    fn copies_number_staged_rows_but_not_direct_ones() {
        let (table, columns, keys) = items();
        let s = Statements::new(&table, &columns, &keys, WriteMode::Insert);
        assert_eq!(
            s.copy_stage,
            "COPY pg_temp.\"__backflow_stage\" (\"__backflow_row\", \"id\", \"name\") \
             FROM STDIN (FORMAT binary)"
        );
        assert_eq!(
            s.copy_keys,
            "COPY pg_temp.\"__backflow_keys\" (\"__backflow_row\", \"id\") \
             FROM STDIN (FORMAT binary)"
        );
        assert_eq!(
            s.copy_direct,
            "COPY \"public\".\"items\" (\"id\", \"name\") FROM STDIN (FORMAT binary)"
        );
    }

    #[test]
    fn odd_identifiers_are_quoted_everywhere() {
        let table = table(
            "My \"Schema\"",
            "t.x",
            vec![
                table_column("a\"b", 20, "bigint"),
                table_column("order", 25, "text"),
            ],
        );
        let columns = vec![
            write_column("a\"b", CanonicalType::Int64),
            write_column("order", CanonicalType::Text),
        ];
        let keys = vec![columns[0].clone()];
        let s = Statements::new(&table, &columns, &keys, WriteMode::Upsert);
        assert_eq!(
            s.apply,
            "INSERT INTO \"My \"\"Schema\"\"\".\"t.x\" AS t (\"a\"\"b\", \"order\") \
             SELECT s.\"a\"\"b\"::bigint, s.\"order\"::text \
             FROM pg_temp.\"__backflow_stage\" AS s ON CONFLICT (\"a\"\"b\") \
             DO UPDATE SET \"order\" = EXCLUDED.\"order\" \
             WHERE (t.\"order\") IS DISTINCT FROM (EXCLUDED.\"order\")"
        );
        assert_eq!(
            s.copy_direct,
            "COPY \"My \"\"Schema\"\"\".\"t.x\" (\"a\"\"b\", \"order\") \
             FROM STDIN (FORMAT binary)"
        );
    }

    #[test]
    fn values_are_cast_to_the_base_type_and_json_compared_as_text() {
        // A varchar(10) column: the cast is to the base type so the length is enforced by
        // assignment; json has no equality operator.
        let table = table(
            "public",
            "docs",
            vec![
                table_column("id", 20, "bigint"),
                table_column("title", 1043, "character varying"),
                table_column("body", 114, "json"),
            ],
        );
        let columns = vec![
            write_column("id", CanonicalType::Int64),
            write_column("title", CanonicalType::Text),
            write_column("body", CanonicalType::Json),
        ];
        let keys = vec![columns[0].clone()];
        let s = Statements::new(&table, &columns, &keys, WriteMode::Update);
        assert!(
            s.apply.contains(
                "SET \"title\" = s.\"title\"::character varying, \"body\" = s.\"body\"::json "
            ),
            "{}",
            s.apply
        );
        assert!(
            s.apply.contains(
                "AND (t.\"title\", t.\"body\"::text) IS DISTINCT FROM \
                 (s.\"title\"::character varying, s.\"body\"::json::text) RETURNING 1"
            ),
            "{}",
            s.apply
        );
    }

    #[test]
    fn composite_keys_match_every_key_column_in_key_order() {
        let table = table(
            "public",
            "pairs",
            vec![
                table_column("a", 23, "integer"),
                table_column("b", 25, "text"),
                table_column("v", 701, "double precision"),
            ],
        );
        let columns = vec![
            write_column("a", CanonicalType::Int32),
            write_column("b", CanonicalType::Text),
            write_column("v", CanonicalType::Float64),
        ];
        let keys = vec![columns[1].clone(), columns[0].clone()];
        let s = Statements::new(&table, &columns, &keys, WriteMode::Insert);
        assert!(
            s.apply
                .contains("ON CONFLICT (\"b\", \"a\") DO NOTHING RETURNING t.\"b\", t.\"a\")"),
            "{}",
            s.apply
        );
        assert!(
            s.apply.ends_with(
                "WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.\"b\" = s.\"b\"::text \
                 AND ins.\"a\" = s.\"a\"::integer)"
            ),
            "{}",
            s.apply
        );
    }

    #[test]
    fn staging_tables_hold_the_row_number_and_native_types() {
        let columns = vec![
            write_column("id", CanonicalType::Int64),
            write_column(
                "price",
                CanonicalType::Decimal {
                    precision: 12,
                    scale: 2,
                },
            ),
            write_column("we\"ird", CanonicalType::Json),
        ];
        assert_eq!(
            create_staging_table(STAGE, &columns),
            "CREATE TEMP TABLE pg_temp.\"__backflow_stage\" (\"__backflow_row\" int4, \
             \"id\" int8, \"price\" numeric(12,2), \"we\"\"ird\" jsonb) ON COMMIT DELETE ROWS"
        );
    }

    #[test]
    fn probes_are_plain_queries() {
        assert_eq!(
            table_is_empty("\"public\".\"items\""),
            "SELECT NOT EXISTS (SELECT 1 FROM \"public\".\"items\")"
        );
        assert_eq!(
            cast_probe("numeric(12,2)", "integer"),
            "SELECT NULL::numeric(12,2)::integer"
        );
    }

    #[test]
    fn each_mode_needs_its_own_privileges() {
        let all = ["id", "name"];
        let keys = ["id"];
        let needed = |mode, deletes| -> Vec<(&'static str, Vec<&'static str>)> {
            required_privileges(mode, deletes, &all, &keys)
                .into_iter()
                .map(|p| (p.name, p.columns))
                .collect()
        };
        assert_eq!(
            needed(WriteMode::Upsert, false),
            vec![
                ("INSERT", vec!["id", "name"]),
                ("UPDATE", vec!["id", "name"]),
                ("SELECT", vec!["id", "name"]),
            ]
        );
        assert_eq!(
            needed(WriteMode::Insert, false),
            vec![("INSERT", vec!["id", "name"]), ("SELECT", vec!["id"])]
        );
        assert_eq!(
            needed(WriteMode::Update, true),
            vec![
                ("UPDATE", vec!["id", "name"]),
                ("SELECT", vec!["id", "name"]),
                ("DELETE", vec![]),
            ]
        );
    }
}

//! The contract cases. Each public function is one test of
//! [`destination_contract_suite!`](crate::destination_contract_suite); it panics with a message
//! naming the destination and what broke.
//!
//! Writers are driven the way the engine drives them: `check`, then `open`, then `write`
//! batches of added and changed rows, then (mirror mode) `delete` batches of primary keys, then
//! `close`. A run whose writer is dropped or whose batch fails is re-run from the same
//! starting point, as a retried run would be.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use backflow_connector_core::types::{json_field, uuid_field};
use backflow_connector_core::{
    ConnectorError, DestinationWriter, ErrorKind, WriteMode, WriteOutcome, WriteTarget,
};
use serde_json::{json, Value};

use crate::values::{batch, normalize_rows};
use crate::{CredentialCase, Harness, Row};

/// Any single destination call taking longer than this is a hang, reported as such.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP_TIMEOUT:?}"))
}

fn row(v: Value) -> Row {
    match v {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("a suite row must be a JSON object, got {other}"),
    }
}

fn rows(values: impl IntoIterator<Item = Value>) -> Vec<Row> {
    values.into_iter().map(row).collect()
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

fn key(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, false)
}

fn col(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, true)
}

/// `id`, `name`, `score`, `note`: the object as first created.
fn people_wide() -> SchemaRef {
    schema(vec![
        key("id", DataType::Int64),
        col("name", DataType::Utf8),
        col("score", DataType::Int32),
        col("note", DataType::Utf8),
    ])
}

/// `id`, `name`, `score`: a sync that does not own `note`.
fn people() -> SchemaRef {
    schema(vec![
        key("id", DataType::Int64),
        col("name", DataType::Utf8),
        col("score", DataType::Int32),
    ])
}

fn person(id: i64, name: Option<&str>, score: Option<i32>) -> Row {
    row(json!({"id": id, "name": name, "score": score}))
}

fn ids(ids: impl IntoIterator<Item = i64>) -> Vec<Row> {
    ids.into_iter().map(|id| row(json!({ "id": id }))).collect()
}

/// One object under test and the calls every case makes on it.
struct Case<'h, H: Harness> {
    h: &'h H,
    object: String,
}

impl<'h, H: Harness> Case<'h, H> {
    fn new(h: &'h H, prefix: &str) -> Self {
        let object = h.unique_object(prefix);
        Self { h, object }
    }

    fn target(&self, schema: &SchemaRef, pk: &[&str], mode: WriteMode) -> WriteTarget {
        WriteTarget {
            object: self.object.clone(),
            schema: schema.clone(),
            primary_key: pk.iter().map(|k| k.to_string()).collect(),
            mode,
            create_table: true,
            deletes: false,
            initial_load: false,
        }
    }

    fn what(&self, step: &str) -> String {
        format!("[{}] {step} on `{}`", self.h.name(), self.object)
    }

    async fn check(&self, t: &WriteTarget) -> Result<(), ConnectorError> {
        within(&self.what("check"), self.h.destination().check(t)).await
    }

    async fn try_open(
        &self,
        t: &WriteTarget,
    ) -> Result<Box<dyn DestinationWriter>, ConnectorError> {
        within(&self.what("open"), self.h.destination().open(t)).await
    }

    /// `check` then `open`, as the engine does; both must succeed.
    async fn open(&self, t: &WriteTarget) -> Writer {
        if let Err(e) = self.check(t).await {
            panic!("{}: {e}", self.what("check"));
        }
        let w = self
            .try_open(t)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.what("open")));
        Writer {
            w,
            schema: t.schema.clone(),
            keys: schema(
                t.primary_key
                    .iter()
                    .map(|k| {
                        t.schema
                            .field_with_name(k)
                            .expect("suite keys are in the schema")
                            .clone()
                    })
                    .collect(),
            ),
            label: self.what("writer"),
        }
    }

    /// Opens `t`, writes `data` in one batch (expecting every row applied) and closes.
    async fn load(&self, t: &WriteTarget, data: &[Row]) {
        let mut w = self.open(t).await;
        let out = w.write(data).await;
        assert_outcome(&self.what("load"), &out, &[], &[]);
        w.close().await;
    }

    /// Writes people 1..=4 with notes through the wide schema: the starting point of the
    /// mode cases.
    async fn seed_people(&self) {
        let mut t = self.target(&people_wide(), &["id"], WriteMode::Upsert);
        t.initial_load = true;
        self.load(&t, &seeded_people()).await;
    }

    /// Reads the object and compares it with `expected` on `schema`'s columns. Rows whose
    /// `id` is negative (harness-owned) are ignored when `ignore_negative_ids`.
    async fn expect_filtered(
        &self,
        schema: &SchemaRef,
        pk: &[&str],
        expected: &[Row],
        ignore_negative_ids: bool,
    ) {
        let pk: Vec<String> = pk.iter().map(|k| k.to_string()).collect();
        let precision = self.h.connector().capabilities().timestamp_precision;
        let mut actual = within(&self.what("read"), self.h.read(&self.object, schema, &pk))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.what("harness read")));
        if ignore_negative_ids {
            actual.retain(|r| r.get("id").and_then(Value::as_i64).is_none_or(|id| id >= 0));
        }
        let actual = normalize_rows(schema, &pk, &actual, precision)
            .unwrap_or_else(|e| panic!("{}: read back: {e}", self.what("compare")));
        let expected = normalize_rows(schema, &pk, expected, precision)
            .unwrap_or_else(|e| panic!("suite data: {e}"));
        if actual != expected {
            let mut diff = String::new();
            for (k, want) in &expected {
                match actual.get(k) {
                    None => diff.push_str(&format!("\n  missing {k}: expected {want:?}")),
                    Some(got) if got != want => diff.push_str(&format!(
                        "\n  differs {k}:\n    expected {want:?}\n    got      {got:?}"
                    )),
                    Some(_) => {}
                }
            }
            for (k, got) in &actual {
                if !expected.contains_key(k) {
                    diff.push_str(&format!("\n  unexpected {k}: {got:?}"));
                }
            }
            panic!("{}: contents differ:{diff}", self.what("compare"));
        }
    }

    async fn expect(&self, schema: &SchemaRef, pk: &[&str], expected: &[Row]) {
        self.expect_filtered(schema, pk, expected, false).await;
    }

    async fn finish(self) {
        if let Err(e) = self.h.drop_object(&self.object).await {
            panic!("{}: {e}", self.what("harness drop"));
        }
    }
}

/// An open writer plus the schemas its batches are built with.
struct Writer {
    w: Box<dyn DestinationWriter>,
    schema: SchemaRef,
    keys: SchemaRef,
    label: String,
}

impl Writer {
    async fn try_write(&mut self, data: &[Row]) -> Result<WriteOutcome, ConnectorError> {
        let b = batch(&self.schema, data);
        within(&format!("{} write", self.label), self.w.write(&b)).await
    }

    async fn write(&mut self, data: &[Row]) -> WriteOutcome {
        let label = self.label.clone();
        self.try_write(data)
            .await
            .unwrap_or_else(|e| panic!("{label} write: {e}"))
    }

    async fn delete(&mut self, keys: &[Row]) -> WriteOutcome {
        let b = batch(&self.keys, keys);
        within(&format!("{} delete", self.label), self.w.delete(&b))
            .await
            .unwrap_or_else(|e| panic!("{} delete: {e}", self.label))
    }

    async fn close(self) {
        within(&format!("{} close", self.label), self.w.close())
            .await
            .unwrap_or_else(|e| panic!("{} close: {e}", self.label));
    }
}

fn assert_outcome(what: &str, out: &WriteOutcome, failed: &[usize], skipped: &[usize]) {
    let mut got_failed: Vec<usize> = out.failed.iter().map(|f| f.row).collect();
    got_failed.sort_unstable();
    let mut got_skipped = out.skipped.clone();
    got_skipped.sort_unstable();
    assert_eq!(
        got_failed, failed,
        "{what}: failed rows differ: {:#?}",
        out.failed
    );
    assert_eq!(got_skipped, skipped, "{what}: skipped rows differ");
}

/// A delete outcome: no failures; `missing` (rows of keys that do not exist) reported as
/// skipped, or allowed to be either when the destination cannot tell.
fn assert_delete_outcome<H: Harness>(h: &H, what: &str, out: &WriteOutcome, missing: &[usize]) {
    if h.delete_reports_missing_keys() {
        assert_outcome(what, out, &[], missing);
    } else {
        assert_outcome(what, out, &[], &[]);
        assert!(
            out.skipped.iter().all(|r| missing.contains(r)),
            "{what}: skipped rows {:?} are not all missing keys {missing:?}",
            out.skipped
        );
    }
}

/// Whether `e` names `name` as its column or field, or in its message.
fn names(e: &ConnectorError, name: &str) -> bool {
    e.column() == Some(name) || e.field() == Some(name) || e.message().contains(name)
}

fn seeded_people() -> Vec<Row> {
    rows([
        json!({"id": 1, "name": "ann", "score": 10, "note": "n1"}),
        json!({"id": 2, "name": "bob", "score": 20, "note": "n2"}),
        json!({"id": 3, "name": "cy", "score": 30, "note": "n3"}),
        json!({"id": 4, "name": "dee", "score": 40, "note": "n4"}),
    ])
}

/// Upsert: a new key is inserted, a changed row updated (including to NULL), an unchanged
/// row re-sent stays as it is and counts as applied, a key no longer in the source (4) stays,
/// and the column the sync does not write (`note`) keeps its values. A key changed twice in
/// one run ends with its last values.
pub async fn upsert_inserts_new_updates_changed_and_keeps_the_rest<H: Harness>(h: &H) {
    let c = Case::new(h, "upsert");
    c.seed_people().await;
    let mut w = c
        .open(&c.target(&people(), &["id"], WriteMode::Upsert))
        .await;
    let out = w
        .write(&[
            person(1, Some("ann"), Some(10)),
            person(2, Some("BOB"), Some(20)),
            person(3, Some("cy"), None),
            person(5, Some("eve"), Some(50)),
        ])
        .await;
    assert_outcome(&c.what("upsert"), &out, &[], &[]);
    let out = w
        .write(&[
            person(5, Some("eve"), Some(55)),
            person(1, Some("ann"), Some(10)),
        ])
        .await;
    assert_outcome(&c.what("second upsert"), &out, &[], &[]);
    w.close().await;
    c.expect(
        &people_wide(),
        &["id"],
        &rows([
            json!({"id": 1, "name": "ann", "score": 10, "note": "n1"}),
            json!({"id": 2, "name": "BOB", "score": 20, "note": "n2"}),
            json!({"id": 3, "name": "cy", "score": null, "note": "n3"}),
            json!({"id": 4, "name": "dee", "score": 40, "note": "n4"}),
            json!({"id": 5, "name": "eve", "score": 55, "note": null}),
        ]),
    )
    .await;
    c.finish().await;
}

/// Insert: new keys are created; every existing key, changed or not, is reported skipped and
/// left exactly as it was.
pub async fn insert_creates_new_keys_only_and_skips_existing_ones<H: Harness>(h: &H) {
    let c = Case::new(h, "insert");
    c.seed_people().await;
    let mut w = c
        .open(&c.target(&people(), &["id"], WriteMode::Insert))
        .await;
    let out = w
        .write(&[
            person(1, Some("ann"), Some(10)),
            person(2, Some("BOB"), Some(99)),
            person(5, Some("eve"), Some(50)),
            person(6, None, None),
        ])
        .await;
    assert_outcome(&c.what("insert"), &out, &[], &[0, 1]);
    w.close().await;
    let mut expected = seeded_people();
    expected.extend(rows([
        json!({"id": 5, "name": "eve", "score": 50, "note": null}),
        json!({"id": 6, "name": null, "score": null, "note": null}),
    ]));
    c.expect(&people_wide(), &["id"], &expected).await;
    c.finish().await;
}

/// Update: existing keys are updated (an unchanged one counts as applied, not skipped); a
/// missing key is reported skipped and never created; unwritten columns keep their values.
pub async fn update_changes_existing_keys_only_and_skips_missing_ones<H: Harness>(h: &H) {
    let c = Case::new(h, "update");
    c.seed_people().await;
    let mut w = c
        .open(&c.target(&people(), &["id"], WriteMode::Update))
        .await;
    let out = w
        .write(&[
            person(5, Some("eve"), Some(50)),
            person(1, Some("ann"), Some(10)),
            person(2, Some("BOB"), Some(20)),
            person(3, Some("cy"), None),
        ])
        .await;
    assert_outcome(&c.what("update"), &out, &[], &[0]);
    w.close().await;
    c.expect(
        &people_wide(),
        &["id"],
        &rows([
            json!({"id": 1, "name": "ann", "score": 10, "note": "n1"}),
            json!({"id": 2, "name": "BOB", "score": 20, "note": "n2"}),
            json!({"id": 3, "name": "cy", "score": null, "note": "n3"}),
            json!({"id": 4, "name": "dee", "score": 40, "note": "n4"}),
        ]),
    )
    .await;
    c.finish().await;
}

/// Mirror (upsert plus deletes): changed and new rows are written, removed keys deleted, a
/// key that is already gone is not a failure, and writes after deletes on the same writer
/// still land.
pub async fn mirror_upserts_and_deletes_removed_keys<H: Harness>(h: &H) {
    let c = Case::new(h, "mirror");
    c.seed_people().await;
    let mut t = c.target(&people(), &["id"], WriteMode::Upsert);
    t.deletes = true;
    let mut w = c.open(&t).await;
    let out = w
        .write(&[
            person(1, Some("ann"), Some(10)),
            person(2, Some("BOB"), Some(21)),
            person(6, Some("fay"), Some(60)),
        ])
        .await;
    assert_outcome(&c.what("mirror write"), &out, &[], &[]);
    let out = w.delete(&ids([3, 99, 4])).await;
    assert_delete_outcome(h, &c.what("mirror delete"), &out, &[1]);
    let out = w.write(&[person(7, Some("gus"), Some(70))]).await;
    assert_outcome(&c.what("write after delete"), &out, &[], &[]);
    w.close().await;
    c.expect(
        &people_wide(),
        &["id"],
        &rows([
            json!({"id": 1, "name": "ann", "score": 10, "note": "n1"}),
            json!({"id": 2, "name": "BOB", "score": 21, "note": "n2"}),
            json!({"id": 6, "name": "fay", "score": 60, "note": null}),
            json!({"id": 7, "name": "gus", "score": 70, "note": null}),
        ]),
    )
    .await;
    c.finish().await;
}

/// A two-column key (text and integer, the text holding a space, a slash and non-ASCII):
/// rows are told apart by the whole key, upserted and deleted by it.
pub async fn composite_keys_upsert_and_delete<H: Harness>(h: &H) {
    let c = Case::new(h, "composite");
    let s = schema(vec![
        key("tenant", DataType::Utf8),
        key("n", DataType::Int64),
        col("value", DataType::Utf8),
    ]);
    let pk = ["tenant", "n"];
    let mut t = c.target(&s, &pk, WriteMode::Upsert);
    t.deletes = true;
    t.initial_load = true;
    let r =
        |tenant: &str, n: i64, value: &str| row(json!({"tenant": tenant, "n": n, "value": value}));
    let k = |tenant: &str, n: i64| row(json!({"tenant": tenant, "n": n}));
    let mut w = c.open(&t).await;
    let out = w
        .write(&[r("a", 1, "x"), r("a", 2, "y"), r("b/ü x", 1, "z")])
        .await;
    assert_outcome(&c.what("first write"), &out, &[], &[]);
    w.close().await;
    t.initial_load = false;
    let mut w = c.open(&t).await;
    let out = w.write(&[r("a", 2, "Y"), r("b/ü x", 2, "w")]).await;
    assert_outcome(&c.what("second write"), &out, &[], &[]);
    let out = w.delete(&[k("b/ü x", 1), k("a", 9)]).await;
    assert_delete_outcome(h, &c.what("delete"), &out, &[1]);
    w.close().await;
    c.expect(
        &s,
        &pk,
        &[r("a", 1, "x"), r("a", 2, "Y"), r("b/ü x", 2, "w")],
    )
    .await;
    c.finish().await;
}

/// Batches larger than any destination's per-request limit (Firestore's 500 writes,
/// CockroachDB's transaction size) are written and deleted completely.
pub async fn large_batches_land_completely<H: Harness>(h: &H) {
    let c = Case::new(h, "large");
    let s = people();
    let p = |id: i64, score: i32| person(id, Some(&format!("row-{id}")), Some(score));
    let mut t = c.target(&s, &["id"], WriteMode::Upsert);
    t.initial_load = true;
    t.deletes = true;
    c.load(&t, &(1..=2000).map(|id| p(id, 1)).collect::<Vec<_>>())
        .await;
    t.initial_load = false;
    let mut w = c.open(&t).await;
    let changes: Vec<Row> = (1..=1000).chain(2001..=2500).map(|id| p(id, 2)).collect();
    let out = w.write(&changes).await;
    assert_outcome(&c.what("1,500-row write"), &out, &[], &[]);
    let out = w.delete(&ids(1001..=1700)).await;
    assert_outcome(&c.what("700-key delete"), &out, &[], &[]);
    w.close().await;
    let expected: Vec<Row> = (1..=1000)
        .map(|id| p(id, 2))
        .chain((1701..=2000).map(|id| p(id, 1)))
        .chain((2001..=2500).map(|id| p(id, 2)))
        .collect();
    c.expect(&s, &["id"], &expected).await;
    c.finish().await;
}

fn types_schema(decimal_precision: u8) -> SchemaRef {
    schema(vec![
        key("id", DataType::Int64),
        col("i16", DataType::Int16),
        col("i32", DataType::Int32),
        col("i64", DataType::Int64),
        col("f32", DataType::Float32),
        col("f64", DataType::Float64),
        col("dec", DataType::Decimal128(decimal_precision, 9)),
        col("money", DataType::Decimal128(10, 2)),
        col("flag", DataType::Boolean),
        col("txt", DataType::Utf8),
        col("bin", DataType::Binary),
        col("day", DataType::Date32),
        col("tod", DataType::Time64(TimeUnit::Microsecond)),
        col("ts", DataType::Timestamp(TimeUnit::Microsecond, None)),
        col(
            "tstz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        json_field("doc"),
        uuid_field("uid"),
    ])
}

/// Rows exercising every canonical type: typical values, extremes, all NULL, and awkward
/// text, keyed 1..=4.
fn typed_rows(decimal_precision: u8) -> Vec<Row> {
    let int_digits = usize::from(decimal_precision) - 9;
    let big: String = "1234567890".repeat(4)[..int_digits].to_string();
    let nines = "9".repeat(int_digits);
    rows([
        json!({
            "id": 1, "i16": -32768, "i32": 2147483647, "i64": i64::MIN,
            "f32": 1.5, "f64": -2.5e-10,
            "dec": format!("{big}.123456789"), "money": "-12345678.90",
            "flag": true, "txt": "héllo wörld — 日本語 🎉",
            "bin": "00ff10", "day": "2024-02-29", "tod": "23:59:59.999999",
            "ts": "2024-02-29T12:34:56.789012", "tstz": "2024-02-29T12:34:56.789012Z",
            "doc": {"a": [1, 2, 3], "b": {"c": "ü", "d": null, "e": true}, "f": 1.5},
            "uid": "0190a5b2-7c1e-7d3f-8a4b-123456789abc"
        }),
        json!({
            "id": 2, "i16": 32767, "i32": -2147483648, "i64": i64::MAX,
            "f32": 3.4028235e38, "f64": 1.0e300,
            "dec": format!("-{nines}.999999999"), "money": "0.01",
            "flag": false, "txt": "", "bin": "",
            "day": "1969-07-20", "tod": "00:00:00",
            "ts": "1969-07-20T20:17:40", "tstz": "2099-12-31T23:59:59.999999Z",
            "doc": ["x", 1, {"k": "v"}],
            "uid": "ffffffff-ffff-ffff-ffff-ffffffffffff"
        }),
        json!({"id": 3}),
        json!({
            "id": 4, "i16": 0, "i32": 0, "i64": 0, "f32": 16777216.0, "f64": 0.1,
            "dec": "-0.000000001", "money": "0",
            "flag": true, "txt": "it's \"quoted\" \\ back\nslash\ttab",
            "bin": "000102fffe", "day": "2000-01-01", "tod": "12:00:00.000001",
            "ts": "2000-01-01T00:00:00.000001", "tstz": "1970-01-01T00:00:00Z",
            "doc": {"nested": {"deep": {"n": -7}}, "s": "with \"quotes\""},
            "uid": "00000000-0000-0000-0000-000000000000"
        }),
    ])
}

/// Every canonical type (integers at their extremes, floats, a decimal at the destination's
/// full precision, a money decimal, bool, unicode text, binary, date, time, timestamps with
/// and without zone, JSON, UUID) and NULL round-trip through a created object; then values
/// change to NULL, from NULL, and to other values, and read back exactly.
pub async fn canonical_types_round_trip<H: Harness>(h: &H) {
    let c = Case::new(h, "types");
    let precision = h
        .connector()
        .capabilities()
        .max_decimal_precision
        .clamp(19, 38);
    let s = types_schema(precision);
    let first = typed_rows(precision);
    let mut t = c.target(&s, &["id"], WriteMode::Upsert);
    t.initial_load = true;
    c.load(&t, &first).await;
    c.expect(&s, &["id"], &first).await;

    let with_id = |source: &Row, id: i64| {
        let mut r = source.clone();
        r.insert("id".into(), json!(id));
        r
    };
    let second = vec![
        with_id(&first[1], 1),
        with_id(&first[2], 2),
        with_id(&first[0], 3),
        first[3].clone(),
    ];
    t.initial_load = false;
    c.load(&t, &second).await;
    c.expect(&s, &["id"], &second).await;
    c.finish().await;
}

fn payload_schema() -> SchemaRef {
    schema(vec![
        key("id", DataType::Int64),
        col("name", DataType::Utf8),
        col("payload", DataType::Utf8),
    ])
}

fn payload_row(id: i64, name: &str, payload: &str) -> Row {
    row(json!({"id": id, "name": name, "payload": payload}))
}

/// Shared body of the rejected-row cases: ids 1..=10 exist; `batch_ids` are written in `mode`,
/// with the harness's poison as the payload of the ids in `poisoned`.
async fn rejected_rows<H: Harness>(h: &H, mode: WriteMode, batch_ids: &[i64], poisoned: &[i64]) {
    let c = Case::new(h, "rejected");
    let s = payload_schema();
    let mut t = c.target(&s, &["id"], WriteMode::Upsert);
    t.initial_load = true;
    let originals: Vec<Row> = (1..=10)
        .map(|id| payload_row(id, &format!("v1-{id}"), &format!("ok-{id}")))
        .collect();
    c.load(&t, &originals).await;
    t.initial_load = false;
    t.mode = mode;
    let rejection = h
        .prepare_rejection(&c.object, &t)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", c.what("harness prepare_rejection")));

    let data: Vec<Row> = batch_ids
        .iter()
        .map(|&id| {
            let payload = if poisoned.contains(&id) {
                rejection.poison.clone()
            } else {
                format!("ok2-{id}")
            };
            payload_row(id, &format!("v2-{id}"), &payload)
        })
        .collect();
    let poisoned_rows: Vec<usize> = batch_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| poisoned.contains(id))
        .map(|(i, _)| i)
        .collect();
    let missing_rows: Vec<usize> = if mode == WriteMode::Update {
        batch_ids
            .iter()
            .enumerate()
            .filter(|(_, id)| **id > 10 && !poisoned.contains(id))
            .map(|(i, _)| i)
            .collect()
    } else {
        Vec::new()
    };
    let mut w = c.open(&t).await;
    let out = w.write(&data).await;
    w.close().await;
    let what = c.what("write with refused rows");
    assert_outcome(&what, &out, &poisoned_rows, &missing_rows);
    for f in &out.failed {
        assert!(
            f.message.contains(&rejection.message_contains),
            "{what}: row {} failed with {:?}, which lacks the database's reason {:?}",
            f.row,
            f.message,
            rejection.message_contains
        );
        assert!(
            f.column.as_deref().is_none_or(|c| c == "payload"),
            "{what}: row {} blames column {:?}, not `payload`",
            f.row,
            f.column
        );
    }

    let landed = |id: i64| {
        if poisoned.contains(&id) || (mode == WriteMode::Update && id > 10) {
            None
        } else if batch_ids.contains(&id) {
            Some(payload_row(id, &format!("v2-{id}"), &format!("ok2-{id}")))
        } else {
            Some(payload_row(id, &format!("v1-{id}"), &format!("ok-{id}")))
        }
    };
    let all_ids: Vec<i64> = (1..=10).chain(batch_ids.iter().copied()).collect();
    let mut expected: Vec<Row> = Vec::new();
    for id in all_ids {
        if expected.iter().any(|r| r["id"] == json!(id)) {
            continue;
        }
        match landed(id) {
            Some(r) => expected.push(r),
            None if id <= 10 => expected.push(originals[(id - 1) as usize].clone()),
            None => {}
        }
    }
    c.expect_filtered(&s, &["id"], &expected, true).await;

    // The next run retries the refused rows; once fixed they land.
    let retry: Vec<Row> = poisoned
        .iter()
        .map(|&id| payload_row(id, &format!("v3-{id}"), &format!("ok3-{id}")))
        .collect();
    let mut w = c.open(&t).await;
    let out = w.write(&retry).await;
    w.close().await;
    let still_missing: Vec<usize> = if mode == WriteMode::Update {
        poisoned
            .iter()
            .enumerate()
            .filter(|(_, id)| **id > 10)
            .map(|(i, _)| i)
            .collect()
    } else {
        Vec::new()
    };
    assert_outcome(&c.what("retry of refused rows"), &out, &[], &still_missing);
    for r in retry {
        let id = r["id"].as_i64().unwrap_or_default();
        if mode == WriteMode::Update && id > 10 {
            continue;
        }
        expected.retain(|e| e["id"] != json!(id));
        expected.push(r);
    }
    c.expect_filtered(&s, &["id"], &expected, true).await;
    c.finish().await;
}

/// Upsert of a batch where three rows (two existing, one new) are refused by the database:
/// exactly those come back failed, each with the database's own message and no wrong column,
/// every other row lands, the refused existing rows keep their old values, and a later run
/// with fixed values writes them.
pub async fn rejected_rows_are_isolated_in_upsert<H: Harness>(h: &H) {
    rejected_rows(
        h,
        WriteMode::Upsert,
        &(1..=12).collect::<Vec<_>>(),
        &[3, 7, 11],
    )
    .await;
}

/// Update of a batch where two existing rows are refused and one key is missing: the refused
/// rows fail with the database's message, the missing key is skipped (not failed), the rest
/// are updated.
pub async fn rejected_rows_are_isolated_in_update<H: Harness>(h: &H) {
    let batch: Vec<i64> = (1..=10).chain([13]).collect();
    rejected_rows(h, WriteMode::Update, &batch, &[3, 7]).await;
}

fn v(id: i64, version: &str) -> Row {
    person(id, Some(&format!("{version}-{id}")), Some(id as i32))
}

/// A first run (initial load) whose writer is dropped without `close`, then its retry (again
/// an initial load, now into a non-empty object) converges; then a later run that deletes,
/// writes, and is dropped while a large `write` is in flight, and its retry (which re-sends
/// the same changes, with one row changed again) converge too. Nothing left by a dropped
/// writer blocks the next run.
pub async fn writer_dropped_mid_run_then_rerun_converges<H: Harness>(h: &H) {
    let c = Case::new(h, "aborted");
    let s = people();
    let mut t = c.target(&s, &["id"], WriteMode::Upsert);
    t.deletes = true;
    t.initial_load = true;

    let mut w = c.open(&t).await;
    let out = w
        .write(&(1..=50).map(|id| v(id, "a")).collect::<Vec<_>>())
        .await;
    assert_outcome(&c.what("aborted initial write"), &out, &[], &[]);
    drop(w);
    let run1: Vec<Row> = (1..=100)
        .map(|id| v(id, if id % 10 == 0 { "b" } else { "a" }))
        .collect();
    let mut w = c.open(&t).await;
    let out = w.write(&run1[..60]).await;
    assert_outcome(&c.what("retried initial write"), &out, &[], &[]);
    let out = w.write(&run1[60..]).await;
    assert_outcome(&c.what("retried initial write"), &out, &[], &[]);
    w.close().await;
    c.expect(&s, &["id"], &run1).await;

    t.initial_load = false;
    let changed: Vec<Row> = (20..=30).chain(101..=120).map(|id| v(id, "c")).collect();
    let big: Vec<Row> = (121..=2120).map(|id| v(id, "c")).collect();
    let mut w = c.open(&t).await;
    let out = w.write(&changed).await;
    assert_outcome(&c.what("aborted run write"), &out, &[], &[]);
    let out = w.delete(&ids(1..=10)).await;
    assert_outcome(&c.what("aborted run delete"), &out, &[], &[]);
    let b = batch(&w.schema, &big);
    // Cancelled while in flight, as when a worker is stopped: whatever part landed is fine.
    let _ = tokio::time::timeout(Duration::from_millis(5), w.w.write(&b)).await;
    drop(w);

    let mut retried = changed.clone();
    retried.retain(|r| r["id"] != json!(25));
    retried.push(v(25, "d"));
    let mut w = c.open(&t).await;
    let out = w.write(&retried).await;
    assert_outcome(&c.what("retried run write"), &out, &[], &[]);
    let out = w.write(&big).await;
    assert_outcome(&c.what("retried run write"), &out, &[], &[]);
    let out = w.delete(&ids(1..=10)).await;
    assert_delete_outcome(
        h,
        &c.what("retried run delete"),
        &out,
        &(0..10).collect::<Vec<_>>(),
    );
    w.close().await;
    let expected: Vec<Row> = (11..=2120)
        .map(|id| match id {
            25 => v(id, "d"),
            20..=30 | 101.. => v(id, "c"),
            _ => run1[(id - 1) as usize].clone(),
        })
        .collect();
    c.expect(&s, &["id"], &expected).await;
    c.finish().await;
}

/// A batch that fails as a whole (its Arrow types do not match the target: `score` arrives as
/// text) is an `Err`, not a panic and not a silent partial write; the run is abandoned
/// without `close`, and its retry converges.
pub async fn failed_batch_then_rerun_converges<H: Harness>(h: &H) {
    let c = Case::new(h, "failed");
    let s = people();
    let mut t = c.target(&s, &["id"], WriteMode::Upsert);
    t.initial_load = true;
    let mut w = c.open(&t).await;
    let out = w
        .write(&(1..=20).map(|id| v(id, "a")).collect::<Vec<_>>())
        .await;
    assert_outcome(&c.what("first batch"), &out, &[], &[]);
    let wrong = schema(vec![
        key("id", DataType::Int64),
        col("name", DataType::Utf8),
        col("score", DataType::Utf8),
    ]);
    let bad = batch(
        &wrong,
        &rows((21..=30).map(|id| json!({"id": id, "name": "x", "score": id.to_string()}))),
    );
    let result = within(&c.what("mismatched batch"), w.w.write(&bad)).await;
    assert!(
        result.is_err(),
        "{}: a batch whose `score` is Utf8 instead of Int32 was accepted: {result:?}",
        c.what("mismatched batch")
    );
    drop(w);

    let run: Vec<Row> = (1..=30)
        .map(|id| v(id, if id % 5 == 0 { "b" } else { "a" }))
        .collect();
    let mut w = c.open(&t).await;
    let out = w.write(&run).await;
    assert_outcome(&c.what("retried run"), &out, &[], &[]);
    w.close().await;
    c.expect(&s, &["id"], &run).await;
    c.finish().await;
}

/// A sync that writes a column the existing object lacks: a fixed-schema destination fails
/// `check` and `open` with a `Schema` error naming the column (never at the first write); a
/// schemaless one writes the new field.
pub async fn unknown_column_in_existing_object<H: Harness>(h: &H) {
    let c = Case::new(h, "unknown_col");
    let base = schema(vec![
        key("id", DataType::Int64),
        col("name", DataType::Utf8),
    ]);
    let mut t = c.target(&base, &["id"], WriteMode::Upsert);
    t.initial_load = true;
    c.load(&t, &rows([json!({"id": 1, "name": "ann"})])).await;

    let wider = schema(vec![
        key("id", DataType::Int64),
        col("name", DataType::Utf8),
        col("extra_col", DataType::Int32),
    ]);
    let mut t = c.target(&wider, &["id"], WriteMode::Upsert);
    t.create_table = false;
    if h.connector().capabilities().schemaless {
        let data = rows([json!({"id": 1, "name": "ann", "extra_col": 5})]);
        c.load(&t, &data).await;
        c.expect(&wider, &["id"], &data).await;
    } else {
        for (step, result) in [
            ("check", c.check(&t).await.err()),
            ("open", c.try_open(&t).await.err()),
        ] {
            let e = result.unwrap_or_else(|| {
                panic!(
                    "{}: accepted a schema with column `extra_col`, which the object lacks",
                    c.what(step)
                )
            });
            assert_eq!(e.kind(), ErrorKind::Schema, "{}: {e}", c.what(step));
            assert!(
                names(&e, "extra_col"),
                "{}: error does not name `extra_col`: {e}",
                c.what(step)
            );
        }
    }
    c.finish().await;
}

/// A sync that sends binary into an existing date column: a fixed-schema destination fails
/// `check` and `open` with a `Schema` error naming the column; a schemaless one stores it.
pub async fn wrong_type_in_existing_object<H: Harness>(h: &H) {
    let c = Case::new(h, "wrong_type");
    let base = schema(vec![
        key("id", DataType::Int64),
        col("day", DataType::Date32),
    ]);
    let mut t = c.target(&base, &["id"], WriteMode::Upsert);
    t.initial_load = true;
    c.load(&t, &rows([json!({"id": 1, "day": "2024-01-02"})]))
        .await;

    let wrong = schema(vec![
        key("id", DataType::Int64),
        col("day", DataType::Binary),
    ]);
    let mut t = c.target(&wrong, &["id"], WriteMode::Upsert);
    t.create_table = false;
    if h.connector().capabilities().schemaless {
        let data = rows([json!({"id": 1, "day": "beef"})]);
        c.load(&t, &data).await;
        c.expect(&wrong, &["id"], &data).await;
    } else {
        for (step, result) in [
            ("check", c.check(&t).await.err()),
            ("open", c.try_open(&t).await.err()),
        ] {
            let e = result.unwrap_or_else(|| {
                panic!(
                    "{}: accepted Binary for the date column `day`",
                    c.what(step)
                )
            });
            assert_eq!(e.kind(), ErrorKind::Schema, "{}: {e}", c.what(step));
            assert!(
                names(&e, "day"),
                "{}: error does not name `day`: {e}",
                c.what(step)
            );
        }
    }
    c.finish().await;
}

/// A primary key naming a column the schema lacks is a `Config` error from `check` and `open`
/// that names the column, before anything is created.
pub async fn primary_key_outside_the_schema_is_a_config_error<H: Harness>(h: &H) {
    let c = Case::new(h, "bad_key");
    let t = c.target(&people(), &["no_such_key"], WriteMode::Upsert);
    for (step, result) in [
        ("check", c.check(&t).await.err()),
        ("open", c.try_open(&t).await.err()),
    ] {
        let e = result.unwrap_or_else(|| {
            panic!(
                "{}: accepted primary key `no_such_key`, which is not in the schema",
                c.what(step)
            )
        });
        assert_eq!(e.kind(), ErrorKind::Config, "{}: {e}", c.what(step));
        assert!(
            names(&e, "no_such_key"),
            "{}: error does not name `no_such_key`: {e}",
            c.what(step)
        );
    }
    c.expect(&people(), &["id"], &[]).await;
    c.finish().await;
}

/// A wrong credential fails `check` and `open` with an `Auth` error that is not retryable
/// and never echoes the secret (nor does the destination's `Debug`).
pub async fn wrong_credential_is_an_auth_error<H: Harness>(h: &H) {
    let c = Case::new(h, "auth");
    match h.wrong_credential() {
        CredentialCase::NotEnforced { reason } => {
            assert!(
                !reason.trim().is_empty(),
                "[{}] a destination that does not enforce credentials must say why",
                h.name()
            );
        }
        CredentialCase::Refused {
            destination,
            secret,
        } => {
            let debug = format!("{destination:?}");
            assert!(
                !debug.contains(&secret),
                "[{}] the destination's Debug shows the secret: {debug}",
                h.name()
            );
            let t = c.target(&people(), &["id"], WriteMode::Upsert);
            let checked = within(&c.what("check"), destination.check(&t)).await.err();
            let opened = within(&c.what("open"), destination.open(&t)).await.err();
            for (step, result) in [("check", checked), ("open", opened)] {
                let e = result.unwrap_or_else(|| {
                    panic!("{}: succeeded with a wrong credential", c.what(step))
                });
                assert_eq!(e.kind(), ErrorKind::Auth, "{}: {e}", c.what(step));
                assert!(
                    !e.is_retryable(),
                    "{}: auth failure retryable: {e}",
                    c.what(step)
                );
                let shown = format!("{e} {e:?}");
                assert!(
                    !shown.contains(&secret),
                    "{}: the error shows the secret: {shown}",
                    c.what(step)
                );
            }
        }
    }
}

/// A server that does not answer fails `check` and `open` with a retryable `Connectivity`
/// error, within the step timeout.
pub async fn unreachable_server_is_a_retryable_connectivity_error<H: Harness>(h: &H) {
    let c = Case::new(h, "unreachable");
    let destination = h.unreachable();
    let t = c.target(&people(), &["id"], WriteMode::Upsert);
    let checked = within(&c.what("check"), destination.check(&t)).await.err();
    let opened = within(&c.what("open"), destination.open(&t)).await.err();
    for (step, result) in [("check", checked), ("open", opened)] {
        let e =
            result.unwrap_or_else(|| panic!("{}: succeeded against a closed port", c.what(step)));
        assert_eq!(e.kind(), ErrorKind::Connectivity, "{}: {e}", c.what(step));
        assert!(e.is_retryable(), "{}: not retryable: {e}", c.what(step));
    }
}

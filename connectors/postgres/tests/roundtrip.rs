//! Every mapped type, read with the source and written back with the destination: the two
//! tables must be equal (compared with SQL), and a few Arrow values are checked directly.

mod common;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use backflow_connector_core::types::{is_json, is_uuid};
use backflow_connector_core::{Destination, WriteMode};
use common::*;

const COLUMNS: &str = "
    id int4 PRIMARY KEY,
    i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
    n numeric(38,10), n2 numeric(12,2), nu numeric, b bool,
    t text, vc varchar(20), bc char(5), nm name, by bytea,
    d date, tm time, ts timestamp, tstz timestamptz,
    j json, jb jsonb, u uuid,
    ai int4[], at text[], an numeric[], af float8[], atz timestamptz[], ad date[], ab bool[], aj jsonb[]";

const ROWS: &str = r#"
INSERT INTO $TABLE VALUES
 (1, -32768, -2147483648, -9223372036854775808, 'NaN', 'NaN',
  9999999999999999999999999999.9999999999, -9999999999.99, 1.5, true,
  '', 'héllo wörld 🚀', 'ab', 'a_name', '\x00ff',
  '0001-01-01', '00:00:00', '1900-01-01 00:00:00', '2024-03-10 12:34:56.789012+05:30',
  '{"a": [1, 2, {"b": null}]}', '{"k": "v", "n": 1.50}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{1,NULL,3}', '{"a","b c","é\"q",NULL}', '{1.50,NaN,-0.001}', '{1.5,NaN,Infinity,-Infinity,1e-300}',
  '{"2024-01-01 10:00:00.5+02","1969-07-20 20:17:40Z"}', '{2000-02-29,infinity}', '{t,f,NULL}',
  ARRAY['{"x": 1}'::jsonb, '[]'::jsonb]),
 (2, 32767, 2147483647, 9223372036854775807, 'Infinity', '-Infinity',
  -9999999999999999999999999999.9999999999, 0.01, -0.0000000001, false,
  'quote '' and \ backslash', 'x', 'abcde', 'n2', '',
  '9999-12-31', '23:59:59.999999', '2262-04-11 23:47:16.854775', '1999-12-31 23:59:59-08',
  '[]', '"scalar"', '00000000-0000-0000-0000-000000000000',
  '{{1,2},{3,4}}', '{}', '{}', '{3.4028234663852886e+38}', '{}', '{}', '{}', '{}'),
 (3, 0, 0, 0, '-Infinity', 1e-300,
  0.0000000001, 0, 12345678901234567890.0123456789, NULL,
  'line1
line2', NULL, NULL, NULL, NULL,
  '1970-01-01', '12:00:00', '1970-01-01 00:00:00', '2000-01-01 00:00:00 UTC',
  'null', 'null', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, 1, 1, 1, 3.4028235e38, 1.7976931348623157e308,
  -0.5, 1, 0, true,
  '🚀', '', 'x    ', '', '\x',
  '2000-01-01', '00:00:00.000001', '1999-12-31 23:59:59.999999', '1969-12-31 23:59:59.999999-01',
  '{"nested": {"deep": [true, false]}}', '{}', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '{-2147483648}', '{""}', '{0}', '{-0}', '{"0001-01-01 00:00:00+00"}', '{0001-01-01}', '{t}', '{null}')
"#;

/// Source expressions normalised to what the destination stores: json → jsonb, arrays →
/// `to_jsonb`, char(5) with its padding, name → text.
const SOURCE_SELECT: &str = "id, i2, i4, i8, f4, f8, n, n2, nu, b, t, vc::text, CASE WHEN bc IS NULL THEN NULL ELSE concat(bc) END, nm::text, by, \
    d, tm, ts, tstz, j::jsonb, jb, u, to_jsonb(ai), to_jsonb(at), to_jsonb(an), to_jsonb(af), \
    to_jsonb(atz), to_jsonb(ad), to_jsonb(ab), to_jsonb(aj)";
const TARGET_SELECT: &str = "id, i2, i4, i8, f4, f8, n, n2, nu, b, t, vc, bc, nm, by, \
    d, tm, ts, tstz, j, jb, u, ai, at, an, af, atz, ad, ab, aj";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips() {
    let mut admin = admin().await;
    let src = unique("rt_src");
    exec(&mut admin, &format!("CREATE TABLE {src} ({COLUMNS})")).await;
    exec(&mut admin, &ROWS.replace("$TABLE", &src)).await;

    let (schema, batches) = read_all(&format!("SELECT * FROM {src} ORDER BY id;"), 2).await;
    assert_eq!(batches.len(), 3, "5 rows in batches of 2");
    assert!(batches.iter().all(|b| b.num_rows() <= 2));
    let all = concat_batches(&schema, &batches).unwrap();
    assert_eq!(all.num_rows(), 5);
    check_schema(&all);
    check_values(&all);

    // Write it twice: into a new, empty table with initial_load (direct COPY), and through the
    // staging table (upsert into a table created empty, then an upsert of the same rows).
    let direct = unique("rt_direct");
    let staged = unique("rt_staged");
    for (object, initial_load) in [(direct.as_str(), true), (staged.as_str(), false)] {
        let mut t = target(object, schema.clone(), &["id"], WriteMode::Upsert, true);
        t.initial_load = initial_load;
        let dest = destination();
        dest.check(&t).await.unwrap();
        let mut writer = dest.open(&t).await.unwrap();
        for _ in 0..2 {
            for batch in &batches {
                let outcome = writer.write(batch).await.unwrap();
                assert!(outcome.failed.is_empty(), "{object}: {:?}", outcome.failed);
                assert!(
                    outcome.skipped.is_empty(),
                    "{object}: {:?}",
                    outcome.skipped
                );
            }
        }
        writer.close().await.unwrap();

        for (a, b) in [(src.as_str(), object), (object, src.as_str())] {
            let select = |table: &str| {
                if table == src {
                    format!("SELECT {SOURCE_SELECT} FROM {table}")
                } else {
                    format!("SELECT {TARGET_SELECT} FROM {table}")
                }
            };
            let diff = rows(&mut admin, &format!("{} EXCEPT {}", select(a), select(b))).await;
            assert!(diff.is_empty(), "rows of {a} missing from {b}: {diff:#?}");
        }
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {object}"))
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(count, 5);
        // Reading the copy back gives the same Arrow data, arrays aside (they are jsonb now).
        let (_, again) = read_all(&format!("SELECT * FROM {object} ORDER BY id"), 100).await;
        let again = concat_batches(&again[0].schema(), &again).unwrap();
        for name in [
            "i8", "n", "nu", "f8", "t", "by", "d", "tm", "ts", "tstz", "jb", "u",
        ] {
            assert_eq!(
                all.column_by_name(name).unwrap().to_data(),
                again.column_by_name(name).unwrap().to_data(),
                "column {name} of {object}"
            );
        }
    }
    let native: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum",
    )
    .bind(&direct)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let native: std::collections::HashMap<_, _> = native.into_iter().collect();
    assert_eq!(native["n"], "numeric(38,10)");
    assert_eq!(native["n2"], "numeric(12,2)");
    assert_eq!(native["nu"], "numeric(38,10)");
    assert_eq!(native["tstz"], "timestamp with time zone");
    assert_eq!(native["jb"], "jsonb");
    assert_eq!(native["ai"], "jsonb");
    assert_eq!(native["u"], "uuid");
    for table in [&src, &direct, &staged] {
        exec(&mut admin, &format!("DROP TABLE {table}")).await;
    }
}

fn check_schema(all: &RecordBatch) {
    let schema = all.schema();
    let dt = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(dt("i2"), DataType::Int16);
    assert_eq!(dt("i4"), DataType::Int32);
    assert_eq!(dt("i8"), DataType::Int64);
    assert_eq!(dt("f4"), DataType::Float32);
    assert_eq!(dt("f8"), DataType::Float64);
    assert_eq!(dt("n"), DataType::Decimal128(38, 10));
    assert_eq!(dt("n2"), DataType::Decimal128(12, 2));
    assert_eq!(dt("nu"), DataType::Decimal128(38, 10));
    assert_eq!(dt("b"), DataType::Boolean);
    for s in ["t", "vc", "bc", "nm"] {
        assert_eq!(dt(s), DataType::Utf8);
    }
    assert_eq!(dt("by"), DataType::Binary);
    assert_eq!(dt("d"), DataType::Date32);
    assert_eq!(dt("tm"), DataType::Time64(TimeUnit::Microsecond));
    assert_eq!(dt("ts"), DataType::Timestamp(TimeUnit::Microsecond, None));
    assert_eq!(
        dt("tstz"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    for j in ["j", "jb", "ai", "at", "an", "af", "atz", "ad", "ab", "aj"] {
        assert!(is_json(schema.field_with_name(j).unwrap()), "{j} is JSON");
    }
    assert!(is_uuid(schema.field_with_name("u").unwrap()));
}

fn check_values(all: &RecordBatch) {
    let col = |name: &str| all.column_by_name(name).unwrap().clone();
    assert_eq!(col("i2").as_primitive::<Int16Type>().value(0), i16::MIN);
    assert_eq!(col("i4").as_primitive::<Int32Type>().value(1), i32::MAX);
    assert_eq!(col("i8").as_primitive::<Int64Type>().value(0), i64::MIN);
    assert_eq!(col("i8").as_primitive::<Int64Type>().value(1), i64::MAX);
    assert!(col("f4").as_primitive::<Float32Type>().value(0).is_nan());
    assert_eq!(
        col("f4").as_primitive::<Float32Type>().value(1),
        f32::INFINITY
    );
    assert_eq!(
        col("f8").as_primitive::<Float64Type>().value(1),
        f64::NEG_INFINITY
    );
    assert_eq!(col("f8").as_primitive::<Float64Type>().value(4), f64::MAX);
    let n = col("n");
    let n = n.as_primitive::<Decimal128Type>();
    assert_eq!(n.value(0), 10i128.pow(38) - 1);
    assert_eq!(n.value(1), -(10i128.pow(38) - 1));
    assert_eq!(n.value(2), 1);
    assert_eq!(
        col("n2").as_primitive::<Decimal128Type>().value(0),
        -999_999_999_999
    );
    let nu = col("nu");
    let nu = nu.as_primitive::<Decimal128Type>();
    assert_eq!(nu.value(0), 15_000_000_000);
    assert_eq!(nu.value(1), -1);
    assert_eq!(nu.value(2), 123_456_789_012_345_678_900_123_456_789);
    let t = col("t");
    assert_eq!(t.as_string::<i32>().value(0), "");
    assert!(t.is_valid(0));
    assert!(t.is_null(3));
    assert_eq!(col("vc").as_string::<i32>().value(0), "héllo wörld 🚀");
    assert_eq!(col("bc").as_string::<i32>().value(0), "ab   ");
    assert_eq!(col("by").as_binary::<i32>().value(0), &[0x00, 0xff]);
    assert_eq!(col("by").as_binary::<i32>().value(1), b"");
    // 0001-01-01 is 719162 days before 1970-01-01.
    assert_eq!(col("d").as_primitive::<Date32Type>().value(0), -719_162);
    assert_eq!(
        col("tm").as_primitive::<Time64MicrosecondType>().value(1),
        86_399_999_999
    );
    let tstz = col("tstz");
    let tstz = tstz.as_primitive::<TimestampMicrosecondType>();
    // 2024-03-10 12:34:56.789012+05:30 = 2024-03-10 07:04:56.789012 UTC.
    assert_eq!(tstz.value(0), 1_710_054_296_789_012);
    // 1999-12-31 23:59:59-08 = 2000-01-01 07:59:59 UTC.
    assert_eq!(tstz.value(1), 946_713_599_000_000);
    assert_eq!(tstz.value(2), 946_684_800_000_000);
    // 1969-12-31 23:59:59.999999-01 = 1970-01-01 00:59:59.999999 UTC.
    assert_eq!(tstz.value(4), 3_599_999_999);
    assert_eq!(
        col("ts")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        -2_208_988_800_000_000
    );
    assert_eq!(
        col("jb").as_string::<i32>().value(0),
        r#"{"k": "v", "n": 1.50}"#
    );
    assert_eq!(col("j").as_string::<i32>().value(2), "null");
    let u = col("u");
    assert_eq!(u.as_fixed_size_binary().value(0)[0], 0xa0);
    assert!(u.is_null(2));
    assert_eq!(col("ai").as_string::<i32>().value(0), "[1,null,3]");
    assert_eq!(col("ai").as_string::<i32>().value(1), "[[1,2],[3,4]]");
    assert_eq!(
        col("at").as_string::<i32>().value(0),
        r#"["a","b c","é\"q",null]"#
    );
    assert_eq!(col("at").as_string::<i32>().value(1), "[]");
    assert_eq!(
        col("an").as_string::<i32>().value(0),
        r#"[1.50,"NaN",-0.001]"#
    );
    assert_eq!(
        col("af").as_string::<i32>().value(0),
        r#"[1.5,"NaN","Infinity","-Infinity",1e-300]"#
    );
    assert_eq!(
        col("atz").as_string::<i32>().value(0),
        r#"["2024-01-01T08:00:00.5+00:00","1969-07-20T20:17:40+00:00"]"#
    );
    assert_eq!(
        col("ad").as_string::<i32>().value(0),
        r#"["2000-02-29","infinity"]"#
    );
    assert_eq!(col("ab").as_string::<i32>().value(0), "[true,false,null]");
}

//! The parts of Snowflake's protocol fakesnow never exercises (it always answers inline, never
//! asynchronously, accepts any password and never expires a token), checked against a small
//! local HTTP server of this test that speaks the same protocol and serves real Arrow IPC
//! chunk files: parallel in-order chunk downloads with headers and gzip, per-chunk integer
//! widths, asynchronous query polling, token renewal, aborting on drop, short or failing
//! chunks, refused credentials and key-pair login.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{
    ArrayRef, AsArray, Decimal128Array, Int32Array, Int64Array, Int8Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type, Schema};
use arrow::ipc::writer::StreamWriter;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use backflow_connector_core::{ErrorKind, ReadOptions, Source};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Value};

/// Rows per chunk; chunk 0 is inline, chunks 1..=CHUNKS are downloaded.
const ROWS: i64 = 100;
const CHUNKS: usize = 5;

#[derive(Default)]
struct Seen {
    logins: Mutex<Vec<Value>>,
    aborts: Mutex<Vec<Value>>,
    renewals: AtomicUsize,
    logouts: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    chunk_requests: AtomicUsize,
    query_request_ids: Mutex<Vec<String>>,
}

struct Server {
    addr: String,
    seen: Arc<Seen>,
}

type App = State<(Arc<Seen>, String)>;

/// One chunk as an Arrow IPC stream the way Snowflake encodes it: `ID` as the narrowest
/// integer for the chunk, `AMOUNT` (NUMBER(10,2)) as scaled integers or a decimal.
fn chunk_ipc(chunk: usize, rows: i64) -> Vec<u8> {
    let start = chunk as i64 * ROWS;
    let meta = |logical: &str, scale: &str| -> HashMap<String, String> {
        HashMap::from([
            ("logicalType".to_string(), logical.to_string()),
            ("scale".to_string(), scale.to_string()),
        ])
    };
    let (id, id_type): (ArrayRef, DataType) = if chunk == 0 {
        (
            Arc::new(Int8Array::from_iter_values(
                (start..start + rows).map(|v| v as i8),
            )),
            DataType::Int8,
        )
    } else {
        (
            Arc::new(Int64Array::from_iter_values(start..start + rows)),
            DataType::Int64,
        )
    };
    let (amount, amount_type): (ArrayRef, DataType) = if chunk.is_multiple_of(2) {
        (
            Arc::new(Int32Array::from_iter_values(
                (start..start + rows).map(|v| (v * 101) as i32),
            )),
            DataType::Int32,
        )
    } else {
        (
            Arc::new(
                Decimal128Array::from_iter_values((start..start + rows).map(|v| v as i128 * 101))
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            DataType::Decimal128(10, 2),
        )
    };
    let name: ArrayRef = Arc::new(StringArray::from_iter_values(
        (start..start + rows).map(|v| format!("row {v}")),
    ));
    let schema = Arc::new(Schema::new(vec![
        Field::new("ID", id_type, true).with_metadata(meta("FIXED", "0")),
        Field::new("NAME", DataType::Utf8, true).with_metadata(meta("TEXT", "0")),
        Field::new("AMOUNT", amount_type, true).with_metadata(meta("FIXED", "2")),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), vec![id, name, amount]).unwrap();
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &schema).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    out
}

fn result_data(addr: &str, kind: &str) -> Value {
    let chunks: Vec<Value> = (1..=CHUNKS)
        .map(|i| json!({"url": format!("http://{addr}/chunk/{kind}/{i}"), "rowCount": ROWS}))
        .collect();
    json!({
        "rowtype": [
            {"name": "ID", "type": "fixed", "precision": 38, "scale": 0, "nullable": false},
            {"name": "NAME", "type": "text"},
            {"name": "AMOUNT", "type": "fixed", "precision": 10, "scale": 2},
        ],
        "rowsetBase64": STANDARD.encode(chunk_ipc(0, ROWS)),
        "queryResultFormat": "arrow",
        "chunks": chunks,
        "chunkHeaders": {"x-test-chunk-key": "secret-key"},
        "qrmk": "ignored-when-chunk-headers-are-given",
        "total": ROWS * (CHUNKS as i64 + 1),
        "queryId": format!("q-{kind}"),
    })
}

fn ok(data: Value) -> (StatusCode, String) {
    (
        StatusCode::OK,
        json!({"data": data, "success": true}).to_string(),
    )
}

fn token_of(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn login(State((seen, _)): App, body: Bytes) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap();
    seen.logins.lock().unwrap().push(body.clone());
    if body["data"]["PASSWORD"] == "wrong" {
        return (
            StatusCode::OK,
            json!({"data": null, "code": "390100", "success": false,
                   "message": "Incorrect username or password was specified."})
            .to_string(),
        );
    }
    ok(json!({"token": "session-1", "masterToken": "master-1", "validityInSeconds": 3600}))
}

async fn query(
    State((seen, addr)): App,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap();
    let request_id = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("requestId="))
        .unwrap_or("")
        .to_string();
    seen.query_request_ids.lock().unwrap().push(request_id);
    let sql = body["sqlText"].as_str().unwrap_or("").to_string();
    let token = token_of(&headers);
    match sql.as_str() {
        "UNAVAILABLE" => (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string()),
        "EXPIRES" if token == "Snowflake Token=\"session-1\"" => (
            StatusCode::OK,
            json!({"data": null, "code": "390112", "success": false,
                   "message": "Session token expired"})
            .to_string(),
        ),
        "ASYNC" => (
            StatusCode::OK,
            json!({"data": {"queryId": "q-async", "getResultUrl": "/queries/q-async/result"},
                   "code": "333334", "success": true, "message": "in progress"})
            .to_string(),
        ),
        kind => ok(result_data(&addr, &kind.to_lowercase())),
    }
}

async fn poll_result(
    State((_, addr)): App,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    assert_eq!(token_of(&headers), "Snowflake Token=\"session-1\"");
    assert_eq!(id, "q-async");
    ok(result_data(&addr, "chunked"))
}

async fn renew(State((seen, _)): App, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(token_of(&headers), "Snowflake Token=\"master-1\"");
    assert_eq!(body["requestType"], "RENEW");
    assert_eq!(body["oldSessionToken"], "session-1");
    seen.renewals.fetch_add(1, Ordering::SeqCst);
    ok(json!({"sessionToken": "session-2"}))
}

async fn abort(State((seen, _)): App, body: Bytes) -> (StatusCode, String) {
    seen.aborts
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    ok(Value::Null)
}

async fn logout(State((seen, _)): App) -> (StatusCode, String) {
    seen.logouts.fetch_add(1, Ordering::SeqCst);
    ok(Value::Null)
}

async fn chunk(
    State((seen, _)): App,
    Path((kind, index)): Path<(String, usize)>,
    headers: HeaderMap,
) -> (StatusCode, Vec<u8>) {
    seen.chunk_requests.fetch_add(1, Ordering::SeqCst);
    if headers
        .get("x-test-chunk-key")
        .and_then(|v| v.to_str().ok())
        != Some("secret-key")
    {
        return (StatusCode::FORBIDDEN, Vec::new());
    }
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = if kind == "slow" { 2_000 } else { 50 };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    match (kind.as_str(), index) {
        ("failing", 3) => (StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
        ("short", 3) => (StatusCode::OK, chunk_ipc(index, ROWS / 2)),
        (_, 2) => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&chunk_ipc(index, ROWS)).unwrap();
            (StatusCode::OK, gz.finish().unwrap())
        }
        _ => (StatusCode::OK, chunk_ipc(index, ROWS)),
    }
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/session/v1/login-request", post(login))
        .route("/queries/v1/query-request", post(query))
        .route("/queries/{id}/result", get(poll_result))
        .route("/session/token-request", post(renew))
        .route("/queries/v1/abort-request", post(abort))
        .route("/session", post(logout))
        .route("/chunk/{kind}/{index}", get(chunk))
        .with_state((seen.clone(), addr.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { addr, seen }
}

fn source_for(server: &Server, extra: Value) -> backflow_snowflake::SnowflakeSource {
    let mut config = common::config_for(&format!("http://{}", server.addr));
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    backflow_snowflake::validate_source(&config).unwrap()
}

async fn read_ids(
    source: &backflow_snowflake::SnowflakeSource,
    sql: &str,
) -> Result<(Vec<i64>, Vec<String>), backflow_connector_core::ConnectorError> {
    let (schema, batches) = common::read_all(source, sql, 64).await?;
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(10, 2));
    let mut ids = Vec::new();
    let mut amounts = Vec::new();
    for batch in &batches {
        assert_eq!(batch.schema(), schema);
        assert!(batch.num_rows() <= 64);
        ids.extend(batch.column(0).as_primitive::<Int64Type>().values().iter());
        let amount = batch.column(2).as_primitive::<Decimal128Type>();
        amounts.extend((0..amount.len()).map(|i| amount.value_as_string(i)));
    }
    Ok((ids, amounts))
}

fn expected_ids() -> Vec<i64> {
    (0..ROWS * (CHUNKS as i64 + 1)).collect()
}

#[tokio::test]
async fn chunks_download_in_parallel_with_bounded_concurrency_and_arrive_in_order() {
    let server = start().await;
    let source = source_for(&server, json!({"chunk_concurrency": 2}));
    let (ids, amounts) = read_ids(&source, "CHUNKED").await.unwrap();
    assert_eq!(ids, expected_ids(), "every row once, in result order");
    assert_eq!(amounts[3], "3.03");
    assert_eq!(amounts[250], "252.50");
    let max = server.seen.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(max, 2, "two downloads overlap, never more");
    assert_eq!(server.seen.chunk_requests.load(Ordering::SeqCst), CHUNKS);
    // A complete read logs out and aborts nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.seen.logouts.load(Ordering::SeqCst), 1);
    assert!(server.seen.aborts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_async_query_is_polled_until_its_result_is_ready() {
    let server = start().await;
    let source = source_for(&server, json!({}));
    let (ids, _) = read_ids(&source, "ASYNC").await.unwrap();
    assert_eq!(ids, expected_ids());
}

#[tokio::test]
async fn an_expired_session_token_is_renewed_with_the_master_token() {
    let server = start().await;
    let source = source_for(&server, json!({}));
    let (ids, _) = read_ids(&source, "EXPIRES").await.unwrap();
    assert_eq!(ids, expected_ids());
    assert_eq!(server.seen.renewals.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_short_chunk_fails_the_read_as_retryable_never_as_a_short_result() {
    let server = start().await;
    let source = source_for(&server, json!({}));
    let e = read_ids(&source, "SHORT").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
    assert!(e.message().contains("announced"), "{e}");
}

#[tokio::test]
async fn a_failing_chunk_is_retried_then_fails_the_read_as_retryable() {
    let server = start().await;
    let source = source_for(&server, json!({}));
    let e = read_ids(&source, "FAILING").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
    // 5 chunks, the failing one tried 3 times.
    assert_eq!(
        server.seen.chunk_requests.load(Ordering::SeqCst),
        CHUNKS + 2
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.seen.aborts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn dropping_the_stream_aborts_the_query_and_logs_out() {
    let server = start().await;
    let source = source_for(&server, json!({}));
    let mut stream = source
        .read("SLOW", ReadOptions { batch_size: 10 })
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), 10);
    drop(stream);
    let query_request_id = server.seen.query_request_ids.lock().unwrap()[0].clone();
    for _ in 0..50 {
        if !server.seen.aborts.lock().unwrap().is_empty()
            && server.seen.logouts.load(Ordering::SeqCst) == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let aborts = server.seen.aborts.lock().unwrap().clone();
    assert_eq!(aborts.len(), 1, "one abort-request");
    assert_eq!(aborts[0]["sqlText"], "SLOW");
    assert_eq!(aborts[0]["requestId"], query_request_id.as_str());
    assert_eq!(server.seen.logouts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http_5xx_is_a_retryable_connectivity_error() {
    let server = start().await;
    let source = source_for(&server, json!({}));
    let e = read_ids(&source, "UNAVAILABLE").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connectivity, "{e}");
    assert!(e.is_retryable());
    assert!(e.message().contains("503"), "{e}");
}

#[tokio::test]
async fn a_refused_password_is_an_auth_error_with_snowflakes_code() {
    let server = start().await;
    let source = source_for(&server, json!({"credential": {"password": "wrong"}}));
    let e = source.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert_eq!(e.code(), Some("390100"));
    assert!(
        e.message().contains("Incorrect username or password"),
        "{e}"
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn key_pair_login_sends_a_jwt_that_verifies_with_the_public_key() {
    let server = start().await;
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let source = source_for(
        &server,
        json!({
            "account": "xy12345.us-east-1",
            "user": "loader",
            "credential": {"key_pair": {
                "private_key_file": format!("{keys}/rsa_key_encrypted.p8"),
                "passphrase": "backflow-test",
            }},
        }),
    );
    let (ids, _) = read_ids(&source, "CHUNKED").await.unwrap();
    assert_eq!(ids.len(), expected_ids().len());

    let login = server.seen.logins.lock().unwrap()[0]["data"].clone();
    assert_eq!(login["AUTHENTICATOR"], "SNOWFLAKE_JWT");
    assert_eq!(login["LOGIN_NAME"], "loader");
    assert!(login.get("PASSWORD").is_none());
    assert!(login["SESSION_PARAMETERS"].is_object());
    let token = login["TOKEN"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let fingerprint = std::fs::read_to_string(format!("{keys}/fingerprint.txt")).unwrap();
    assert_eq!(
        claims["iss"],
        format!("XY12345.LOADER.SHA256:{}", fingerprint.trim())
    );
    assert_eq!(claims["sub"], "XY12345.LOADER");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(exp > iat && exp - iat <= 3600);

    // The signature verifies with the public half of the (unencrypted copy of the) key.
    let pem = std::fs::read_to_string(format!("{keys}/rsa_key.p8")).unwrap();
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&STANDARD.decode(der).unwrap()).unwrap();
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec(),
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    public
        .verify(
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the JWT signature verifies");
}

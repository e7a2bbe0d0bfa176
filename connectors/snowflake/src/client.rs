//! A small client for the REST protocol Snowflake's own drivers speak (see the crate docs for
//! the endpoints). It logs in, runs one statement per request, follows asynchronous queries,
//! renews the session token, keeps the session alive, aborts and logs out.
//!
//! Every answer is the envelope `{"data": …, "code": "…", "message": "…", "success": bool}`.
//! The client only requires what it uses (`data.token` from a login, `data.rowtype` from a
//! query) and treats everything else as optional, because local emulators omit most fields.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backflow_connector_core::{ConnectorError, ErrorKind, Secret};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, USER_AGENT};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::types::RowType;

mod login;

/// "Query still running" (synchronous request that outlived the server's wait).
const QUERY_IN_PROGRESS: &str = "333333";
/// "Query still running" (asynchronous request).
const QUERY_IN_PROGRESS_ASYNC: &str = "333334";
/// The session token expired: renew it with the master token.
const SESSION_EXPIRED: &str = "390112";
/// The client identity sent at login. Snowflake chooses the result format by client; the Go
/// driver's identity gets Arrow results, which is what this client reads.
const CLIENT_APP_ID: &str = "Go";
const CLIENT_APP_VERSION: &str = "1.6.22";
/// The longest the server may stay silent on a connection before it counts as lost
/// (Snowflake answers long queries with "in progress" well before this). An answer being
/// read slowly by a slow consumer is fine: only silence counts.
const READ_TIMEOUT: Duration = Duration::from_secs(600);
/// Timeout of small requests (login, heartbeat, renewal, abort, logout).
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of one result chunk download.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(300);
/// Attempts per chunk download before the read fails (retryable).
const CHUNK_ATTEMPTS: u32 = 3;

/// The envelope of every answer.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    success: bool,
}

impl Envelope {
    fn code(&self) -> Option<String> {
        match &self.code {
            Some(Value::String(s)) => Some(s.clone()),
            // serde_json's Number ignores width and fill, so pad its text: the server's codes
            // are six digits (`002003`) whichever JSON type carries them.
            Some(Value::Number(n)) => Some(format!("{:0>6}", n.to_string())),
            _ => None,
        }
    }
}

/// The fields of a query answer this client reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryData {
    /// The result columns.
    #[serde(default)]
    pub(crate) rowtype: Vec<RowType>,
    /// The first chunk, an Arrow IPC stream in base64 (empty for no rows).
    #[serde(default)]
    pub(crate) rowset_base64: Option<String>,
    /// Rows of a JSON-format answer (DML counts; never read as a result).
    #[serde(default)]
    pub(crate) rowset: Option<Value>,
    /// `arrow` or `json`.
    #[serde(default)]
    pub(crate) query_result_format: Option<String>,
    /// Further chunks to download, in result order.
    #[serde(default)]
    pub(crate) chunks: Vec<ChunkInfo>,
    /// Headers to send with every chunk download.
    #[serde(default)]
    pub(crate) chunk_headers: Option<HashMap<String, String>>,
    /// Key for server-side-encrypted chunks, when no chunk headers are given.
    #[serde(default)]
    pub(crate) qrmk: Option<String>,
    /// The query id, for logs and aborts.
    #[serde(default)]
    pub(crate) query_id: Option<String>,
    /// Where to poll an in-progress query.
    #[serde(default)]
    get_result_url: Option<String>,
    /// Total rows of the result, to tell a complete read from a short one.
    #[serde(default)]
    pub(crate) total: Option<u64>,
}

/// A query's answer: its fields and its inline first chunk.
pub(crate) struct Answer {
    /// The fields of the answer (for a streamed rowset, those before it).
    pub(crate) data: QueryData,
    /// The first chunk of the result.
    pub(crate) inline: Inline,
}

/// The inline first chunk of a result.
pub(crate) enum Inline {
    /// Decoded already (empty when the result has no inline rows).
    Whole(Bytes),
    /// Still arriving; its tail holds the fields after it (chunks, total).
    Streaming(Box<RowsetReader>),
}

/// One downloadable result chunk.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChunkInfo {
    /// Presigned URL of the chunk file.
    pub(crate) url: String,
    /// Rows in the chunk.
    #[serde(default)]
    pub(crate) row_count: Option<u64>,
}

/// A logged-in session. Tokens are secrets: they never reach a log line or an error.
pub(crate) struct Session {
    http: reqwest::Client,
    base: String,
    token: Mutex<Secret>,
    master: Mutex<Option<Secret>>,
    heartbeat: Duration,
    sequence: Mutex<u64>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The HTTP client every session of a source shares.
pub(crate) fn http_client() -> Result<reqwest::Client, ConnectorError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|e| ConnectorError::internal(format!("building the HTTP client: {e}")))
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn authorization(token: &Secret) -> Result<HeaderValue, ConnectorError> {
    let mut value = HeaderValue::from_str(&format!("Snowflake Token=\"{}\"", token.expose()))
        .map_err(|_| ConnectorError::new(ErrorKind::Auth, "the session token is not a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn base_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/snowflake"));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("backflow/", env!("CARGO_PKG_VERSION"))),
    );
    headers
}

/// Sends a request and reads the envelope; transport failures and 5xx are retryable.
async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Envelope, ConnectorError> {
    match send_reply(request, what).await? {
        Reply::Envelope(envelope) => Ok(envelope),
        Reply::Rowset(_) => Err(ConnectorError::internal(format!(
            "{what}: Snowflake answered with a result set"
        ))),
    }
}

/// An answer: a whole envelope, or a result whose inline rowset is still arriving.
enum Reply {
    /// The whole envelope (small answers, errors, answers without an inline rowset).
    Envelope(Envelope),
    /// The fields before `rowsetBase64` (the `rowtype` among them) and the rest to read.
    Rowset(Box<(QueryData, RowsetReader)>),
}

/// The bytes that open the inline rowset's value.
const ROWSET_KEY: &[u8] = b"\"rowsetBase64\"";

/// Sends a request and reads its answer. An answer holding `rowsetBase64` is not buffered:
/// the fields before it are parsed as soon as they arrived and the rowset is handed on as a
/// [`RowsetReader`], so an emulator that inlines a whole large result (fakesnow) still
/// streams in bounded memory.
async fn send_reply(request: reqwest::RequestBuilder, what: &str) -> Result<Reply, ConnectorError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| ConnectorError::connectivity(format!("{what}: {}", transport(&e))))?;
    let status = response.status();
    let mut head: Vec<u8> = Vec::new();
    let mut searched = 0;
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|e| ConnectorError::connectivity(format!("{what}: {}", transport(&e))))?
    {
        head.extend_from_slice(&piece);
        if !status.is_success() {
            continue;
        }
        let Some(start) = find_rowset_value(&head, searched) else {
            searched = head.len().saturating_sub(ROWSET_KEY.len() + 8);
            continue;
        };
        let rest = head.split_off(start);
        // `head` ends with `"rowsetBase64":"`: close it to read the fields before it.
        let mut prefix = head.clone();
        prefix.extend_from_slice(b"\"}}");
        let parsed = serde_json::from_slice::<Envelope>(&prefix)
            .ok()
            .and_then(|e| serde_json::from_value::<QueryData>(e.data).ok())
            .filter(|d| !d.rowtype.is_empty());
        match parsed {
            Some(data) => {
                let reader = RowsetReader {
                    response,
                    pending: rest,
                    head,
                    what: what.to_string(),
                };
                return Ok(Reply::Rowset(Box::new((data, reader))));
            }
            // Unexpected field order: buffer the whole answer instead.
            None => {
                head.extend_from_slice(&rest);
                searched = usize::MAX;
            }
        }
    }
    let envelope = serde_json::from_slice::<Envelope>(&head).ok();
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        let detail = envelope
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_default();
        let mut e = ConnectorError::connectivity(format!(
            "{what}: Snowflake answered HTTP {status} {detail}"
        ));
        if let Some(code) = envelope.as_ref().and_then(Envelope::code) {
            e = e.with_code(code);
        }
        return Err(e);
    }
    match envelope {
        Some(envelope) => Ok(Reply::Envelope(envelope)),
        None if status.as_u16() == 401 || status.as_u16() == 403 => Err(ConnectorError::new(
            ErrorKind::Auth,
            format!("{what}: Snowflake answered HTTP {status}"),
        )),
        None if status.is_success() => Err(ConnectorError::connectivity(format!(
            "{what}: the answer was cut off or is not a Snowflake answer"
        ))),
        None => Err(ConnectorError::internal(format!(
            "{what}: Snowflake answered HTTP {status} with a body that is not a Snowflake answer"
        ))),
    }
}

/// Where the value of `"rowsetBase64":"` starts in `body` (just after its opening quote),
/// searching from `from`. A quote inside a JSON string is escaped, so the unescaped key
/// followed by a colon only occurs as the key itself.
fn find_rowset_value(body: &[u8], from: usize) -> Option<usize> {
    if from == usize::MAX {
        return None;
    }
    let mut at = from;
    while let Some(i) = body
        .get(at..)?
        .windows(ROWSET_KEY.len())
        .position(|w| w == ROWSET_KEY)
    {
        let mut j = at + i + ROWSET_KEY.len();
        while body.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if body.get(j) == Some(&b':') {
            j += 1;
            while body.get(j).is_some_and(u8::is_ascii_whitespace) {
                j += 1;
            }
            return match body.get(j) {
                Some(b'"') => Some(j + 1),
                // The value (or the whitespace before it) has not arrived yet.
                None => None,
                Some(_) => None,
            };
        }
        if j >= body.len() {
            return None;
        }
        at = at + i + 1;
    }
    None
}

/// What a [`RowsetReader`] yields.
pub(crate) enum Piece {
    /// Decoded bytes of the inline Arrow IPC stream, in order.
    Ipc(Bytes),
    /// The fields after the rowset (chunks, total, …), merged with those before it.
    Tail(Box<QueryData>),
}

/// The inline rowset of an answer being read: base64 decoded piece by piece as it arrives.
pub(crate) struct RowsetReader {
    response: reqwest::Response,
    /// Base64 text received but not decoded yet (and, once the closing quote arrived, the
    /// JSON after it).
    pending: Vec<u8>,
    /// The answer up to the opening quote of the rowset.
    head: Vec<u8>,
    what: String,
}

impl RowsetReader {
    /// The next piece: decoded IPC bytes, then the tail once the rowset ended.
    pub(crate) async fn next(&mut self) -> Result<Piece, ConnectorError> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'"') {
                if end > 0 {
                    let text: Vec<u8> = self.pending.drain(..end).collect();
                    return self.decode(&text).map(Piece::Ipc);
                }
                // The closing quote: what follows is the rest of the envelope.
                let mut body = std::mem::take(&mut self.head);
                body.extend_from_slice(&self.pending);
                while let Some(piece) = self.read().await? {
                    body.extend_from_slice(&piece);
                }
                let envelope: Envelope = serde_json::from_slice(&body).map_err(|_| {
                    ConnectorError::connectivity(format!(
                        "{}: the answer was cut off after its rowset",
                        self.what
                    ))
                })?;
                if !envelope.success {
                    return Err(remote_error(&envelope, "the query failed"));
                }
                let data: QueryData = serde_json::from_value(envelope.data).map_err(|e| {
                    ConnectorError::internal(format!("the query answer is not understood: {e}"))
                })?;
                return Ok(Piece::Tail(Box::new(data)));
            }
            // No closing quote yet: everything pending is base64 (a JSON writer may escape `/`
            // as `\\/`).
            self.pending.retain(|b| *b != b'\\');
            let whole = self.pending.len() / 4 * 4;
            if whole >= 64 * 1024 {
                let text: Vec<u8> = self.pending.drain(..whole).collect();
                return self.decode(&text).map(Piece::Ipc);
            }
            match self.read().await? {
                Some(piece) => self.pending.extend_from_slice(&piece),
                None => {
                    return Err(ConnectorError::connectivity(format!(
                        "{}: the answer was cut off inside its rowset",
                        self.what
                    )))
                }
            }
        }
    }

    async fn read(&mut self) -> Result<Option<Bytes>, ConnectorError> {
        self.response
            .chunk()
            .await
            .map_err(|e| ConnectorError::connectivity(format!("{}: {}", self.what, transport(&e))))
    }

    fn decode(&self, text: &[u8]) -> Result<Bytes, ConnectorError> {
        use base64::Engine;
        let text: Vec<u8> = text.iter().copied().filter(|b| *b != b'\\').collect();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|e| {
                ConnectorError::connectivity(format!(
                    "{}: the inline rowset is not base64: {e}",
                    self.what
                ))
            })
    }
}

/// A transport error without its URL's query string (which may carry presigned credentials).
fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the answer"
    } else {
        "request failed"
    };
    match e.url() {
        Some(url) => format!(
            "{kind} ({}://{}{})",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None => kind.to_string(),
    }
}

/// The error a failed answer stands for, with Snowflake's message and code.
fn remote_error(envelope: &Envelope, during: &str) -> ConnectorError {
    let code = envelope.code();
    let message = envelope
        .message
        .clone()
        .unwrap_or_else(|| "Snowflake reported a failure without a message".to_string());
    let sql_state = envelope
        .data
        .get("sqlState")
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = match code.as_deref() {
        Some(c) if c.starts_with("390") => ErrorKind::Auth,
        Some("002003") | Some("002043") => ErrorKind::NotFound,
        Some("003001") | Some("003003") => ErrorKind::Permission,
        _ if sql_state.as_deref().is_some_and(|s| s.starts_with("08")) => ErrorKind::Connectivity,
        _ => ErrorKind::Query,
    };
    let mut e = ConnectorError::new(kind, format!("{during}: {message}"));
    if let Some(code) = code {
        e = e.with_code(code);
    }
    e
}

impl Session {
    /// How often a long read should send a heartbeat.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        self.heartbeat
    }

    fn token(&self) -> Secret {
        self.token
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Sends a request built by `build` with the session token; renews the token once when
    /// Snowflake says it expired.
    async fn authorized_reply(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client, HeaderValue) -> reqwest::RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        let reply = send_reply(build(&self.http, authorization(&self.token())?), what).await?;
        match &reply {
            Reply::Envelope(e) if !e.success && e.code().as_deref() == Some(SESSION_EXPIRED) => {
                self.renew().await?;
                send_reply(build(&self.http, authorization(&self.token())?), what).await
            }
            _ => Ok(reply),
        }
    }

    /// Like [`Session::authorized_reply`] for answers that never hold a result set.
    async fn authorized(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client, HeaderValue) -> reqwest::RequestBuilder,
    ) -> Result<Envelope, ConnectorError> {
        match self.authorized_reply(what, build).await? {
            Reply::Envelope(envelope) => Ok(envelope),
            Reply::Rowset(_) => Err(ConnectorError::internal(format!(
                "{what}: Snowflake answered with a result set"
            ))),
        }
    }

    /// Exchanges the master token for a new session token.
    async fn renew(&self) -> Result<(), ConnectorError> {
        let master = self
            .master
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorKind::Auth,
                    "the session expired and the login gave no master token to renew it",
                )
                .with_retryable(true)
            })?;
        let request = self
            .http
            .post(format!("{}/session/token-request", self.base))
            .headers(base_headers())
            .header(AUTHORIZATION, authorization(&master)?)
            .query(&[("requestId", request_id())])
            .timeout(SMALL_REQUEST_TIMEOUT)
            .json(&json!({ "oldSessionToken": self.token().expose(), "requestType": "RENEW" }));
        let envelope = send(request, "renewing the session token").await?;
        if !envelope.success {
            return Err(remote_error(&envelope, "renewing the session token").with_retryable(true));
        }
        let token = envelope
            .data
            .get("sessionToken")
            .and_then(Value::as_str)
            .ok_or_else(|| ConnectorError::internal("the token renewal holds no session token"))?;
        if let Ok(mut t) = self.token.lock() {
            *t = Secret::new(token);
        }
        if let Some(m) = envelope.data.get("masterToken").and_then(Value::as_str) {
            if let Ok(mut master) = self.master.lock() {
                *master = Some(Secret::new(m));
            }
        }
        tracing::debug!("snowflake session token renewed");
        Ok(())
    }

    /// Runs one statement and returns its answer, polling while Snowflake reports it in
    /// progress. `request_id` identifies the request for an abort.
    pub(crate) async fn query(
        &self,
        sql: &str,
        request_id_value: &str,
    ) -> Result<Answer, ConnectorError> {
        let sequence = {
            let mut s = self.sequence.lock().unwrap_or_else(|p| p.into_inner());
            *s += 1;
            *s
        };
        let submitted = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": sequence,
            "querySubmissionTime": submitted,
            "isInternal": false,
            "parameters": {},
        });
        let url = format!("{}/queries/v1/query-request", self.base);
        let mut reply = self
            .authorized_reply("running the query", |http, auth| {
                http.post(&url)
                    .headers(base_headers())
                    .header(AUTHORIZATION, auth)
                    .query(&[
                        ("requestId", request_id_value.to_string()),
                        ("request_guid", request_id()),
                    ])
                    .json(&body)
            })
            .await?;
        let mut wait = Duration::from_millis(50);
        loop {
            let envelope = match reply {
                Reply::Rowset(rowset) => {
                    let (data, reader) = *rowset;
                    return Ok(Answer {
                        data,
                        inline: Inline::Streaming(Box::new(reader)),
                    });
                }
                Reply::Envelope(envelope) => envelope,
            };
            if !matches!(
                envelope.code().as_deref(),
                Some(QUERY_IN_PROGRESS) | Some(QUERY_IN_PROGRESS_ASYNC)
            ) {
                if !envelope.success {
                    return Err(remote_error(&envelope, "the query failed"));
                }
                let mut data: QueryData = serde_json::from_value(envelope.data).map_err(|e| {
                    ConnectorError::internal(format!("the query answer is not understood: {e}"))
                })?;
                let inline = match data.rowset_base64.take() {
                    Some(b64) if !b64.is_empty() => {
                        use base64::Engine;
                        Bytes::from(
                            base64::engine::general_purpose::STANDARD
                                .decode(b64)
                                .map_err(|e| {
                                    ConnectorError::internal(format!(
                                        "the inline rowset is not base64: {e}"
                                    ))
                                })?,
                        )
                    }
                    _ => Bytes::new(),
                };
                return Ok(Answer {
                    data,
                    inline: Inline::Whole(inline),
                });
            }
            let data: QueryData = serde_json::from_value(envelope.data).unwrap_or_default();
            let path = match (&data.get_result_url, &data.query_id) {
                (Some(url), _) => url.clone(),
                (None, Some(id)) => format!("/queries/{id}/result"),
                (None, None) => {
                    return Err(ConnectorError::internal(
                        "Snowflake reported the query in progress without saying where to poll",
                    ))
                }
            };
            tracing::debug!(query_id = ?data.query_id, "snowflake query in progress");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let url = format!("{}{path}", self.base);
            reply = self
                .authorized_reply("waiting for the query", |http, auth| {
                    http.get(&url)
                        .headers(base_headers())
                        .header(AUTHORIZATION, auth)
                        .query(&[("requestId", request_id())])
                })
                .await?;
        }
    }

    /// Keeps the session alive during a long read.
    pub(crate) async fn heartbeat(&self) -> Result<(), ConnectorError> {
        let url = format!("{}/session/heartbeat", self.base);
        let envelope = self
            .authorized("sending a heartbeat", |http, auth| {
                http.post(&url)
                    .headers(base_headers())
                    .header(AUTHORIZATION, auth)
                    .query(&[("requestId", request_id())])
                    .timeout(SMALL_REQUEST_TIMEOUT)
            })
            .await?;
        if envelope.success {
            Ok(())
        } else {
            Err(remote_error(&envelope, "sending a heartbeat"))
        }
    }

    /// Asks Snowflake to stop the statement sent with `query_request_id`.
    pub(crate) async fn abort(&self, sql: &str, query_request_id: &str) {
        let url = format!("{}/queries/v1/abort-request", self.base);
        let body = json!({ "sqlText": sql, "requestId": query_request_id });
        let result = self
            .authorized("aborting the query", |http, auth| {
                http.post(&url)
                    .headers(base_headers())
                    .header(AUTHORIZATION, auth)
                    .query(&[("requestId", request_id())])
                    .timeout(SMALL_REQUEST_TIMEOUT)
                    .json(&body)
            })
            .await;
        match result {
            Ok(_) => tracing::info!(request_id = query_request_id, "snowflake query aborted"),
            Err(e) => tracing::warn!(error = %e, "aborting the snowflake query failed"),
        }
    }

    /// Logs out, so the session does not linger until it times out.
    pub(crate) async fn close(&self) {
        let url = format!("{}/session", self.base);
        let result = self
            .authorized("closing the session", |http, auth| {
                http.post(&url)
                    .headers(base_headers())
                    .header(AUTHORIZATION, auth)
                    .query(&[("delete", "true".to_string()), ("requestId", request_id())])
                    .timeout(SMALL_REQUEST_TIMEOUT)
            })
            .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "closing the snowflake session failed");
        }
    }
}

/// The headers a chunk download needs: the answer's `chunkHeaders`, or the SSE-C headers
/// built from `qrmk`.
pub(crate) fn chunk_headers(data: &QueryData) -> Result<HeaderMap, ConnectorError> {
    let mut headers = HeaderMap::new();
    let bad = |_| ConnectorError::internal("the answer holds a chunk header that is not valid");
    match (&data.chunk_headers, &data.qrmk) {
        (Some(given), _) if !given.is_empty() => {
            for (name, value) in given {
                let mut value = HeaderValue::from_str(value).map_err(|_| {
                    ConnectorError::internal("the answer holds a chunk header that is not valid")
                })?;
                value.set_sensitive(true);
                headers.insert(HeaderName::try_from(name.as_str()).map_err(bad)?, value);
            }
        }
        (_, Some(qrmk)) => {
            headers.insert(
                "x-amz-server-side-encryption-customer-algorithm",
                HeaderValue::from_static("AES256"),
            );
            let mut key = HeaderValue::from_str(qrmk).map_err(|_| {
                ConnectorError::internal("the answer holds a chunk key that is not valid")
            })?;
            key.set_sensitive(true);
            headers.insert("x-amz-server-side-encryption-customer-key", key);
        }
        _ => {}
    }
    Ok(headers)
}

/// Downloads one result chunk (retrying transient failures) and un-gzips it when needed.
pub(crate) async fn download_chunk(
    http: &reqwest::Client,
    index: usize,
    chunk: &ChunkInfo,
    headers: &HeaderMap,
) -> Result<Bytes, ConnectorError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match download_once(http, index, chunk, headers).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) if e.is_retryable() && attempt < CHUNK_ATTEMPTS => {
                tracing::warn!(chunk = index, attempt, error = %e, "retrying a result chunk");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn download_once(
    http: &reqwest::Client,
    index: usize,
    chunk: &ChunkInfo,
    headers: &HeaderMap,
) -> Result<Bytes, ConnectorError> {
    let what = format!("downloading result chunk {index}");
    let response = http
        .get(&chunk.url)
        .headers(headers.clone())
        .timeout(CHUNK_TIMEOUT)
        .send()
        .await
        .map_err(|e| ConnectorError::connectivity(format!("{what}: {}", transport(&e))))?;
    let status = response.status();
    if !status.is_success() {
        // An expired presigned URL (403) is cured by running the query again.
        return Err(ConnectorError::connectivity(format!(
            "{what}: the chunk store answered HTTP {status}"
        ))
        .with_retryable(
            status.is_server_error() || status.as_u16() == 403 || status.as_u16() == 429,
        ));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| ConnectorError::connectivity(format!("{what}: {}", transport(&e))))?;
    if body.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::with_capacity(body.len() * 4);
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                ConnectorError::connectivity(format!("{what}: the gzip stream is damaged: {e}"))
            })?;
        return Ok(Bytes::from(out));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(json: &str) -> Option<String> {
        serde_json::from_str::<Envelope>(json).unwrap().code()
    }

    #[test]
    fn error_codes_read_as_six_digits_from_strings_and_numbers() {
        assert_eq!(code_of(r#"{"code": "390100"}"#).as_deref(), Some("390100"));
        assert_eq!(code_of(r#"{"code": "002003"}"#).as_deref(), Some("002003"));
        assert_eq!(code_of(r#"{"code": 2003}"#).as_deref(), Some("002003"));
        assert_eq!(code_of(r#"{"code": 390100}"#).as_deref(), Some("390100"));
        assert_eq!(code_of(r#"{"success": true}"#), None);
    }
}

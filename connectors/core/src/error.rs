//! The one error type every connector returns.
//!
//! The engine and the control plane decide what to do with a failure (retry the run, reject a
//! row, tell the user to fix a definition) from the `kind` and `retryable` flag alone, so every
//! connector classifies its errors here instead of leaking driver error types upward.

use std::fmt;

/// What went wrong, coarse enough for callers to act on without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The connection or sync definition is malformed; fixing the definition is the only cure.
    Config,
    /// The credentials were refused.
    Auth,
    /// The system could not be reached or the connection dropped; usually worth a retry.
    Connectivity,
    /// The credentials work but lack a privilege the operation needs.
    Permission,
    /// A table, column, key or type does not fit what the sync expects.
    Schema,
    /// A value could not be represented or was refused by the destination.
    Data,
    /// The source rejected the query (syntax error, unknown relation, …).
    Query,
    /// The named object does not exist.
    NotFound,
    /// A bug or an unexpected answer from the remote system.
    Internal,
}

impl ErrorKind {
    /// Stable lowercase name used in API error details and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Auth => "auth",
            ErrorKind::Connectivity => "connectivity",
            ErrorKind::Permission => "permission",
            ErrorKind::Schema => "schema",
            ErrorKind::Data => "data",
            ErrorKind::Query => "query",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Internal => "internal",
        }
    }

    /// Only losing the connection is transient by default; everything else needs a human.
    fn retryable_by_default(self) -> bool {
        matches!(self, ErrorKind::Connectivity)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connector failure with enough context (field, column, key, remote code) for a user to
/// find the offending definition or row without reading logs.
///
/// Messages never contain secret values: connectors build them from redacted inputs.
///
/// The fields live behind one `Box` so a `Result<T, ConnectorError>` stays pointer-sized on
/// the happy path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: ErrorKind,
    message: String,
    retryable: bool,
    field: Option<String>,
    column: Option<String>,
    key: Option<String>,
    code: Option<String>,
}

impl ConnectorError {
    /// A new error of `kind`; retryable only for connectivity failures unless overridden.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            retryable: kind.retryable_by_default(),
            field: None,
            column: None,
            key: None,
            code: None,
        }))
    }

    /// Shorthand for a malformed definition naming the offending config `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message).with_field(field)
    }

    /// Shorthand for a schema mismatch on `column`.
    pub fn schema(column: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Schema, message).with_column(column)
    }

    /// Shorthand for a value problem on `column`.
    pub fn data(column: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, message).with_column(column)
    }

    /// Shorthand for a lost or refused connection (retryable).
    pub fn connectivity(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connectivity, message)
    }

    /// Shorthand for a bug or an unexpected remote answer.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Names the config field (dotted path) the error is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    /// Names the column the error is about.
    pub fn with_column(mut self, column: impl Into<String>) -> Self {
        self.0.column = Some(column.into());
        self
    }

    /// Names the primary key (rendered for humans) of the row the error is about.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.0.key = Some(key.into());
        self
    }

    /// Carries the remote system's own error code (for example a SQLSTATE).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.0.code = Some(code.into());
        self
    }

    /// Replaces the message and keeps everything else, so a connector can scrub a driver's
    /// message (a resolved secret echoed back) without losing the kind, code or retryability.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.0.message = message.into();
        self
    }

    /// Overrides whether a retry of the whole run may succeed.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.0.retryable = retryable;
        self
    }

    /// Prefixes the message with what was being done, keeping kind and context.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.0.message = format!("{what}: {}", self.0.message);
        self
    }

    /// The coarse class of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The human message, without the context fields.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Whether retrying the run may succeed without a human changing anything.
    pub fn is_retryable(&self) -> bool {
        self.0.retryable
    }

    /// The config field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// The column the error is about, if any.
    pub fn column(&self) -> Option<&str> {
        self.0.column.as_deref()
    }

    /// The primary key of the offending row, if any.
    pub fn key(&self) -> Option<&str> {
        self.0.key.as_deref()
    }

    /// The remote system's error code, if any.
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error", self.0.kind)?;
        if let Some(field) = &self.0.field {
            write!(f, " in field `{field}`")?;
        }
        if let Some(column) = &self.0.column {
            write!(f, " on column `{column}`")?;
        }
        if let Some(key) = &self.0.key {
            write!(f, " for key {key}")?;
        }
        write!(f, ": {}", self.0.message)?;
        if let Some(code) = &self.0.code {
            write!(f, " (code {code})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectorError {}

impl From<arrow::error::ArrowError> for ConnectorError {
    fn from(e: arrow::error::ArrowError) -> Self {
        ConnectorError::new(ErrorKind::Data, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_context_field() {
        let e = ConnectorError::data("ltv", "value out of range")
            .with_key("(42)")
            .with_code("22003");
        assert_eq!(
            e.to_string(),
            "data error on column `ltv` for key (42): value out of range (code 22003)"
        );
        assert!(!e.is_retryable());
        assert!(ConnectorError::connectivity("reset").is_retryable());
    }
}

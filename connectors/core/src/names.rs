//! Destination names (tables, collections, columns) checked against what each database can
//! hold exactly, and the quoting of user-written values in messages.
//!
//! A database that silently truncates or rewrites a name makes two definitions that differ
//! only past its limit write into the same object, so every destination refuses such names
//! up front, both when a sync is defined and before each run writes. And a refused value
//! can be huge (a 1 MB table name), so messages quote at most [`QUOTE_LIMIT`] bytes of it.

use crate::error::{ConnectorError, ErrorKind};

/// Most bytes of a user-written value an error message quotes; enough to recognise the value,
/// short enough that a huge one does not flood an API status, a log line or a terminal.
pub const QUOTE_LIMIT: usize = 200;

/// `value` in backticks for a message; a value longer than [`QUOTE_LIMIT`] bytes is cut on a
/// character boundary, followed by an ellipsis and its total length, so the reader still
/// learns how long it was.
pub fn quoted(value: &str) -> String {
    if value.len() <= QUOTE_LIMIT {
        format!("`{value}`")
    } else {
        format!("`{}` ({} bytes)", abbreviated(value), value.len())
    }
}

/// `value` cut to at most [`QUOTE_LIMIT`] bytes on a character boundary, with an ellipsis
/// when cut, for the places that carry a value without quotes (an error's column).
pub fn abbreviated(value: &str) -> std::borrow::Cow<'_, str> {
    abbreviated_to(value, QUOTE_LIMIT)
}

/// `text` cut to at most `limit` bytes on a character boundary, with an ellipsis when cut: the
/// last guard of a message that may have quoted something huge without [`quoted`].
pub fn abbreviated_to(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= limit {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

/// Which name of a sync's destination a [`NameError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePart {
    /// The table or collection (`destination.object`).
    Object,
    /// A destination column (or document field), as named after mappings.
    Column(String),
}

/// A destination name the database cannot hold exactly as written. Callers map the part to
/// the field the user wrote (`destination.object`, `mappings[2].to`, `primary_key[0]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NameError {
    /// The object or the column at fault.
    pub part: NamePart,
    /// Why, quoting the name through [`quoted`].
    pub message: String,
}

impl NameError {
    /// A refused table or collection name.
    pub fn object(message: impl Into<String>) -> Self {
        Self {
            part: NamePart::Object,
            message: message.into(),
        }
    }

    /// A refused column name.
    pub fn column(name: &str, message: impl Into<String>) -> Self {
        Self {
            part: NamePart::Column(name.to_owned()),
            message: message.into(),
        }
    }
}

/// The field a refused object name is reported under at run time, as the sync definition
/// names it.
pub const OBJECT_FIELD: &str = "destination.object";

impl From<NameError> for ConnectorError {
    /// A definition error: retrying cannot help, only renaming can. A column error names the
    /// column (cut like [`abbreviated`], as the message quotes it).
    fn from(e: NameError) -> Self {
        match e.part {
            NamePart::Object => ConnectorError::config(OBJECT_FIELD, e.message),
            NamePart::Column(name) => ConnectorError::new(ErrorKind::Config, e.message)
                .with_column(abbreviated(&name).into_owned()),
        }
    }
}

/// Refuses names a destination can never hold: empty, or containing NUL (which C-string
/// based servers cut the name at). `what` says which kind of name (`table name`).
pub fn check_not_empty_or_nul(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if name.contains('\0') {
        return Err(format!(
            "the {what} {} contains a NUL character",
            quoted(name)
        ));
    }
    Ok(())
}

/// Refuses a name longer than `limit` bytes, saying by how much, so a name is never
/// truncated into another one.
pub fn check_max_bytes(name: &str, what: &str, limit: usize) -> Result<(), String> {
    if name.len() > limit {
        return Err(format!(
            "the {what} {} is {} bytes long; the limit is {limit} bytes, and a longer name \
             would be truncated into another one",
            quoted(name),
            name.len()
        ));
    }
    Ok(())
}

/// Refuses a name longer than `limit` characters (MySQL counts characters, not bytes).
pub fn check_max_chars(name: &str, what: &str, limit: usize) -> Result<(), String> {
    let chars = name.chars().count();
    if chars > limit {
        return Err(format!(
            "the {what} {} is {chars} characters long; the limit is {limit} characters",
            quoted(name)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quoted("public.t"), "`public.t`");
        assert_eq!(quoted(""), "``");
        let exactly = "a".repeat(QUOTE_LIMIT);
        assert_eq!(quoted(&exactly), format!("`{exactly}`"));
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis_and_their_length() {
        let huge = "x".repeat(1 << 20);
        let q = quoted(&huge);
        assert_eq!(q, format!("`{}…` (1048576 bytes)", "x".repeat(QUOTE_LIMIT)));
        assert!(q.len() < QUOTE_LIMIT + 40, "{}", q.len());
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        // 'é' is two bytes: byte QUOTE_LIMIT falls inside one when the value starts with 'a'.
        let value = format!("a{}", "é".repeat(QUOTE_LIMIT));
        let q = quoted(&value);
        let inner = q.trim_start_matches('`').split('…').next().unwrap();
        assert_eq!(inner.len(), QUOTE_LIMIT - 1);
        assert!(q.ends_with(&format!("({} bytes)", value.len())), "{q}");
    }

    #[test]
    fn limits_say_by_how_much_and_quote_briefly() {
        let name = "t".repeat(64);
        let e = check_max_bytes(&name, "table name", 63).unwrap_err();
        assert!(e.contains("64 bytes long; the limit is 63 bytes"), "{e}");
        assert!(check_max_bytes(&"t".repeat(63), "table name", 63).is_ok());
        let e = check_max_bytes(&"t".repeat(1 << 20), "table name", 63).unwrap_err();
        assert!(e.len() < 400, "{}", e.len());
        assert!(check_max_chars(&"é".repeat(64), "column name", 64).is_ok());
        assert!(check_max_chars(&"é".repeat(65), "column name", 64).is_err());
        assert_eq!(
            check_not_empty_or_nul("", "table name").unwrap_err(),
            "the table name is empty"
        );
        assert!(check_not_empty_or_nul("a\0b", "table name")
            .unwrap_err()
            .contains("NUL"));
    }

    #[test]
    fn name_errors_become_config_errors_naming_field_or_column() {
        let e: ConnectorError = NameError::object("too long").into();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(e.field(), Some(OBJECT_FIELD));
        assert!(!e.is_retryable());
        let e: ConnectorError = NameError::column("ltv", "too long").into();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(e.column(), Some("ltv"));
        let long = "c".repeat(5000);
        let e: ConnectorError = NameError::column(&long, "too long").into();
        assert_eq!(
            e.column(),
            Some(format!("{}…", "c".repeat(QUOTE_LIMIT)).as_str())
        );
    }
}

//! Where a lease says its snapshots live: a directory path or a `file://` URL.
//!
//! Only local directories are supported for now; an object-store URL (`s3://`, `gs://`, …) is
//! refused with an error that names only the scheme, because such a URL may carry credentials.

use std::path::PathBuf;

use crate::runner::failure::LeaseError;

/// Resolves a snapshot store location (`lease.snapshot_store`, or the control plane's
/// setting) to the local directory that holds the snapshots; one parser, so the worker and
/// the control plane's dry runs always open the same place.
pub fn snapshot_dir(location: &str) -> Result<PathBuf, LeaseError> {
    let location = location.trim();
    if location.is_empty() {
        return Err(LeaseError::invalid_lease(
            "snapshot_store",
            "is empty; expected a directory path or a file:// URL",
        ));
    }
    let Some((scheme, rest)) = split_scheme(location) else {
        return Ok(PathBuf::from(location));
    };
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(LeaseError::UnsupportedSnapshotStore {
            scheme: scheme.to_ascii_lowercase(),
        });
    }
    // `file:///abs/dir` or `file://localhost/abs/dir`; any other host is another machine.
    let path = if rest.starts_with('/') {
        rest
    } else if let Some(path) = rest.strip_prefix("localhost") {
        path
    } else {
        return Err(LeaseError::invalid_lease(
            "snapshot_store",
            "a file:// URL must name a local absolute path (file:///dir)",
        ));
    };
    if path.is_empty() {
        return Err(LeaseError::invalid_lease(
            "snapshot_store",
            "the file:// URL has no path",
        ));
    }
    let decoded = percent_decode(path).ok_or_else(|| {
        LeaseError::invalid_lease("snapshot_store", "the file:// URL has a bad %-escape")
    })?;
    Ok(PathBuf::from(decoded))
}

/// Splits `scheme://rest`; `None` when `location` is not a URL (a plain or Windows path).
fn split_scheme(location: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = location.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_directories() {
        assert_eq!(
            snapshot_dir("/var/lib/backflow/snapshots").unwrap(),
            PathBuf::from("/var/lib/backflow/snapshots")
        );
        assert_eq!(
            snapshot_dir("./state/snapshots").unwrap(),
            PathBuf::from("./state/snapshots")
        );
        assert_eq!(
            snapshot_dir(r"C:\backflow\snapshots").unwrap(),
            PathBuf::from(r"C:\backflow\snapshots")
        );
    }

    #[test]
    fn file_urls_are_local_directories() {
        assert_eq!(
            snapshot_dir("file:///var/lib/backflow").unwrap(),
            PathBuf::from("/var/lib/backflow")
        );
        assert_eq!(
            snapshot_dir("FILE://localhost/srv/snap").unwrap(),
            PathBuf::from("/srv/snap")
        );
        assert_eq!(
            snapshot_dir("file:///srv/my%20snapshots").unwrap(),
            PathBuf::from("/srv/my snapshots")
        );
    }

    #[test]
    fn object_store_urls_are_refused_naming_only_the_scheme() {
        let e = snapshot_dir("s3://AKIAEXAMPLE:secret@bucket/prefix").unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("snapshot store URL scheme not supported"),
            "{message}"
        );
        assert!(message.contains("`s3`"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert!(!e.is_retryable());
        assert!(snapshot_dir("gs://bucket").is_err());
        assert!(snapshot_dir("http://example.com/x").is_err());
    }

    #[test]
    fn malformed_locations_name_the_field() {
        for bad in ["", "   ", "file://", "file://otherhost/dir", "file:///a%zz"] {
            let e = snapshot_dir(bad).unwrap_err();
            assert!(e.to_string().contains("snapshot_store"), "{bad}: {e}");
            assert!(!e.is_retryable(), "{bad}");
        }
    }
}

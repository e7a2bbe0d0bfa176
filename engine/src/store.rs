//! Where snapshots and write journals live: one object store, named by a location string that
//! the worker, the control plane (dry runs, garbage collection) and `backflow run` all parse
//! here, so they always open the same place.
//!
//! A location is one of:
//!
//! * a directory path, or a `file://` URL naming a local absolute path;
//! * `s3://BUCKET[/PREFIX]` (Amazon S3 or any S3-compatible server);
//! * `gs://BUCKET[/PREFIX]` (Google Cloud Storage);
//! * `az://CONTAINER[/PREFIX]` or `azure://CONTAINER[/PREFIX]` (Azure Blob Storage).
//!
//! An object-store URL names only the bucket and a prefix inside it: every object of the store
//! lives under `PREFIX/`, so several deployments can share a bucket. Credentials, region and
//! endpoint come from each cloud's standard environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`…;
//! `GOOGLE_SERVICE_ACCOUNT`…; `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`…), read
//! by `object_store`'s builders, so the location itself is never a secret: it travels in
//! leases, logs and error messages. A URL that carries credentials anyway (`s3://key:secret@…`)
//! or a query string (where SAS tokens go) is refused, and no error ever quotes the location:
//! errors name its scheme and say what is wrong.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::error::EngineError;

/// The folder of the store that holds one folder per sync (`syncs/<sync>/`): its snapshots
/// (`<run>.parquet`) and its write journal (`journal/`).
pub const SYNCS_FOLDER: &str = "syncs";

/// A snapshot-store location that cannot be used. Messages never quote the location itself,
/// which may hold credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// The location is malformed.
    #[error("snapshot store location {0}")]
    Invalid(String),
    /// The location is a URL whose scheme this build cannot open.
    #[error(
        "snapshot store URL scheme not supported: `{scheme}` (use a directory path, a file:// \
         URL, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX)"
    )]
    Unsupported {
        /// The URL's scheme, lowercased.
        scheme: String,
    },
    /// The object store cannot be configured from the environment (a missing Azure account,
    /// an unparsable setting…). The message is `object_store`'s, with the user part of any URL
    /// in it masked.
    #[error("cannot configure the `{scheme}` snapshot store: {message}")]
    Configuration {
        /// The location's scheme, lowercased.
        scheme: String,
        /// What is wrong.
        message: String,
    },
}

/// Where snapshots live: any `object_store` backend; a local directory by default.
#[derive(Clone)]
pub struct SnapshotStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// What the store is, for `Debug`: the location without anything secret, since the
    /// backends' own `Debug` can print credentials (a GCS bearer token, an Azure SAS token).
    label: Arc<str>,
}

impl fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("location", &self.label)
            .finish_non_exhaustive()
    }
}

/// One object of the store, as a listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Object path inside the snapshot store (the form [`crate::SnapshotRef::path`] uses).
    pub path: String,
    /// When the object was last written, by the storage's own clock.
    pub last_modified: SystemTime,
    /// Size in bytes.
    pub size: u64,
}

impl From<ObjectMeta> for StoredObject {
    fn from(meta: ObjectMeta) -> Self {
        Self {
            path: meta.location.to_string(),
            last_modified: meta.last_modified.into(),
            size: meta.size,
        }
    }
}

/// One level of the store under a folder: the objects directly in it and its sub-folders, so
/// a caller can walk the tree without ever reading a sub-folder it must not touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Objects directly in the folder.
    pub objects: Vec<StoredObject>,
    /// Paths of the folders directly in it (`syncs/a`, `syncs/b`).
    pub folders: Vec<String>,
}

impl SnapshotStore {
    /// Wraps any object store (S3, GCS, Azure, memory…).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        let label = format!("{store}").into();
        Self { store, label }
    }

    /// Opens the store at `location` (see the module docs), configured from the environment.
    /// No network I/O happens here: a wrong bucket or credential shows on the first read or
    /// write.
    pub fn open(location: &str) -> Result<Self, EngineError> {
        Self::open_with_options(location, std::iter::empty::<(&str, &str)>())
    }

    /// [`Self::open`] with object-store settings on top of the environment's, keyed as the
    /// environment variables are (`AWS_ENDPOINT_URL`, `aws_allow_http`…, any case): for callers
    /// whose settings do not come from the process environment, such as tests against a local
    /// S3 server. Ignored for local directories. Credentials are never echoed in errors: only
    /// switches and numbers are parsed, and only a malformed one is quoted.
    pub fn open_with_options<K, V>(
        location: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, EngineError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        match parse_location(location)? {
            Location::Local(dir) => Self::local(dir),
            Location::Cloud(cloud) => {
                let options = options
                    .into_iter()
                    .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
                    .collect();
                let store = cloud.build(options)?;
                tracing::debug!(
                    scheme = %cloud.scheme,
                    bucket = %cloud.bucket,
                    prefix = %cloud.prefix,
                    "snapshot store opened"
                );
                Ok(Self {
                    store,
                    label: cloud.to_string().into(),
                })
            }
        }
    }

    /// A store in a local directory, created if missing.
    pub fn local(dir: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::Snapshot(format!("cannot create {}: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| EngineError::Snapshot(e.to_string()))?;
        Ok(Self {
            store: Arc::new(fs),
            label: format!("local directory {}", dir.display()).into(),
        })
    }

    /// Deletes one object; an object already gone is not an error.
    pub(crate) async fn delete_object(&self, path: &Path) -> Result<(), EngineError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(EngineError::Snapshot(format!("cannot delete {path}: {e}"))),
        }
    }

    /// Deletes the object at `path` (as listings report it); an object already gone is not an
    /// error. For garbage collection: runs delete their own objects through typed handles.
    pub async fn delete_path(&self, path: &str) -> Result<(), EngineError> {
        self.delete_object(&object_path(path)).await
    }

    /// The objects and folders directly in `folder` (`""` for the top), without descending
    /// into sub-folders.
    pub async fn list_folder(&self, folder: &str) -> Result<Listing, EngineError> {
        let prefix = object_path(folder);
        let prefix = (!folder.is_empty()).then_some(&prefix);
        let listed = self
            .store
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| EngineError::Snapshot(format!("cannot list {folder}/: {e}")))?;
        Ok(Listing {
            objects: listed.objects.into_iter().map(StoredObject::from).collect(),
            folders: listed
                .common_prefixes
                .into_iter()
                .map(|p| p.to_string())
                .collect(),
        })
    }

    /// Every object under `folder`, at any depth, in no particular order.
    pub async fn list_all(&self, folder: &str) -> Result<Vec<StoredObject>, EngineError> {
        let prefix = object_path(folder);
        let prefix = (!folder.is_empty()).then_some(&prefix);
        self.store
            .list(prefix)
            .map_ok(StoredObject::from)
            .try_collect()
            .await
            .map_err(|e| EngineError::Snapshot(format!("cannot list {folder}/: {e}")))
    }
}

/// The folder holding a sync's snapshots and journal, named as the engine names it when it
/// writes them.
pub fn sync_folder(sync: &str) -> String {
    format!("{SYNCS_FOLDER}/{}", crate::snapshot::path_safe(sync))
}

/// A path string as the store spells it: listings return valid paths; anything else is
/// encoded part by part.
fn object_path(path: &str) -> Path {
    Path::parse(path).unwrap_or_else(|_| Path::from(path))
}

/// The same location with a relative directory made absolute, for handing to processes that
/// may run elsewhere; URLs are returned unchanged. The location is checked as
/// [`SnapshotStore::open`] checks it, so one that every worker would refuse is refused here
/// first; the object store's settings are not, since each process reads its own environment.
pub fn absolute_location(location: &str) -> Result<String, EngineError> {
    let trimmed = location.trim();
    let parsed = parse_location(trimmed)?;
    if split_scheme(trimmed).is_some() {
        return Ok(trimmed.to_owned());
    }
    let Location::Local(dir) = parsed else {
        return Err(EngineError::Internal(
            "a location without a scheme parsed as a URL".into(),
        ));
    };
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(|e| EngineError::Snapshot(format!("no current directory: {e}")))?
            .join(dir)
    };
    Ok(dir.display().to_string())
}

/// A parsed location.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// A local directory.
    Local(PathBuf),
    /// A bucket (or container) and a prefix in an object store.
    Cloud(CloudLocation),
}

/// The object stores a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    S3,
    Gcs,
    Azure,
}

impl Cloud {
    fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "s3" => Some(Cloud::S3),
            "gs" => Some(Cloud::Gcs),
            "az" | "azure" => Some(Cloud::Azure),
            _ => None,
        }
    }

    /// What the URL's host names.
    fn bucket_word(self) -> &'static str {
        match self {
            Cloud::S3 | Cloud::Gcs => "bucket",
            Cloud::Azure => "container",
        }
    }

    /// The environment variables that hold this store's settings, for messages.
    fn credentials_hint(self) -> &'static str {
        match self {
            Cloud::S3 => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            Cloud::Gcs => "GOOGLE_SERVICE_ACCOUNT (or GOOGLE_APPLICATION_CREDENTIALS)",
            Cloud::Azure => "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY",
        }
    }
}

/// An object-store URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CloudLocation {
    cloud: Cloud,
    /// The scheme as written, lowercased (`az` and `azure` are the same store).
    scheme: String,
    bucket: String,
    /// Where the store's objects live inside the bucket; empty for the bucket's root.
    prefix: Path,
}

impl fmt::Display for CloudLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}/{}", self.scheme, self.bucket, self.prefix)
    }
}

impl CloudLocation {
    /// Builds the store from the environment, `options` on top, scoped to the prefix.
    fn build(&self, options: Vec<(String, String)>) -> Result<Arc<dyn ObjectStore>, LocationError> {
        let fail = |e: object_store::Error| LocationError::Configuration {
            scheme: self.scheme.clone(),
            message: redact_userinfo(&e.to_string()),
        };
        // Option keys are parsed as the builders parse environment variable names; a key is
        // never a secret, so it may be named, while its value is not. The three builders share
        // this shape but no trait, hence the macro.
        macro_rules! configured {
            ($builder:expr, $with_bucket:ident) => {{
                let mut builder = $builder;
                for (key, value) in options {
                    builder = builder.with_config(key.parse().map_err(fail)?, value);
                }
                Arc::new(builder.$with_bucket(&self.bucket).build().map_err(fail)?)
            }};
        }
        let store: Arc<dyn ObjectStore> = match self.cloud {
            Cloud::S3 => configured!(AmazonS3Builder::from_env(), with_bucket_name),
            Cloud::Gcs => configured!(GoogleCloudStorageBuilder::from_env(), with_bucket_name),
            Cloud::Azure => configured!(MicrosoftAzureBuilder::from_env(), with_container_name),
        };
        Ok(if self.prefix.as_ref().is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, self.prefix.clone()))
        })
    }
}

/// Parses a location (see the module docs) without opening anything.
fn parse_location(location: &str) -> Result<Location, LocationError> {
    let location = location.trim();
    if location.is_empty() {
        return Err(LocationError::Invalid(
            "is empty; expected a directory path or a file://, s3://, gs:// or az:// URL".into(),
        ));
    }
    let Some((scheme, rest)) = split_scheme(location) else {
        return Ok(Location::Local(PathBuf::from(location)));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        return file_url_dir(rest).map(Location::Local);
    }
    let cloud = Cloud::from_scheme(&scheme).ok_or(LocationError::Unsupported {
        scheme: scheme.clone(),
    })?;
    parse_cloud_url(cloud, scheme, location).map(Location::Cloud)
}

/// `file:///abs/dir` or `file://localhost/abs/dir`; any other host is another machine.
fn file_url_dir(rest: &str) -> Result<PathBuf, LocationError> {
    let path = if rest.starts_with('/') {
        rest
    } else if let Some(path) = rest.strip_prefix("localhost") {
        path
    } else {
        return Err(LocationError::Invalid(
            "must name a local absolute path when it is a file:// URL (file:///dir)".into(),
        ));
    };
    if path.is_empty() {
        return Err(LocationError::Invalid(
            "is a file:// URL with no path".into(),
        ));
    }
    let decoded = percent_decode(path)
        .ok_or_else(|| LocationError::Invalid("is a file:// URL with a bad %-escape".into()))?;
    Ok(PathBuf::from(decoded))
}

/// Takes an object-store URL apart: the host is the bucket, the path the prefix. Every error
/// is a fixed sentence naming the scheme, never a part of the URL.
fn parse_cloud_url(
    cloud: Cloud,
    scheme: String,
    location: &str,
) -> Result<CloudLocation, LocationError> {
    let bucket_word = cloud.bucket_word();
    let invalid = |what: String| LocationError::Invalid(format!("is a {scheme}:// URL {what}"));
    // The authority is looked at before the URL parser sees it: a malformed URL with
    // credentials must still be refused for holding them, and `url`'s errors are not needed.
    let after_scheme = &location[scheme.len() + 3..];
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    if after_scheme[..authority_end].contains('@') {
        return Err(invalid(format!(
            "with credentials in it; give them in the environment instead ({})",
            cloud.credentials_hint()
        )));
    }
    let url = url::Url::parse(location).map_err(|_| {
        invalid(format!(
            "that cannot be parsed; expected {scheme}://{bucket_word}/prefix"
        ))
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "with a query or a fragment; settings and credentials go in the environment".into(),
        ));
    }
    if url.port().is_some() {
        return Err(invalid(format!(
            "with a port; name the {bucket_word} only (an endpoint goes in the environment, \
             e.g. AWS_ENDPOINT_URL)"
        )));
    }
    let bucket = url.host_str().unwrap_or_default();
    if bucket.is_empty() {
        return Err(invalid(format!("with no {bucket_word}")));
    }
    let bucket = percent_decode(bucket)
        .filter(|b| {
            b.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .ok_or_else(|| {
            invalid(format!(
                "whose {bucket_word} name has characters no {bucket_word} name has"
            ))
        })?;
    let mut parts = Vec::new();
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.into_iter().enumerate() {
        // One trailing slash is allowed: `s3://bucket/prefix/`.
        if segment.is_empty() && i == last {
            continue;
        }
        let part = percent_decode(segment).ok_or_else(|| invalid("with a bad %-escape".into()))?;
        if part.is_empty()
            || part == "."
            || part == ".."
            || part
                .chars()
                .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return Err(invalid(
                "whose prefix has an empty, `.` or `..` segment, or an encoded slash".into(),
            ));
        }
        parts.push(part);
    }
    let prefix = Path::from_iter(parts);
    Ok(CloudLocation {
        cloud,
        scheme,
        bucket,
        prefix,
    })
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

/// `text` with the user part (`user:password@`) of every URL in it replaced by `***@`, for
/// messages that quote a library's error, which may quote a URL from the environment.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | ')' | '>' | ',')
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(user_end) => {
                out.push_str("***");
                out.push_str(&authority[user_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(location: &str) -> PathBuf {
        match parse_location(location).unwrap() {
            Location::Local(dir) => dir,
            other => panic!("{location} parsed as {other:?}"),
        }
    }

    fn cloud(location: &str) -> CloudLocation {
        match parse_location(location) {
            Ok(Location::Cloud(cloud)) => cloud,
            other => panic!("{location} parsed as {other:?}"),
        }
    }

    #[test]
    fn plain_paths_are_directories() {
        assert_eq!(
            local("/var/lib/backflow/snapshots"),
            PathBuf::from("/var/lib/backflow/snapshots")
        );
        assert_eq!(
            local("./state/snapshots"),
            PathBuf::from("./state/snapshots")
        );
        assert_eq!(
            local(r"C:\backflow\snapshots"),
            PathBuf::from(r"C:\backflow\snapshots")
        );
    }

    #[test]
    fn file_urls_are_local_directories() {
        assert_eq!(
            local("file:///var/lib/backflow"),
            PathBuf::from("/var/lib/backflow")
        );
        assert_eq!(
            local("FILE://localhost/srv/snap"),
            PathBuf::from("/srv/snap")
        );
        assert_eq!(
            local("file:///srv/my%20snapshots"),
            PathBuf::from("/srv/my snapshots")
        );
    }

    #[test]
    fn object_store_urls_name_a_bucket_and_a_prefix() {
        let s3 = cloud("s3://team-bucket/backflow/prod");
        assert_eq!(s3.cloud, Cloud::S3);
        assert_eq!(s3.bucket, "team-bucket");
        assert_eq!(s3.prefix.as_ref(), "backflow/prod");
        assert_eq!(s3.to_string(), "s3://team-bucket/backflow/prod");

        // No prefix, or a trailing slash, or upper-case schemes.
        assert_eq!(cloud("s3://bucket").prefix.as_ref(), "");
        assert_eq!(cloud("s3://bucket/").prefix.as_ref(), "");
        assert_eq!(cloud("S3://bucket/snaps/").prefix.as_ref(), "snaps");

        let gs = cloud("gs://my.bucket/a%20b/c");
        assert_eq!((gs.cloud, gs.bucket.as_str()), (Cloud::Gcs, "my.bucket"));
        assert_eq!(gs.prefix.parts().count(), 2);

        for azure in ["az://snapshots/backflow", "azure://snapshots/backflow"] {
            let az = cloud(azure);
            assert_eq!((az.cloud, az.bucket.as_str()), (Cloud::Azure, "snapshots"));
            assert_eq!(az.prefix.as_ref(), "backflow");
        }
    }

    #[test]
    fn malformed_object_store_urls_say_what_is_wrong() {
        for (bad, expect) in [
            ("s3://", "no bucket"),
            ("s3:///prefix", "no bucket"),
            ("az:///prefix", "no container"),
            ("s3://bucket/a//b", "empty"),
            ("s3://bucket/a/%2Fb", "encoded slash"),
            ("s3://bucket/a%zz", "bad %-escape"),
            ("s3://bucket:9000/p", "port"),
            ("s3://bucket/p?region=eu-west-1", "query"),
            ("gs://bucket/p#frag", "query or a fragment"),
            ("s3://buc%20ket/p", "characters"),
        ] {
            let e = parse_location(bad).unwrap_err();
            assert!(matches!(e, LocationError::Invalid(_)), "{bad}: {e}");
            let message = e.to_string();
            assert!(message.contains(expect), "{bad}: {message}");
        }
    }

    #[test]
    fn credentials_in_urls_are_refused_and_never_echoed() {
        for url in [
            "s3://AKIAEXAMPLE:wJalrXUtnFEMIsecret@bucket/prefix",
            "s3://AKIAEXAMPLE:wJalrXUtnFEMIsecret@bucket:99999/bad port",
            "gs://user:wJalrXUtnFEMIsecret@bucket",
            "azure://account:wJalrXUtnFEMIsecret@container/p",
            "s3://wJalrXUtnFEMIsecret@bucket/p",
        ] {
            let e = parse_location(url).unwrap_err();
            let message = EngineError::from(e.clone()).to_string();
            assert!(message.contains("credentials"), "{message}");
            assert!(!message.contains("wJalrXUtnFEMIsecret"), "{message}");
            assert!(!message.contains("AKIAEXAMPLE"), "{message}");
            let opened = SnapshotStore::open(url).unwrap_err().to_string();
            assert!(!opened.contains("wJalrXUtnFEMIsecret"), "{opened}");
            let absolute = absolute_location(url).unwrap_err().to_string();
            assert!(!absolute.contains("wJalrXUtnFEMIsecret"), "{absolute}");
        }
        // A SAS token in a query string is refused without being quoted.
        let sas = "az://container/p?sv=2024&sig=wJalrXUtnFEMIsecret";
        let message = parse_location(sas).unwrap_err().to_string();
        assert!(message.contains("query"), "{message}");
        assert!(!message.contains("wJalrXUtnFEMIsecret"), "{message}");
    }

    #[test]
    fn unknown_schemes_are_refused_naming_only_the_scheme() {
        let e = parse_location("ftp://user:secret@host/prefix").unwrap_err();
        let message = e.to_string();
        assert!(message.contains("not supported"), "{message}");
        assert!(message.contains("`ftp`"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert_eq!(EngineError::from(e).code(), "snapshot_store_unsupported");
    }

    #[test]
    fn malformed_locations_say_what_is_wrong() {
        for bad in ["", "   ", "file://", "file://otherhost/dir", "file:///a%zz"] {
            let e = parse_location(bad).unwrap_err();
            assert!(matches!(e, LocationError::Invalid(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn absolute_locations_keep_urls_and_anchor_relative_directories() {
        assert_eq!(
            absolute_location(" s3://bucket/backflow ").unwrap(),
            "s3://bucket/backflow"
        );
        assert_eq!(
            absolute_location("az://container").unwrap(),
            "az://container"
        );
        assert_eq!(
            absolute_location("file:///var/snapshots").unwrap(),
            "file:///var/snapshots"
        );
        assert_eq!(
            absolute_location("/var/snapshots").unwrap(),
            "/var/snapshots"
        );
        let relative = absolute_location("rel/snaps").unwrap();
        assert!(std::path::Path::new(&relative).is_absolute(), "{relative}");
        assert!(relative.ends_with("rel/snaps"), "{relative}");
        assert!(absolute_location("ftp://host/x").is_err());
        assert!(absolute_location("s3://").is_err());
    }

    #[test]
    fn object_store_urls_open_without_network_io() {
        // Explicit settings, as a test against a local server gives them.
        let store = SnapshotStore::open_with_options(
            "s3://bucket/team/snapshots",
            [
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
                ("aws_access_key_id", "AKIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIsecret"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ALLOW_HTTP", "true"),
            ],
        )
        .unwrap();
        let debug = format!("{store:?}");
        assert!(debug.contains("s3://bucket/team/snapshots"), "{debug}");
        assert!(!debug.contains("wJalrXUtnFEMIsecret"), "{debug}");

        // GCS and Azure, told not to sign, need no credentials and no network either.
        let gcs =
            SnapshotStore::open_with_options("gs://bucket/p", [("GOOGLE_SKIP_SIGNATURE", "true")])
                .unwrap();
        assert!(format!("{gcs:?}").contains("gs://bucket/p"));
        let azure = SnapshotStore::open_with_options(
            "azure://container/p",
            [
                ("AZURE_STORAGE_ACCOUNT_NAME", "account"),
                ("AZURE_SKIP_SIGNATURE", "true"),
            ],
        )
        .unwrap();
        assert!(format!("{azure:?}").contains("azure://container/p"));
    }

    #[test]
    fn settings_the_store_cannot_use_are_configuration_errors() {
        let e = SnapshotStore::open_with_options("s3://bucket/p", [("AWS_ALLOW_HTTP", "maybe")])
            .unwrap_err();
        assert!(
            matches!(&e, EngineError::SnapshotStore(LocationError::Configuration { scheme, .. }) if scheme == "s3"),
            "{e}"
        );
        assert!(e.to_string().contains("`s3` snapshot store"), "{e}");
        assert_eq!(e.code(), "invalid_snapshot_store");
        assert!(!e.is_retryable());
    }

    #[test]
    fn unknown_settings_are_named_without_their_values() {
        let e = SnapshotStore::open_with_options(
            "s3://bucket/p",
            [("AWS_NOT_A_SETTING", "wJalrXUtnFEMIsecret")],
        )
        .unwrap_err();
        let message = e.to_string();
        assert!(message.contains("`s3` snapshot store"), "{message}");
        assert!(message.contains("aws_not_a_setting"), "{message}");
        assert!(!message.contains("wJalrXUtnFEMIsecret"), "{message}");
    }

    #[test]
    fn user_parts_of_urls_in_messages_are_masked() {
        assert_eq!(
            redact_userinfo("error sending request for url (http://key:secret@host:9000/b/k)"),
            "error sending request for url (http://***@host:9000/b/k)"
        );
        assert_eq!(
            redact_userinfo("a https://host/x and s3://u@b, then `ftp://p:q@h`"),
            "a https://host/x and s3://***@b, then `ftp://***@h`"
        );
        assert_eq!(redact_userinfo("no url here"), "no url here");
        assert_eq!(redact_userinfo("ends with ://"), "ends with ://");
    }

    #[test]
    fn sync_folders_match_the_paths_runs_write() {
        assert_eq!(sync_folder("customer_scores"), "syncs/customer_scores");
        assert_eq!(sync_folder("a/../b"), "syncs/a_.._b");
    }

    #[tokio::test]
    async fn listings_walk_one_level_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::local(dir.path()).unwrap();
        for path in [
            "syncs/a/run-1.parquet",
            "syncs/a/journal/run-2-a1/0000000000.bfj",
            "syncs/b/run-3.parquet",
        ] {
            store
                .store
                .put(&Path::from(path), bytes::Bytes::from_static(b"x").into())
                .await
                .unwrap();
        }
        let top = store.list_folder(SYNCS_FOLDER).await.unwrap();
        let mut folders = top.folders.clone();
        folders.sort();
        assert_eq!(folders, ["syncs/a", "syncs/b"]);
        assert!(top.objects.is_empty());

        let a = store.list_folder("syncs/a").await.unwrap();
        assert_eq!(a.folders, ["syncs/a/journal"]);
        assert_eq!(a.objects.len(), 1);
        assert_eq!(a.objects[0].path, "syncs/a/run-1.parquet");
        assert_eq!(a.objects[0].size, 1);
        assert!(a.objects[0].last_modified <= SystemTime::now());

        let mut all: Vec<String> = store
            .list_all("syncs/a")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        all.sort();
        assert_eq!(
            all,
            [
                "syncs/a/journal/run-2-a1/0000000000.bfj",
                "syncs/a/run-1.parquet"
            ]
        );

        store.delete_path("syncs/a/run-1.parquet").await.unwrap();
        store.delete_path("syncs/a/run-1.parquet").await.unwrap();
        assert!(store
            .list_folder("syncs/a")
            .await
            .unwrap()
            .objects
            .is_empty());
        assert_eq!(
            store.list_folder("syncs/missing").await.unwrap(),
            Listing::default()
        );
    }
}

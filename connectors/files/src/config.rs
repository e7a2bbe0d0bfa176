//! Pure validation of a `files` connection config.
//!
//! `validate` must not touch the filesystem (the control plane validates definitions on a
//! machine that may not hold the files), so this module only parses and classifies: where a
//! table lives (local path, glob, directory or object-store URL) and in which format. Whether the
//! files exist is `check`'s job.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use backflow_connector_core::{quoted, ConnectorError};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use url::Url;

/// The file formats the embedded warehouse reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// Delimited text with an optional header row.
    Csv,
    /// Newline-delimited JSON (one object per line), whatever the extension (.json, .ndjson).
    Json,
}

impl FileFormat {
    /// The extension DataFusion filters a directory's files by, so stray files such as
    /// `_SUCCESS` markers are not read as data.
    pub fn default_extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => ".parquet",
            FileFormat::Csv => ".csv",
            FileFormat::Json => ".json",
        }
    }

    fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "parquet" | "parq" => Some(FileFormat::Parquet),
            "csv" => Some(FileFormat::Csv),
            "json" | "ndjson" | "jsonl" => Some(FileFormat::Json),
            _ => None,
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
        })
    }
}

/// Where a table's files live, classified once at validation so registration does not re-parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file, a directory or a glob on the local filesystem. Relative paths were joined to
    /// `base_dir` when one is set; otherwise they resolve against the current directory when
    /// the table is registered.
    Local(PathBuf),
    /// An object-store URL (`s3://`, `gs://`, `az://`, …); only built with the `cloud` feature.
    Remote(Url),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Remote(url) => write!(f, "{url}"),
        }
    }
}

/// One validated table: its files and how to read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Where the files are.
    pub location: Location,
    /// How to decode them.
    pub format: FileFormat,
    /// CSV only: whether the first line holds column names.
    pub has_header: bool,
    /// CSV only: the single-byte field delimiter.
    pub delimiter: u8,
}

/// The validated config: table name to table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// Tables by the name SQL refers to them with.
    pub tables: BTreeMap<String, TableSpec>,
}

/// The raw, user-written config of a `files` connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Tables by the name the sync's SQL refers to them with: a path (file, directory, glob
    /// or object-store URL) or an object with options.
    tables: BTreeMap<String, RawTable>,
    /// The directory relative table paths resolve against; the current directory when
    /// absent.
    #[serde(default)]
    base_dir: Option<String>,
}

/// A table as written: a bare path string or an object with options.
#[derive(Debug)]
enum RawTable {
    Path(String),
    Spec(RawSpec),
}

/// A table written as an object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    /// A file, a directory, a glob or an object-store URL (`s3://bucket/prefix/`).
    path: String,
    /// How to decode the files; guessed from the extension when absent.
    #[serde(default)]
    format: Option<FileFormat>,
    /// CSV only: whether the first line holds column names (default true).
    #[serde(default)]
    #[schemars(extend("default" = true))]
    has_header: Option<bool>,
    /// CSV only: the single-byte field delimiter (default `,`).
    #[serde(default)]
    #[schemars(extend("default" = ","))]
    delimiter: Option<String>,
}

// The two forms the visitor below accepts, described as the schema's alternatives.
impl JsonSchema for RawTable {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawTable".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                { "type": "string", "description": "The table's path, with every option defaulted." },
                generator.subschema_for::<RawSpec>(),
            ]
        })
    }
}

// A hand-written visitor instead of `#[serde(untagged)]`, so an error inside the object form
// keeps its path (`tables.scores.format`) instead of becoming "did not match any variant".
impl<'de> Deserialize<'de> for RawTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = RawTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path string or an object { path, format, has_header, delimiter }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTable, E> {
                Ok(RawTable::Path(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTable, A::Error> {
                RawSpec::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawTable::Spec)
            }
        }
        deserializer.deserialize_any(TableVisitor)
    }
}

/// URL schemes object_store serves from a cloud, all behind the `cloud` feature.
const CLOUD_SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss"];

/// Parses and checks a raw `files` config without any I/O.
pub fn parse(raw: &serde_json::Value) -> Result<FilesConfig, ConnectorError> {
    let raw: RawConfig = backflow_connector_core::config::parse(raw)?;
    if raw.tables.is_empty() {
        return Err(ConnectorError::config(
            "tables",
            "at least one table is required",
        ));
    }
    let base_dir = match raw.base_dir {
        Some(dir) if dir.trim().is_empty() => {
            return Err(ConnectorError::config("base_dir", "must not be empty"))
        }
        Some(dir) => Some(PathBuf::from(dir)),
        None => None,
    };
    let mut tables = BTreeMap::new();
    for (name, table) in raw.tables {
        let field = format!("tables.{name}");
        if name.trim().is_empty() {
            return Err(ConnectorError::config(
                field,
                "table name must not be empty",
            ));
        }
        let spec = match table {
            RawTable::Path(path) => {
                table_spec(&field, base_dir.as_deref(), &path, None, None, None)?
            }
            RawTable::Spec(s) => table_spec(
                &field,
                base_dir.as_deref(),
                &s.path,
                s.format,
                s.has_header,
                s.delimiter.as_deref(),
            )?,
        };
        tables.insert(name, spec);
    }
    Ok(FilesConfig { tables })
}

fn table_spec(
    field: &str,
    base_dir: Option<&Path>,
    path: &str,
    format: Option<FileFormat>,
    has_header: Option<bool>,
    delimiter: Option<&str>,
) -> Result<TableSpec, ConnectorError> {
    let path_field = if format.is_some() || has_header.is_some() || delimiter.is_some() {
        format!("{field}.path")
    } else {
        field.to_string()
    };
    if path.trim().is_empty() {
        return Err(ConnectorError::config(path_field, "path must not be empty"));
    }
    let location = location(&path_field, base_dir, path)?;
    let format = match format {
        Some(f) => f,
        None => infer_format(path).ok_or_else(|| {
            ConnectorError::config(
                format!("{field}.format"),
                format!(
                    "cannot infer the format of {} from its extension \
                     (.parquet, .csv, .json, .ndjson); set `format` to parquet, csv or json",
                    quoted(path)
                ),
            )
        })?,
    };
    if format != FileFormat::Csv {
        if has_header.is_some() {
            return Err(ConnectorError::config(
                format!("{field}.has_header"),
                format!("only applies to csv tables, this one is {format}"),
            ));
        }
        if delimiter.is_some() {
            return Err(ConnectorError::config(
                format!("{field}.delimiter"),
                format!("only applies to csv tables, this one is {format}"),
            ));
        }
    }
    let delimiter = match delimiter {
        None => b',',
        Some(d) => match d.as_bytes() {
            [b] if b.is_ascii() => *b,
            _ => {
                return Err(ConnectorError::config(
                    format!("{field}.delimiter"),
                    format!("must be exactly one ASCII character, got {d:?}"),
                ))
            }
        },
    };
    Ok(TableSpec {
        location,
        format,
        has_header: has_header.unwrap_or(true),
        delimiter,
    })
}

fn location(field: &str, base_dir: Option<&Path>, path: &str) -> Result<Location, ConnectorError> {
    let Some((scheme, _)) = path.split_once("://") else {
        let p = PathBuf::from(path);
        return Ok(Location::Local(match base_dir {
            Some(base) if p.is_relative() => base.join(p),
            _ => p,
        }));
    };
    let scheme = scheme.to_ascii_lowercase();
    let url = Url::parse(path)
        .map_err(|e| ConnectorError::config(field, format!("invalid URL {}: {e}", quoted(path))))?;
    if scheme == "file" {
        let local = url.to_file_path().map_err(|()| {
            ConnectorError::config(
                field,
                format!("{} is not an absolute file:// URL", quoted(path)),
            )
        })?;
        return Ok(Location::Local(local));
    }
    if CLOUD_SCHEMES.contains(&scheme.as_str()) {
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConnectorError::config(
                field,
                format!("{} names no bucket or container", quoted(path)),
            ));
        }
        if cfg!(feature = "cloud") {
            return Ok(Location::Remote(url));
        }
        return Err(ConnectorError::config(
            field,
            format!(
                "`{scheme}://` URLs need cloud object-store support, which this build of \
                 Backflow lacks (cargo feature `cloud` of backflow-files)"
            ),
        ));
    }
    Err(ConnectorError::config(
        field,
        format!(
            "unsupported URL scheme `{scheme}://`: use a local path, file://, or (with the \
             `cloud` feature) s3://, gs:// or az://"
        ),
    ))
}

/// The format named by the extension of the last path segment (which may be a glob such as
/// `*.parquet`); a trailing slash or no extension means "unknown".
fn infer_format(path: &str) -> Option<FileFormat> {
    let last = path.rsplit(['/', '\\']).next()?;
    let (_, ext) = last.rsplit_once('.')?;
    FileFormat::from_extension(ext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backflow_connector_core::ErrorKind;
    use serde_json::json;

    #[test]
    fn string_and_object_forms() {
        let cfg = parse(&json!({
            "base_dir": "/data",
            "tables": {
                "scores": "scores/*.parquet",
                "people": { "path": "people.txt", "format": "csv", "delimiter": ";", "has_header": false },
                "events": "file:///var/events.ndjson",
                "abs": "/x/y.csv"
            }
        }))
        .unwrap();
        let scores = &cfg.tables["scores"];
        assert_eq!(scores.format, FileFormat::Parquet);
        assert_eq!(
            scores.location,
            Location::Local(PathBuf::from("/data/scores/*.parquet"))
        );
        let people = &cfg.tables["people"];
        assert_eq!(
            (people.format, people.has_header, people.delimiter),
            (FileFormat::Csv, false, b';')
        );
        assert_eq!(cfg.tables["events"].format, FileFormat::Json);
        assert_eq!(
            cfg.tables["events"].location,
            Location::Local(PathBuf::from("/var/events.ndjson"))
        );
        assert_eq!(
            cfg.tables["abs"].location,
            Location::Local(PathBuf::from("/x/y.csv"))
        );
        assert!(cfg.tables["abs"].has_header);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(&json!({"tables": {"scores": {"path": "a.parquet", "format": "xml"}}}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(e.field(), Some("tables.scores.format"), "{e}");

        let e = parse(&json!({"tables": {"scores": {"path": "a.parquet", "fromat": "csv"}}}))
            .unwrap_err();
        assert!(e.message().contains("unknown field `fromat`"), "{e}");

        let e = parse(&json!({"tables": {"scores": "data/dir/"}})).unwrap_err();
        assert_eq!(e.field(), Some("tables.scores.format"), "{e}");

        let e = parse(&json!({"tables": {"s": {"path": "a.csv", "delimiter": ";;"}}})).unwrap_err();
        assert_eq!(e.field(), Some("tables.s.delimiter"), "{e}");

        let e = parse(&json!({"tables": {"s": {"path": "a.parquet", "has_header": true}}}))
            .unwrap_err();
        assert_eq!(e.field(), Some("tables.s.has_header"), "{e}");

        let e = parse(&json!({"tables": {"s": 3}})).unwrap_err();
        assert_eq!(e.field(), Some("tables.s"), "{e}");

        let e = parse(&json!({"tables": {}})).unwrap_err();
        assert_eq!(e.field(), Some("tables"), "{e}");

        let e = parse(&json!({"tables": {"s": "a.csv"}, "extra": 1})).unwrap_err();
        assert!(e.message().contains("unknown field `extra`"), "{e}");

        let e = parse(&json!({"tables": {"s": "http://example.com/a.csv"}})).unwrap_err();
        assert_eq!(e.field(), Some("tables.s"), "{e}");
        assert!(e.message().contains("unsupported URL scheme"), "{e}");
    }

    #[cfg(not(feature = "cloud"))]
    #[test]
    fn cloud_urls_need_the_feature() {
        let e = parse(&json!({"tables": {"s": "s3://bucket/scores/*.parquet"}})).unwrap_err();
        assert_eq!(e.field(), Some("tables.s"), "{e}");
        assert!(e.message().contains("feature `cloud`"), "{e}");
    }

    #[cfg(feature = "cloud")]
    #[test]
    fn cloud_urls_are_accepted_with_the_feature() {
        let cfg = parse(&json!({"tables": {"s": "s3://bucket/scores/*.parquet"}})).unwrap();
        assert!(matches!(cfg.tables["s"].location, Location::Remote(_)));
    }
}

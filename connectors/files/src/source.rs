//! The `files` source: SQL over the configured tables with an Apache DataFusion session.
//!
//! Every `read` builds a fresh session and registers, as listing tables, only the tables the
//! query names, so a missing file in an unrelated table never breaks a sync, and files added
//! since the last run are picked up. Results stream out of `execute_stream`; nothing is
//! collected, so memory stays bounded by a few batches whatever the result size.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use backflow_connector_core::{BatchStream, ConnectorError, ErrorKind, ReadOptions, Source};
use datafusion::common::TableReference;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat as DfFileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use crate::config::{FileFormat, FilesConfig, Location, TableSpec};
use crate::error::{from_datafusion, is_no_files_found};

/// DataFusion's default catalog and schema; qualified names must use these to resolve.
const DEFAULT_CATALOG: &str = "datafusion";
const DEFAULT_SCHEMA: &str = "public";

/// The characters that make a path a glob pattern (as DataFusion's listing URL parser sees it).
const GLOB_CHARS: &[char] = &['*', '?', '['];

/// A validated `files` connection: an embedded warehouse answering SQL over Parquet, CSV and
/// JSON files. Constructing one does no I/O.
#[derive(Debug, Clone)]
pub struct FilesSource {
    config: FilesConfig,
}

impl FilesSource {
    pub(crate) fn new(config: FilesConfig) -> Self {
        Self { config }
    }

    /// The configured tables by SQL name, so callers (UI, `PlanSync`) can list what a query
    /// may reference.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &TableSpec)> {
        self.config.tables.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn session(batch_size: usize) -> SessionContext {
        let config = SessionConfig::new()
            .with_batch_size(batch_size.max(1))
            .with_target_partitions(2);
        SessionContext::new_with_config(config)
    }

    /// Maps the table references of `query` to configured table names, or a query error naming
    /// the first reference this connection does not define.
    fn referenced_tables(
        &self,
        ctx: &SessionContext,
        query: &str,
    ) -> Result<BTreeSet<String>, ConnectorError> {
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(query, &dialect)
            .map_err(|e| from_datafusion(&e))?;
        let references = state
            .resolve_table_references(&statement)
            .map_err(|e| from_datafusion(&e))?;
        let mut names = BTreeSet::new();
        for reference in references {
            let qualified_ok = match &reference {
                TableReference::Bare { .. } => true,
                TableReference::Partial { schema, .. } => schema.as_ref() == DEFAULT_SCHEMA,
                TableReference::Full {
                    catalog, schema, ..
                } => catalog.as_ref() == DEFAULT_CATALOG && schema.as_ref() == DEFAULT_SCHEMA,
            };
            let table = reference.table();
            if !qualified_ok || !self.config.tables.contains_key(table) {
                let defined: Vec<&str> = self.config.tables.keys().map(String::as_str).collect();
                return Err(ConnectorError::new(
                    ErrorKind::Query,
                    format!(
                        "unknown table `{reference}`: this connection defines {}",
                        defined.join(", ")
                    ),
                ));
            }
            names.insert(table.to_string());
        }
        Ok(names)
    }

    async fn register_all<'a>(
        &self,
        ctx: &SessionContext,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), ConnectorError> {
        for name in names {
            let spec = &self.config.tables[name];
            register(ctx, name, spec).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Source for FilesSource {
    #[tracing::instrument(name = "source.check", skip_all, fields(connector = "files"))]
    async fn check(&self) -> Result<(), ConnectorError> {
        let ctx = Self::session(ReadOptions::default().batch_size);
        self.register_all(&ctx, self.config.tables.keys()).await?;
        tracing::debug!(tables = self.config.tables.len(), "files tables registered");
        Ok(())
    }

    #[tracing::instrument(name = "source.read", skip_all, fields(connector = "files"))]
    async fn read(&self, query: &str, options: ReadOptions) -> Result<BatchStream, ConnectorError> {
        let ctx = Self::session(options.batch_size);
        let names = self.referenced_tables(&ctx, query)?;
        self.register_all(&ctx, &names).await?;
        // A source answers queries; it must never create tables or write files (COPY TO).
        let sql_options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let frame = ctx
            .sql_with_options(query, sql_options)
            .await
            .map_err(|e| from_datafusion(&e))?;
        let stream = frame
            .execute_stream()
            .await
            .map_err(|e| from_datafusion(&e))?;
        // The physical stream's schema is exactly the schema of the batches it yields.
        let schema = stream.schema();
        tracing::debug!(
            tables = names.len(),
            columns = schema.fields().len(),
            "files query planned"
        );
        Ok(BatchStream::new(
            schema,
            stream.map(|item| item.map_err(|e| from_datafusion(&e))),
        ))
    }
}

/// Registers one table as a DataFusion listing table, inferring its schema from the files.
async fn register(
    ctx: &SessionContext,
    name: &str,
    spec: &TableSpec,
) -> Result<(), ConnectorError> {
    let (url, file_extension) = listing_url(ctx, name, spec).await?;
    let options = ListingOptions::new(file_format(spec)).with_file_extension(file_extension);
    let state = ctx.state();
    let schema = options.infer_schema(&state, &url).await.map_err(|e| {
        if is_no_files_found(&e) {
            not_found(name, spec, "matches no file")
        } else {
            from_datafusion(&e).context(format!("table `{name}` (`{}`)", spec.location))
        }
    })?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| {
        from_datafusion(&e).context(format!("table `{name}` (`{}`)", spec.location))
    })?;
    ctx.register_table(TableReference::bare(name), Arc::new(table))
        .map_err(|e| from_datafusion(&e))?;
    tracing::debug!(table = name, format = %spec.format, "files table registered");
    Ok(())
}

fn file_format(spec: &TableSpec) -> Arc<dyn DfFileFormat> {
    match spec.format {
        FileFormat::Parquet => Arc::new(ParquetFormat::default()),
        FileFormat::Csv => Arc::new(
            CsvFormat::default()
                .with_has_header(spec.has_header)
                .with_delimiter(spec.delimiter),
        ),
        FileFormat::Json => Arc::new(JsonFormat::default()),
    }
}

fn not_found(name: &str, spec: &TableSpec, what: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::NotFound,
        format!("table `{name}`: `{}` {what}", spec.location),
    )
}

/// The listing URL of a table and the extension filter to list it with: none for a file or a
/// glob (the user named exactly what to read), the format's extension for a directory.
async fn listing_url(
    ctx: &SessionContext,
    name: &str,
    spec: &TableSpec,
) -> Result<(ListingTableUrl, String), ConnectorError> {
    let bad_path = |e: datafusion::error::DataFusionError| {
        ConnectorError::new(
            ErrorKind::Config,
            format!(
                "table `{name}`: invalid path `{}`: {}",
                spec.location,
                e.strip_backtrace()
            ),
        )
    };
    match &spec.location {
        Location::Local(path) => {
            let absolute = std::path::absolute(path).map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Config,
                    format!("table `{name}`: cannot resolve `{}`: {e}", path.display()),
                )
            })?;
            let text = absolute.to_str().ok_or_else(|| {
                ConnectorError::new(
                    ErrorKind::Config,
                    format!(
                        "table `{name}`: path `{}` is not valid UTF-8",
                        path.display()
                    ),
                )
            })?;
            if let Some(glob_at) = text.find(GLOB_CHARS) {
                // The directory before the first glob segment must exist; whether any file
                // matches is decided by the listing (an empty match is `not_found` too).
                let prefix_end = text[..glob_at].rfind(std::path::is_separator).unwrap_or(0);
                let prefix = Path::new(&text[..=prefix_end]);
                if !is_dir(prefix).await? {
                    return Err(not_found(
                        name,
                        spec,
                        "is in a directory that does not exist",
                    ));
                }
                let url = ListingTableUrl::parse(text).map_err(bad_path)?;
                return Ok((url, String::new()));
            }
            let metadata = match tokio::fs::metadata(&absolute).await {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(not_found(name, spec, "does not exist"))
                }
                Err(e) => {
                    return Err(io_error(name, spec, &e));
                }
            };
            if metadata.is_dir() {
                let mut dir = text.to_string();
                if !dir.ends_with(std::path::MAIN_SEPARATOR) {
                    dir.push(std::path::MAIN_SEPARATOR);
                }
                let url = ListingTableUrl::parse(&dir).map_err(bad_path)?;
                Ok((url, spec.format.default_extension().to_string()))
            } else {
                let url = ListingTableUrl::parse(text).map_err(bad_path)?;
                Ok((url, String::new()))
            }
        }
        Location::Remote(url) => remote_listing_url(ctx, name, spec, url),
    }
}

async fn is_dir(path: &Path) -> Result<bool, ConnectorError> {
    match tokio::fs::metadata(path).await {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ConnectorError::new(
            ErrorKind::Connectivity,
            format!("cannot read `{}`: {e}", path.display()),
        )),
    }
}

fn io_error(name: &str, spec: &TableSpec, e: &std::io::Error) -> ConnectorError {
    let kind = match e.kind() {
        std::io::ErrorKind::PermissionDenied => ErrorKind::Permission,
        _ => ErrorKind::Connectivity,
    };
    ConnectorError::new(
        kind,
        format!("table `{name}`: cannot read `{}`: {e}", spec.location),
    )
}

#[cfg(not(feature = "cloud"))]
fn remote_listing_url(
    _ctx: &SessionContext,
    name: &str,
    spec: &TableSpec,
    _url: &url::Url,
) -> Result<(ListingTableUrl, String), ConnectorError> {
    // `validate` never produces a remote location without the feature; keep the error anyway.
    Err(ConnectorError::config(
        format!("tables.{name}"),
        format!(
            "`{}` needs cloud object-store support, which this build lacks (cargo feature `cloud`)",
            spec.location
        ),
    ))
}

#[cfg(feature = "cloud")]
fn remote_listing_url(
    ctx: &SessionContext,
    name: &str,
    spec: &TableSpec,
    url: &url::Url,
) -> Result<(ListingTableUrl, String), ConnectorError> {
    let store = crate::cloud::object_store_for(url).map_err(|e| {
        e.with_field(format!("tables.{name}"))
            .context(format!("table `{name}`"))
    })?;
    ctx.register_object_store(url, store);
    let bad_path = |e: datafusion::error::DataFusionError| {
        ConnectorError::config(
            format!("tables.{name}"),
            format!("invalid URL `{url}`: {}", e.strip_backtrace()),
        )
    };
    let text = url.as_str();
    let path_start = text.find("://").map_or(0, |i| i + 3);
    if let Some(rel) = text[path_start..].find(GLOB_CHARS) {
        let glob_at = path_start + rel;
        let prefix_end = text[..glob_at].rfind('/').unwrap_or(text.len());
        let base = url::Url::parse(&text[..=prefix_end]).map_err(|e| {
            ConnectorError::config(
                format!("tables.{name}"),
                format!("invalid URL `{url}`: {e}"),
            )
        })?;
        let listing = ListingTableUrl::try_new(base, None)
            .and_then(|u| u.with_glob(&text[prefix_end + 1..]))
            .map_err(bad_path)?;
        return Ok((listing, String::new()));
    }
    let listing = ListingTableUrl::parse(text).map_err(bad_path)?;
    let extension = if text.ends_with('/') {
        spec.format.default_extension().to_string()
    } else {
        String::new()
    };
    Ok((listing, extension))
}

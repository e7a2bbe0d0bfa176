//! The source contract suite against Parquet files in a temporary directory.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use backflow_connector_contract::source::{
    Applies, BadQuery, SeriesSpec, SourceCapabilities, SourceHarness, TableSpec, TestTable,
    TypeSupport, DEFAULT_LARGE_RESULT_ROWS,
};
use backflow_connector_contract::HarnessResult;
use backflow_connector_core::{CanonicalType, Source};
use parquet::arrow::ArrowWriter;

/// Why the connection cases do not apply.
const LOCAL: &str = "files are read from the local disk: there is no connection to lose";

/// Rows per Parquet row group and per generated batch of a series.
const CHUNK: u64 = 65_536;

/// Writes every table as one Parquet file in its own temporary directory.
struct ParquetHarness {
    dir: tempfile::TempDir,
}

impl ParquetHarness {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.parquet"))
    }

    /// A `files` source whose only table is `name`, read from its Parquet file.
    fn source(&self, name: &str) -> Arc<dyn Source> {
        let config = serde_json::json!({
            "tables": { name: self.path(name).to_string_lossy() }
        });
        Arc::new(backflow_files::validate_source(&config).expect("valid test config"))
    }

    fn write(
        &self,
        name: &str,
        schema: Arc<Schema>,
        batches: impl Iterator<Item = RecordBatch>,
    ) -> HarnessResult<()> {
        let file = File::create(self.path(name))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(CHUNK as usize))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
        for batch in batches {
            writer.write(&batch)?;
        }
        writer.close()?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl SourceHarness for ParquetHarness {
    fn name(&self) -> &'static str {
        "files (parquet)"
    }

    fn connector(&self) -> &'static dyn backflow_connector_core::Connector {
        &backflow_files::FilesConnector
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            large_result_rows: DEFAULT_LARGE_RESULT_ROWS,
            cut_connection: Applies::No { reason: LOCAL },
            kill_session: Applies::No { reason: LOCAL },
            bounded_memory: Applies::Yes(()),
        }
    }

    fn type_support(&self, ty: &CanonicalType) -> TypeSupport {
        match ty {
            // DataFusion reads Parquet without the Arrow field metadata that tagged the column
            // as JSON: the text arrives as a plain string.
            CanonicalType::Json => TypeSupport::As(CanonicalType::Text),
            // The reader maps a 16-byte fixed binary back without its UUID tag.
            CanonicalType::Uuid => TypeSupport::As(CanonicalType::Binary),
            _ => TypeSupport::Exact,
        }
    }

    async fn create_table(&self, spec: &TableSpec) -> HarnessResult<TestTable> {
        self.write(
            &spec.name,
            spec.schema(),
            std::iter::once(spec.batch.clone()),
        )?;
        let names: Vec<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
        Ok(TestTable {
            source: self.source(&spec.name),
            query: format!("SELECT {} FROM {}", names.join(", "), spec.name),
            name: spec.name.clone(),
        })
    }

    async fn series(&self, spec: &SeriesSpec) -> HarnessResult<TestTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("payload", DataType::Utf8, false),
        ]));
        let width = spec.payload_width;
        let rows = spec.rows;
        let chunks = (0..rows.div_ceil(CHUNK)).map(|c| {
            let ids: Vec<i64> = (c * CHUNK + 1..=((c + 1) * CHUNK).min(rows))
                .map(|i| i as i64)
                .collect();
            let payload: Vec<String> = ids.iter().map(|i| format!("{i:x>width$}")).collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(payload)),
                ],
            )
            .expect("series batch")
        });
        self.write(&spec.name, schema.clone(), chunks)?;
        Ok(TestTable {
            source: self.source(&spec.name),
            query: format!("SELECT id, payload FROM {}", spec.name),
            name: spec.name.clone(),
        })
    }

    async fn bad_queries(&self) -> HarnessResult<Vec<BadQuery>> {
        let name = backflow_connector_contract::unique_name("bad");
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1i64]))])?;
        self.write(&name, schema, std::iter::once(batch))?;
        let source = self.source(&name);
        Ok(vec![
            BadQuery {
                source: source.clone(),
                query: format!("SELECT no_such_column FROM {name}"),
                code: None,
                message_contains: "no_such_column".into(),
            },
            BadQuery {
                source,
                query: "SELEC 1".into(),
                code: None,
                message_contains: "SELEC".into(),
            },
        ])
    }

    async fn drop_table(&self, table: &TestTable) -> HarnessResult<()> {
        std::fs::remove_file(self.path(&table.name))?;
        Ok(())
    }
}

backflow_connector_contract::source_contract_suite!(ParquetHarness::new());

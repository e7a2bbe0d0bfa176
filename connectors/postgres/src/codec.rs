//! PostgreSQL's binary COPY format, decoded into Arrow builders and encoded from Arrow arrays.
//!
//! Layout: an 11-byte signature, a 32-bit flags word and a header extension; then per row a
//! 16-bit field count and, per field, a 32-bit length (`-1` for NULL) and that many bytes in
//! the type's binary send format; then a field count of `-1`. Dates count days and timestamps
//! microseconds from 2000-01-01, not 1970-01-01.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder,
    Date32Array, Date32Builder, Decimal128Array, Decimal128Builder, FixedSizeBinaryArray,
    FixedSizeBinaryBuilder, Float32Array, Float32Builder, Float64Array, Float64Builder, Int16Array,
    Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder, RecordBatch,
    RecordBatchOptions, StringArray, StringBuilder, Time64MicrosecondArray,
    Time64MicrosecondBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, SchemaRef, Time64MicrosecondType, TimestampMicrosecondType,
};
use backflow_connector_core::{CanonicalType, ConnectorError};
use bytes::{Buf, BytesMut};

use crate::numeric::{self, NumericError};
use crate::types::{PgKind, Scalar};

/// The fixed start of every binary COPY stream.
pub(crate) const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Appends the header of a binary COPY stream (no flags, no extension).
pub(crate) fn write_header(out: &mut Vec<u8>) {
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// Appends the trailer of a binary COPY stream.
pub(crate) fn write_trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// Decoding (source)
// ---------------------------------------------------------------------------------------------

enum Builder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Bool(BooleanBuilder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Uuid(FixedSizeBinaryBuilder),
}

/// Decodes one result column into its Arrow builder.
pub(crate) struct ColumnDecoder {
    name: String,
    type_name: String,
    kind: PgKind,
    builder: Builder,
}

impl ColumnDecoder {
    /// A decoder for a column of `kind` producing `data_type` (from [`crate::types::source_field`]).
    pub(crate) fn new(
        name: &str,
        type_name: &str,
        kind: PgKind,
        data_type: &DataType,
    ) -> Result<Self, ConnectorError> {
        let builder = match (kind, data_type) {
            (PgKind::Array(_), _) => Builder::Utf8(StringBuilder::new()),
            (PgKind::Scalar(s), dt) => match s {
                Scalar::Int2 => Builder::I16(Int16Builder::new()),
                Scalar::Int4 => Builder::I32(Int32Builder::new()),
                Scalar::Int8 => Builder::I64(Int64Builder::new()),
                Scalar::Float4 => Builder::F32(Float32Builder::new()),
                Scalar::Float8 => Builder::F64(Float64Builder::new()),
                Scalar::Numeric => {
                    let DataType::Decimal128(p, s) = dt else {
                        return Err(ConnectorError::internal("numeric without a decimal type"));
                    };
                    Builder::Decimal(
                        Decimal128Builder::new().with_precision_and_scale(*p, *s)?,
                        *p,
                        *s,
                    )
                }
                Scalar::Bool => Builder::Bool(BooleanBuilder::new()),
                Scalar::Text | Scalar::Json | Scalar::Jsonb => Builder::Utf8(StringBuilder::new()),
                Scalar::Bytea => Builder::Binary(BinaryBuilder::new()),
                Scalar::Date => Builder::Date(Date32Builder::new()),
                Scalar::Time => Builder::Time(Time64MicrosecondBuilder::new()),
                Scalar::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new()),
                Scalar::TimestampTz => Builder::Timestamp(
                    TimestampMicrosecondBuilder::new()
                        .with_timezone(backflow_connector_core::types::UTC),
                ),
                Scalar::Uuid => Builder::Uuid(FixedSizeBinaryBuilder::new(16)),
            },
        };
        Ok(Self {
            name: name.to_string(),
            type_name: type_name.to_string(),
            kind,
            builder,
        })
    }

    fn bad(&self, why: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::data(
            &self.name,
            format!("column `{}` of type {}: {why}", self.name, self.type_name),
        )
    }

    fn malformed(&self) -> ConnectorError {
        ConnectorError::internal(format!(
            "malformed binary value for column `{}` of type {}",
            self.name, self.type_name
        ))
    }

    /// Appends one value (`None` for NULL).
    pub(crate) fn append(&mut self, value: Option<&[u8]>) -> Result<(), ConnectorError> {
        let Some(v) = value else {
            self.append_null();
            return Ok(());
        };
        if let PgKind::Array(elem) = self.kind {
            let mut json = String::new();
            array_to_json(elem, v, &mut json).map_err(|_| self.malformed())?;
            if let Builder::Utf8(b) = &mut self.builder {
                b.append_value(json);
            }
            return Ok(());
        }
        let PgKind::Scalar(scalar) = self.kind else {
            return Err(self.malformed());
        };
        match scalar {
            Scalar::Int2 => {
                let x = i16::from_be_bytes(fixed(v).ok_or_else(|| self.malformed())?);
                if let Builder::I16(b) = &mut self.builder {
                    b.append_value(x);
                }
            }
            Scalar::Int4 => {
                let x = i32::from_be_bytes(fixed(v).ok_or_else(|| self.malformed())?);
                if let Builder::I32(b) = &mut self.builder {
                    b.append_value(x);
                }
            }
            Scalar::Int8 => {
                let x = i64::from_be_bytes(fixed(v).ok_or_else(|| self.malformed())?);
                if let Builder::I64(b) = &mut self.builder {
                    b.append_value(x);
                }
            }
            Scalar::Float4 => {
                let x = f32::from_be_bytes(fixed(v).ok_or_else(|| self.malformed())?);
                if let Builder::F32(b) = &mut self.builder {
                    b.append_value(x);
                }
            }
            Scalar::Float8 => {
                let x = f64::from_be_bytes(fixed(v).ok_or_else(|| self.malformed())?);
                if let Builder::F64(b) = &mut self.builder {
                    b.append_value(x);
                }
            }
            Scalar::Numeric => {
                let Builder::Decimal(_, p, s) = self.builder else {
                    return Err(self.malformed());
                };
                let x = numeric::decode_decimal(v, p, s).map_err(|e| match e {
                    NumericError::Special(name) => self.bad(format!(
                        "{name} cannot be represented as Decimal128({p},{s}); filter or map it \
                         in the query"
                    )),
                    NumericError::DoesNotFit => self.bad(format!(
                        "a value does not fit Decimal128({p},{s}) without losing digits; cast \
                         it in the query, e.g. `{}::numeric(38,{s})` or `{}::text`",
                        self.name, self.name
                    )),
                    NumericError::Malformed => self.malformed(),
                })?;
                if let Builder::Decimal(b, _, _) = &mut self.builder {
                    b.append_value(x);
                }
            }
            Scalar::Bool => {
                let [x] = fixed::<1>(v).ok_or_else(|| self.malformed())?;
                if let Builder::Bool(b) = &mut self.builder {
                    b.append_value(x != 0);
                }
            }
            Scalar::Text | Scalar::Json => {
                let s = std::str::from_utf8(v).map_err(|_| self.bad("invalid UTF-8"))?;
                if let Builder::Utf8(b) = &mut self.builder {
                    b.append_value(s);
                }
            }
            Scalar::Jsonb => {
                let (version, text) = v.split_first().ok_or_else(|| self.malformed())?;
                if *version != 1 {
                    return Err(self.bad(format!("unsupported jsonb version {version}")));
                }
                let s = std::str::from_utf8(text).map_err(|_| self.bad("invalid UTF-8"))?;
                if let Builder::Utf8(b) = &mut self.builder {
                    b.append_value(s);
                }
            }
            Scalar::Bytea => {
                if let Builder::Binary(b) = &mut self.builder {
                    b.append_value(v);
                }
            }
            Scalar::Date => {
                let days = i32::from_be_bytes(fixed(v).ok_or_else(|| self.malformed())?);
                if days == i32::MAX || days == i32::MIN {
                    return Err(self.bad(
                        "±infinity cannot be represented as a date; filter it or map it in \
                         the query",
                    ));
                }
                let days = days
                    .checked_add(PG_EPOCH_DAYS)
                    .ok_or_else(|| self.bad("date out of range"))?;
                if let Builder::Date(b) = &mut self.builder {
                    b.append_value(days);
                }
            }
            Scalar::Time => {
                let micros = i64::from_be_bytes(fixed(v).ok_or_else(|| self.malformed())?);
                if let Builder::Time(b) = &mut self.builder {
                    b.append_value(micros);
                }
            }
            Scalar::Timestamp | Scalar::TimestampTz => {
                let micros = i64::from_be_bytes(fixed(v).ok_or_else(|| self.malformed())?);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err(self.bad(
                        "±infinity cannot be represented as a timestamp; filter it or map it \
                         in the query",
                    ));
                }
                let micros = micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or_else(|| self.bad("timestamp out of range"))?;
                if let Builder::Timestamp(b) = &mut self.builder {
                    b.append_value(micros);
                }
            }
            Scalar::Uuid => {
                if v.len() != 16 {
                    return Err(self.malformed());
                }
                if let Builder::Uuid(b) = &mut self.builder {
                    b.append_value(v)?;
                }
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match &mut self.builder {
            Builder::I16(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Decimal(b, _, _) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Uuid(b) => b.append_null(),
        }
    }

    /// The array of everything appended since the last call, leaving the builder empty.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match &mut self.builder {
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Decimal(b, _, _) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            // `finish` keeps the builder's zone, so the array matches the field.
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Uuid(b) => Arc::new(b.finish()),
        }
    }
}

fn fixed<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    v.try_into().ok()
}

/// Incremental decoder of a binary COPY stream: feed it chunks as they arrive, take batches
/// as rows accumulate. Only whole rows are decoded; a partial row waits for the next chunk.
pub(crate) struct CopyDecoder {
    schema: SchemaRef,
    columns: Vec<ColumnDecoder>,
    buf: BytesMut,
    header_done: bool,
    finished: bool,
    rows: usize,
}

impl CopyDecoder {
    /// A decoder producing batches of `schema`, one [`ColumnDecoder`] per field.
    pub(crate) fn new(schema: SchemaRef, columns: Vec<ColumnDecoder>) -> Self {
        Self {
            schema,
            columns,
            buf: BytesMut::new(),
            header_done: false,
            finished: false,
            rows: 0,
        }
    }

    /// Adds bytes received from the server.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Whether the trailer was seen: the result is complete.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Rows decoded and not yet taken.
    pub(crate) fn pending_rows(&self) -> usize {
        self.rows
    }

    /// Decodes whole rows from the buffer until `limit` rows are pending, the buffer holds no
    /// whole row, or the trailer is reached.
    pub(crate) fn decode(&mut self, limit: usize) -> Result<(), ConnectorError> {
        if !self.header_done {
            if self.buf.len() < SIGNATURE.len() + 8 {
                return Ok(());
            }
            if &self.buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(ConnectorError::internal("not a binary COPY stream"));
            }
            let ext = u32::from_be_bytes([self.buf[15], self.buf[16], self.buf[17], self.buf[18]])
                as usize;
            if self.buf.len() < 19 + ext {
                return Ok(());
            }
            self.buf.advance(19 + ext);
            self.header_done = true;
        }
        while !self.finished && self.rows < limit {
            let Some(size) = self.whole_row_size()? else {
                return Ok(());
            };
            let row = self.buf.split_to(size);
            let count = i16::from_be_bytes([row[0], row[1]]);
            if count == -1 {
                self.finished = true;
                return Ok(());
            }
            let mut pos = 2;
            for column in &mut self.columns {
                let len = i32::from_be_bytes([row[pos], row[pos + 1], row[pos + 2], row[pos + 3]]);
                pos += 4;
                if len < 0 {
                    column.append(None)?;
                } else {
                    let end = pos + len as usize;
                    column.append(Some(&row[pos..end]))?;
                    pos = end;
                }
            }
            self.rows += 1;
        }
        Ok(())
    }

    /// The byte size of the row at the start of the buffer, if it is all there.
    fn whole_row_size(&self) -> Result<Option<usize>, ConnectorError> {
        let b = &self.buf[..];
        if b.len() < 2 {
            return Ok(None);
        }
        let count = i16::from_be_bytes([b[0], b[1]]);
        if count == -1 {
            return Ok(Some(2));
        }
        if count as usize != self.columns.len() {
            return Err(ConnectorError::internal(format!(
                "COPY row has {count} fields, the query described {}",
                self.columns.len()
            )));
        }
        let mut pos = 2usize;
        for _ in 0..count {
            if b.len() < pos + 4 {
                return Ok(None);
            }
            let len = i32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
            pos += 4;
            if len > 0 {
                pos += len as usize;
            }
        }
        Ok((b.len() >= pos).then_some(pos))
    }

    /// The pending rows as one batch.
    pub(crate) fn take_batch(&mut self) -> Result<RecordBatch, ConnectorError> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnDecoder::finish).collect();
        // The row count is explicit so a query without columns still counts its rows.
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &options,
        )?)
    }
}

// ---------------------------------------------------------------------------------------------
// Arrays as JSON
// ---------------------------------------------------------------------------------------------

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        let end = self.pos.checked_add(n).ok_or(())?;
        let out = self.data.get(self.pos..end).ok_or(())?;
        self.pos = end;
        Ok(out)
    }

    fn i32(&mut self) -> Result<i32, ()> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| ())?,
        ))
    }
}

/// Renders a binary array value as JSON, nesting one level per dimension; the element
/// renderings follow PostgreSQL's `to_jsonb` (with the session in UTC).
pub(crate) fn array_to_json(elem: Scalar, data: &[u8], out: &mut String) -> Result<(), ()> {
    let mut r = Reader { data, pos: 0 };
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let _elem_oid = r.i32()?;
    if ndim == 0 {
        out.push_str("[]");
        return Ok(());
    }
    let mut dims = Vec::new();
    for _ in 0..ndim {
        let len = r.i32()?;
        let _lower_bound = r.i32()?;
        dims.push(usize::try_from(len).map_err(|_| ())?);
    }
    render_dim(elem, &dims, &mut r, out)?;
    if r.pos != data.len() {
        return Err(());
    }
    Ok(())
}

fn render_dim(
    elem: Scalar,
    dims: &[usize],
    r: &mut Reader<'_>,
    out: &mut String,
) -> Result<(), ()> {
    out.push('[');
    for i in 0..dims[0] {
        if i > 0 {
            out.push(',');
        }
        if dims.len() > 1 {
            render_dim(elem, &dims[1..], r, out)?;
        } else {
            let len = r.i32()?;
            if len < 0 {
                out.push_str("null");
            } else {
                let v = r.take(len as usize)?;
                scalar_to_json(elem, v, out)?;
            }
        }
    }
    out.push(']');
    Ok(())
}

fn json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

fn float_json(v: f64, shortest: String, out: &mut String) {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        out.push_str(&shortest);
    }
}

fn scalar_to_json(elem: Scalar, v: &[u8], out: &mut String) -> Result<(), ()> {
    match elem {
        Scalar::Int2 => out.push_str(&i16::from_be_bytes(fixed(v).ok_or(())?).to_string()),
        Scalar::Int4 => out.push_str(&i32::from_be_bytes(fixed(v).ok_or(())?).to_string()),
        Scalar::Int8 => out.push_str(&i64::from_be_bytes(fixed(v).ok_or(())?).to_string()),
        Scalar::Float4 => {
            let x = f32::from_be_bytes(fixed(v).ok_or(())?);
            float_json(
                f64::from(x),
                serde_json::to_string(&x).map_err(|_| ())?,
                out,
            );
        }
        Scalar::Float8 => {
            let x = f64::from_be_bytes(fixed(v).ok_or(())?);
            float_json(x, serde_json::to_string(&x).map_err(|_| ())?, out);
        }
        Scalar::Numeric => {
            let text = numeric::to_text(v).map_err(|_| ())?;
            if text.starts_with(|c: char| c.is_ascii_digit() || c == '-') && text != "-Infinity" {
                out.push_str(&text);
            } else {
                json_string(&text, out);
            }
        }
        Scalar::Bool => out.push_str(if *v.first().ok_or(())? != 0 {
            "true"
        } else {
            "false"
        }),
        Scalar::Text => json_string(std::str::from_utf8(v).map_err(|_| ())?, out),
        Scalar::Json => out.push_str(std::str::from_utf8(v).map_err(|_| ())?),
        Scalar::Jsonb => {
            let (_, text) = v.split_first().ok_or(())?;
            out.push_str(std::str::from_utf8(text).map_err(|_| ())?);
        }
        Scalar::Bytea => {
            let mut s = String::with_capacity(2 + 2 * v.len());
            s.push_str("\\x");
            for b in v {
                s.push_str(&format!("{b:02x}"));
            }
            json_string(&s, out);
        }
        Scalar::Uuid => {
            if v.len() != 16 {
                return Err(());
            }
            json_string(&format_uuid(v), out);
        }
        Scalar::Date => {
            let days = i32::from_be_bytes(fixed(v).ok_or(())?);
            let text = match days {
                i32::MAX => "infinity".to_string(),
                i32::MIN => "-infinity".to_string(),
                d => format_date(i64::from(d) + i64::from(PG_EPOCH_DAYS)),
            };
            json_string(&text, out);
        }
        Scalar::Time => {
            let micros = i64::from_be_bytes(fixed(v).ok_or(())?);
            json_string(&format_time(micros), out);
        }
        Scalar::Timestamp | Scalar::TimestampTz => {
            let micros = i64::from_be_bytes(fixed(v).ok_or(())?);
            let text = match micros {
                i64::MAX => "infinity".to_string(),
                i64::MIN => "-infinity".to_string(),
                m => {
                    let unix = i128::from(m) + i128::from(PG_EPOCH_MICROS);
                    let days = unix.div_euclid(86_400_000_000) as i64;
                    let in_day = unix.rem_euclid(86_400_000_000) as i64;
                    let (date, bc) = split_bc(format_date(days));
                    let zone = if elem == Scalar::TimestampTz {
                        "+00:00"
                    } else {
                        ""
                    };
                    format!("{date}T{}{zone}{bc}", format_time(in_day))
                }
            };
            json_string(&text, out);
        }
    }
    Ok(())
}

fn split_bc(date: String) -> (String, &'static str) {
    match date.strip_suffix(" BC") {
        Some(d) => (d.to_string(), " BC"),
        None => (date, ""),
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn format_uuid(v: &[u8]) -> String {
    let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Civil date of a day count from 1970-01-01 (proleptic Gregorian), as PostgreSQL prints it.
fn format_date(days_since_unix: i64) -> String {
    let z = days_since_unix + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year <= 0 {
        format!("{:04}-{month:02}-{day:02} BC", 1 - year)
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

/// `HH:MM:SS[.ffffff]` with trailing zeros of the fraction dropped, as PostgreSQL prints it.
fn format_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let mut s = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Encoding (destination)
// ---------------------------------------------------------------------------------------------

/// One Arrow column, viewed as the canonical type it is written as.
pub(crate) enum ColumnRef<'a> {
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    Decimal(&'a Decimal128Array, u8),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Bool(&'a BooleanArray),
    Text(&'a StringArray),
    Json(&'a StringArray),
    Binary(&'a BinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Timestamp(&'a TimestampMicrosecondArray),
    Uuid(&'a FixedSizeBinaryArray),
}

/// A column of a batch about to be encoded, with the name errors and failures cite.
pub(crate) struct EncodeColumn<'a> {
    pub(crate) name: &'a str,
    pub(crate) values: ColumnRef<'a>,
}

impl<'a> EncodeColumn<'a> {
    /// Views `array` as `canonical`; a physical type that does not match is a schema error.
    pub(crate) fn new(
        name: &'a str,
        canonical: &CanonicalType,
        array: &'a ArrayRef,
    ) -> Result<Self, ConnectorError> {
        let expected = match canonical {
            CanonicalType::Int16 => DataType::Int16,
            CanonicalType::Int32 => DataType::Int32,
            CanonicalType::Int64 => DataType::Int64,
            CanonicalType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            CanonicalType::Float32 => DataType::Float32,
            CanonicalType::Float64 => DataType::Float64,
            CanonicalType::Boolean => DataType::Boolean,
            CanonicalType::Text | CanonicalType::Json => DataType::Utf8,
            CanonicalType::Binary => DataType::Binary,
            CanonicalType::Date => DataType::Date32,
            CanonicalType::Time => DataType::Time64(arrow::datatypes::TimeUnit::Microsecond),
            CanonicalType::Timestamp | CanonicalType::TimestampTz => {
                if !matches!(
                    array.data_type(),
                    DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _)
                ) {
                    return Err(mismatch(name, canonical, array.data_type()));
                }
                array.data_type().clone()
            }
            CanonicalType::Uuid => DataType::FixedSizeBinary(16),
        };
        let same = match (&expected, array.data_type()) {
            // Precision is only a bound; any decimal with the same scale encodes the same.
            (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) => s1 == s2,
            (a, b) => a == b,
        };
        if !same {
            return Err(mismatch(name, canonical, array.data_type()));
        }
        let values = match canonical {
            CanonicalType::Int16 => ColumnRef::I16(array.as_primitive::<Int16Type>()),
            CanonicalType::Int32 => ColumnRef::I32(array.as_primitive::<Int32Type>()),
            CanonicalType::Int64 => ColumnRef::I64(array.as_primitive::<Int64Type>()),
            CanonicalType::Decimal { scale, .. } => {
                if *scale < 0 {
                    return Err(ConnectorError::schema(
                        name,
                        "decimals with a negative scale cannot be written to PostgreSQL",
                    ));
                }
                ColumnRef::Decimal(array.as_primitive::<Decimal128Type>(), *scale as u8)
            }
            CanonicalType::Float32 => ColumnRef::F32(array.as_primitive::<Float32Type>()),
            CanonicalType::Float64 => ColumnRef::F64(array.as_primitive::<Float64Type>()),
            CanonicalType::Boolean => ColumnRef::Bool(array.as_boolean()),
            CanonicalType::Text => ColumnRef::Text(array.as_string::<i32>()),
            CanonicalType::Json => ColumnRef::Json(array.as_string::<i32>()),
            CanonicalType::Binary => ColumnRef::Binary(array.as_binary::<i32>()),
            CanonicalType::Date => ColumnRef::Date(array.as_primitive::<Date32Type>()),
            CanonicalType::Time => ColumnRef::Time(array.as_primitive::<Time64MicrosecondType>()),
            CanonicalType::Timestamp | CanonicalType::TimestampTz => {
                ColumnRef::Timestamp(array.as_primitive::<TimestampMicrosecondType>())
            }
            CanonicalType::Uuid => ColumnRef::Uuid(array.as_fixed_size_binary()),
        };
        Ok(Self { name, values })
    }

    /// Appends the length-prefixed value of `row` (or `-1` for NULL).
    pub(crate) fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let is_null = match &self.values {
            ColumnRef::I16(a) => a.is_null(row),
            ColumnRef::I32(a) => a.is_null(row),
            ColumnRef::I64(a) => a.is_null(row),
            ColumnRef::Decimal(a, _) => a.is_null(row),
            ColumnRef::F32(a) => a.is_null(row),
            ColumnRef::F64(a) => a.is_null(row),
            ColumnRef::Bool(a) => a.is_null(row),
            ColumnRef::Text(a) | ColumnRef::Json(a) => a.is_null(row),
            ColumnRef::Binary(a) => a.is_null(row),
            ColumnRef::Date(a) => a.is_null(row),
            ColumnRef::Time(a) => a.is_null(row),
            ColumnRef::Timestamp(a) => a.is_null(row),
            ColumnRef::Uuid(a) => a.is_null(row),
        };
        if is_null {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return Ok(());
        }
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0]);
        match &self.values {
            ColumnRef::I16(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            ColumnRef::I32(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            ColumnRef::I64(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            ColumnRef::Decimal(a, scale) => numeric::encode_decimal(a.value(row), *scale, out),
            ColumnRef::F32(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            ColumnRef::F64(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            ColumnRef::Bool(a) => out.push(u8::from(a.value(row))),
            ColumnRef::Text(a) => out.extend_from_slice(a.value(row).as_bytes()),
            ColumnRef::Json(a) => {
                // jsonb's binary format: a version byte, then the text.
                out.push(1);
                out.extend_from_slice(a.value(row).as_bytes());
            }
            ColumnRef::Binary(a) => out.extend_from_slice(a.value(row)),
            ColumnRef::Date(a) => {
                let days = a
                    .value(row)
                    .checked_sub(PG_EPOCH_DAYS)
                    .filter(|d| *d != i32::MAX && *d != i32::MIN)
                    .ok_or("date out of range for PostgreSQL")?;
                out.extend_from_slice(&days.to_be_bytes());
            }
            ColumnRef::Time(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            ColumnRef::Timestamp(a) => {
                let micros = a
                    .value(row)
                    .checked_sub(PG_EPOCH_MICROS)
                    .filter(|m| *m != i64::MAX && *m != i64::MIN)
                    .ok_or("timestamp out of range for PostgreSQL")?;
                out.extend_from_slice(&micros.to_be_bytes());
            }
            ColumnRef::Uuid(a) => out.extend_from_slice(a.value(row)),
        }
        let len = out.len() - start - 4;
        let len = i32::try_from(len).map_err(|_| "value larger than 2 GiB".to_string())?;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

fn mismatch(name: &str, canonical: &CanonicalType, found: &DataType) -> ConnectorError {
    ConnectorError::schema(
        name,
        format!("column `{name}` was declared {canonical:?} but the batch holds {found}"),
    )
}

/// Appends the length-prefixed values of `row`, without the row's field count; on error
/// nothing is appended and the failing column is named.
pub(crate) fn encode_fields<'c>(
    columns: &'c [EncodeColumn<'_>],
    row: usize,
    out: &mut Vec<u8>,
) -> Result<(), (&'c str, String)> {
    let start = out.len();
    for c in columns {
        if let Err(message) = c.encode(row, out) {
            out.truncate(start);
            return Err((c.name, message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::source_field;
    use arrow::datatypes::Schema;

    fn decode_one(
        type_oid: u32,
        typmod: i32,
        value: Option<&[u8]>,
    ) -> Result<ArrayRef, ConnectorError> {
        let (kind, field) = source_field("c", type_oid, typmod, "T").unwrap();
        let schema = Arc::new(Schema::new(vec![field.clone()]));
        let col = ColumnDecoder::new("c", "T", kind, field.data_type()).unwrap();
        let mut d = CopyDecoder::new(schema, vec![col]);
        let mut stream = Vec::new();
        write_header(&mut stream);
        stream.extend_from_slice(&1i16.to_be_bytes());
        match value {
            Some(v) => {
                stream.extend_from_slice(&(v.len() as i32).to_be_bytes());
                stream.extend_from_slice(v);
            }
            None => stream.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        write_trailer(&mut stream);
        // Feed one byte at a time: rows must only be decoded once whole.
        for b in &stream {
            d.push(&[*b]);
            d.decode(10)?;
        }
        assert!(d.is_finished());
        assert_eq!(d.pending_rows(), 1);
        Ok(d.take_batch()?.column(0).clone())
    }

    #[test]
    fn decimal_encode_decode_through_copy() {
        use crate::types::{numeric_typmod_of, oid};
        let cases: &[(i128, u8, i8)] = &[
            (0, 38, 10),
            (-5, 38, 10),
            (1, 38, 10),                  // 1e-10
            (10i128.pow(37), 38, 0),      // 10^37
            (10i128.pow(38) - 1, 38, 10), // full precision
            (42, 10, 8),                  // scale larger than the digits
        ];
        for &(v, p, s) in cases {
            let array: ArrayRef = Arc::new(
                Decimal128Array::from(vec![Some(v)])
                    .with_precision_and_scale(p, s)
                    .unwrap(),
            );
            let col = EncodeColumn::new(
                "c",
                &CanonicalType::Decimal {
                    precision: p,
                    scale: s,
                },
                &array,
            )
            .unwrap();
            let mut out = Vec::new();
            col.encode(0, &mut out).unwrap();
            let back = decode_one(oid::NUMERIC, numeric_typmod_of(p, s), Some(&out[4..])).unwrap();
            assert_eq!(
                back.as_primitive::<Decimal128Type>().value(0),
                v,
                "{v} ({p},{s})"
            );
        }
    }

    #[test]
    fn decodes_scalars_and_nulls() {
        use crate::types::oid;
        let a = decode_one(oid::INT8, -1, Some(&i64::MIN.to_be_bytes())).unwrap();
        assert_eq!(a.as_primitive::<Int64Type>().value(0), i64::MIN);
        let a = decode_one(oid::INT4, -1, None).unwrap();
        assert!(a.is_null(0));
        let a = decode_one(oid::JSONB, -1, Some(b"\x01{\"a\": 1}")).unwrap();
        assert_eq!(a.as_string::<i32>().value(0), "{\"a\": 1}");
        let a = decode_one(oid::DATE, -1, Some(&0i32.to_be_bytes())).unwrap();
        assert_eq!(a.as_primitive::<Date32Type>().value(0), PG_EPOCH_DAYS);
        let e = decode_one(oid::DATE, -1, Some(&i32::MAX.to_be_bytes())).unwrap_err();
        assert_eq!(e.column(), Some("c"));
        assert!(e.message().contains("infinity"), "{e}");
        let e = decode_one(oid::NUMERIC, -1, Some(&[0, 0, 0, 0, 0xC0, 0, 0, 0])).unwrap_err();
        assert!(e.message().contains("NaN"), "{e}");
    }

    #[test]
    fn arrays_render_as_json() {
        // int4[] '{{1,NULL},{3,4}}'
        let mut v = Vec::new();
        for x in [2i32, 1, 23, 2, 1, 2, 1] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for x in [Some(1i32), None, Some(3), Some(4)] {
            match x {
                Some(x) => {
                    v.extend_from_slice(&4i32.to_be_bytes());
                    v.extend_from_slice(&x.to_be_bytes());
                }
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        let mut out = String::new();
        array_to_json(Scalar::Int4, &v, &mut out).unwrap();
        assert_eq!(out, "[[1,null],[3,4]]");
    }

    #[test]
    fn formats_dates_and_times_like_postgres() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(i64::from(PG_EPOCH_DAYS)), "2000-01-01");
        assert_eq!(format_date(-719_163), "0001-12-31 BC");
        assert_eq!(format_date(-719_162), "0001-01-01");
        assert_eq!(format_time(0), "00:00:00");
        assert_eq!(format_time(45_296_500_000), "12:34:56.5");
        assert_eq!(
            format_uuid(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }

    #[test]
    fn encode_fields_reports_the_failing_column() {
        let ok: ArrayRef = Arc::new(Int32Array::from(vec![1]));
        let bad: ArrayRef = Arc::new(Date32Array::from(vec![i32::MIN]));
        let cols = vec![
            EncodeColumn::new("id", &CanonicalType::Int32, &ok).unwrap(),
            EncodeColumn::new("d", &CanonicalType::Date, &bad).unwrap(),
        ];
        let mut out = vec![9];
        let e = encode_fields(&cols, 0, &mut out).unwrap_err();
        assert_eq!(e.0, "d");
        assert_eq!(out, vec![9]);
    }
}

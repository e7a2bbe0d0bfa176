//! Rendering Arrow values as SQL literals for multi-row statements.
//!
//! Rows travel as text statements (`INSERT … VALUES (…),(…)`), the fastest path sqlx offers
//! (no `LOAD DATA LOCAL`, and prepared statements are limited to 65,535 parameters). The
//! session runs with `NO_BACKSLASH_ESCAPES`, so a string literal only needs its quotes
//! doubled; bytes are hex literals; floats use Rust's shortest round-trip form; temporal
//! values are rendered from their integer form, in UTC for zoned timestamps.

use std::fmt::Write;

use arrow::array::{
    Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use backflow_connector_core::{CanonicalType, ConnectorError};

/// How one column is written: its canonical type and, for UUIDs, whether the column holds
/// text (`CHAR(36)`, MariaDB's `UUID`) or 16 bytes.
#[derive(Debug, Clone)]
pub(crate) struct ColumnFormat {
    pub(crate) name: String,
    pub(crate) canonical: CanonicalType,
    pub(crate) uuid_as_text: bool,
}

/// A batch column bound to its concrete Arrow array.
pub(crate) enum Values<'a> {
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    Decimal(&'a Decimal128Array, u32),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Bool(&'a BooleanArray),
    Text(&'a StringArray),
    Binary(&'a BinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Timestamp(&'a TimestampMicrosecondArray),
    Uuid(&'a FixedSizeBinaryArray, bool),
}

/// Binds the columns `formats` names (by name) in `batch`; a missing column or a type other
/// than the canonical one is a schema error naming the column.
pub(crate) fn bind<'a>(
    formats: &[ColumnFormat],
    batch: &'a RecordBatch,
) -> Result<Vec<Values<'a>>, ConnectorError> {
    formats
        .iter()
        .map(|f| {
            let array = batch.column_by_name(&f.name).ok_or_else(|| {
                ConnectorError::schema(&f.name, format!("the batch has no column `{}`", f.name))
            })?;
            let wrong = || {
                ConnectorError::schema(
                    &f.name,
                    format!(
                        "column `{}` has Arrow type {} in the batch, expected {:?}",
                        f.name,
                        array.data_type(),
                        f.canonical
                    ),
                )
            };
            let any = array.as_any();
            macro_rules! cast {
                ($t:ty) => {
                    any.downcast_ref::<$t>().ok_or_else(wrong)?
                };
            }
            Ok(match &f.canonical {
                CanonicalType::Int16 => Values::I16(cast!(Int16Array)),
                CanonicalType::Int32 => Values::I32(cast!(Int32Array)),
                CanonicalType::Int64 => Values::I64(cast!(Int64Array)),
                CanonicalType::Decimal { scale, .. } => {
                    Values::Decimal(cast!(Decimal128Array), (*scale).max(0) as u32)
                }
                CanonicalType::Float32 => Values::F32(cast!(Float32Array)),
                CanonicalType::Float64 => Values::F64(cast!(Float64Array)),
                CanonicalType::Boolean => Values::Bool(cast!(BooleanArray)),
                CanonicalType::Text | CanonicalType::Json => Values::Text(cast!(StringArray)),
                CanonicalType::Binary => Values::Binary(cast!(BinaryArray)),
                CanonicalType::Date => Values::Date(cast!(Date32Array)),
                CanonicalType::Time => Values::Time(cast!(Time64MicrosecondArray)),
                CanonicalType::Timestamp | CanonicalType::TimestampTz => {
                    Values::Timestamp(cast!(TimestampMicrosecondArray))
                }
                CanonicalType::Uuid => Values::Uuid(cast!(FixedSizeBinaryArray), f.uuid_as_text),
            })
        })
        .collect()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Values<'_> {
    fn array(&self) -> &dyn Array {
        match self {
            Values::I16(a) => *a,
            Values::I32(a) => *a,
            Values::I64(a) => *a,
            Values::Decimal(a, _) => *a,
            Values::F32(a) => *a,
            Values::F64(a) => *a,
            Values::Bool(a) => *a,
            Values::Text(a) => *a,
            Values::Binary(a) => *a,
            Values::Date(a) => *a,
            Values::Time(a) => *a,
            Values::Timestamp(a) => *a,
            Values::Uuid(a, _) => *a,
        }
    }

    /// Appends the literal of `row` to `out`; a value MySQL cannot hold is an `Err` with the
    /// reason (the caller makes it a rejected row).
    pub(crate) fn render(&self, row: usize, out: &mut String) -> Result<(), String> {
        if self.array().is_null(row) {
            out.push_str("NULL");
            return Ok(());
        }
        match self {
            Values::I16(a) => push_int(out, i64::from(a.value(row))),
            Values::I32(a) => push_int(out, i64::from(a.value(row))),
            Values::I64(a) => push_int(out, a.value(row)),
            Values::Decimal(a, scale) => push_decimal(out, a.value(row), *scale),
            Values::F32(a) => {
                let v = a.value(row);
                if !v.is_finite() {
                    return Err(format!(
                        "{v} cannot be stored: MySQL has no NaN or infinity"
                    ));
                }
                // The exact double of the float: its shortest form (`3.4028235e38` for the
                // largest float) may round past the float range when the server parses it.
                let _ = write!(out, "{:e}", f64::from(v));
            }
            Values::F64(a) => {
                let v = a.value(row);
                if !v.is_finite() {
                    return Err(format!(
                        "{v} cannot be stored: MySQL has no NaN or infinity"
                    ));
                }
                let _ = write!(out, "{v:e}");
            }
            Values::Bool(a) => out.push(if a.value(row) { '1' } else { '0' }),
            Values::Text(a) => push_string(out, a.value(row)),
            Values::Binary(a) => push_hex(out, a.value(row)),
            Values::Date(a) => {
                out.push('\'');
                push_date(out, i64::from(a.value(row)))?;
                out.push('\'');
            }
            Values::Time(a) => {
                let micros = a.value(row);
                if !(0..86_400_000_000).contains(&micros) {
                    return Err(format!("time of day {micros}µs is outside 00:00..24:00"));
                }
                out.push('\'');
                push_time(out, micros);
                out.push('\'');
            }
            Values::Timestamp(a) => {
                let micros = a.value(row);
                let days = micros.div_euclid(86_400_000_000);
                out.push('\'');
                push_date(out, days)?;
                out.push(' ');
                push_time(out, micros.rem_euclid(86_400_000_000));
                out.push('\'');
            }
            Values::Uuid(a, as_text) => {
                let bytes = a.value(row);
                if *as_text {
                    out.push('\'');
                    for (i, b) in bytes.iter().enumerate() {
                        if matches!(i, 4 | 6 | 8 | 10) {
                            out.push('-');
                        }
                        out.push(HEX[(b >> 4) as usize] as char);
                        out.push(HEX[(b & 15) as usize] as char);
                    }
                    out.push('\'');
                } else {
                    push_hex(out, bytes);
                }
            }
        }
        Ok(())
    }
}

fn push_int(out: &mut String, v: i64) {
    let _ = write!(out, "{v}");
}

fn push_string(out: &mut String, s: &str) {
    out.push('\'');
    for (i, part) in s.split('\'').enumerate() {
        if i > 0 {
            out.push_str("''");
        }
        out.push_str(part);
    }
    out.push('\'');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    if bytes.is_empty() {
        out.push_str("''");
        return;
    }
    out.push_str("X'");
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out.push('\'');
}

fn push_decimal(out: &mut String, v: i128, scale: u32) {
    if v < 0 {
        out.push('-');
    }
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    if scale == 0 {
        out.push_str(&digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        for _ in digits.len()..scale {
            out.push('0');
        }
        out.push_str(&digits);
    }
}

/// Appends `YYYY-MM-DD` for a day count since 1970-01-01 (proleptic Gregorian).
fn push_date(out: &mut String, days: i64) -> Result<(), String> {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return Err(format!("year {year} is outside MySQL's range 0000..9999"));
    }
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    Ok(())
}

/// Appends `HH:MM:SS.ffffff` for microseconds since midnight (0 ≤ micros < 24h).
fn push_time(out: &mut String, micros: i64) {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{frac:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_literals() {
        let mut s = String::new();
        push_string(&mut s, "it's");
        assert_eq!(s, "'it''s'");
        s.clear();
        push_decimal(&mut s, -5, 3);
        assert_eq!(s, "-0.005");
        s.clear();
        push_decimal(&mut s, 12345, 2);
        assert_eq!(s, "123.45");
        s.clear();
        push_date(&mut s, 19_723).unwrap();
        assert_eq!(s, "2024-01-01");
        s.clear();
        push_date(&mut s, -719_528).unwrap();
        assert_eq!(s, "0000-01-01");
        assert!(push_date(&mut s, -719_529).is_err());
        s.clear();
        push_time(&mut s, 3_723_000_005);
        assert_eq!(s, "01:02:03.000005");
        s.clear();
        push_hex(&mut s, &[0, 255]);
        assert_eq!(s, "X'00ff'");
    }
}

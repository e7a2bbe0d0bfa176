//! The mapping between PostgreSQL types and the canonical Arrow types, both ways.
//!
//! Reading, a column's type OID (and numeric typmod) picks a [`PgKind`] and an Arrow field;
//! writing, each canonical type has one native PostgreSQL type ([`native_type`]) that the
//! binary COPY encoder produces and that `create_table` uses.

use arrow::datatypes::{DataType, Field, TimeUnit};
use backflow_connector_core::types::{json_field, uuid_field, UTC};
use backflow_connector_core::{CanonicalType, ConnectorError};

/// Built-in type OIDs (stable: they are fixed in `pg_type.dat`).
pub(crate) mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;

    pub const BOOL_ARRAY: u32 = 1000;
    pub const BYTEA_ARRAY: u32 = 1001;
    pub const NAME_ARRAY: u32 = 1003;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const BPCHAR_ARRAY: u32 = 1014;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const TIMESTAMP_ARRAY: u32 = 1115;
    pub const DATE_ARRAY: u32 = 1182;
    pub const TIME_ARRAY: u32 = 1183;
    pub const TIMESTAMPTZ_ARRAY: u32 = 1185;
    pub const NUMERIC_ARRAY: u32 = 1231;
    pub const JSON_ARRAY: u32 = 199;
    pub const UUID_ARRAY: u32 = 2951;
    pub const JSONB_ARRAY: u32 = 3807;
}

/// Precision and scale given to an unconstrained `numeric`.
pub(crate) const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 10);

/// How the wire bytes of one PostgreSQL value are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Bool,
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Json,
    Jsonb,
    Uuid,
}

impl Scalar {
    fn of_oid(oid: u32) -> Option<Self> {
        Some(match oid {
            oid::INT2 => Self::Int2,
            oid::INT4 => Self::Int4,
            oid::INT8 => Self::Int8,
            oid::FLOAT4 => Self::Float4,
            oid::FLOAT8 => Self::Float8,
            oid::NUMERIC => Self::Numeric,
            oid::BOOL => Self::Bool,
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => Self::Text,
            oid::BYTEA => Self::Bytea,
            oid::DATE => Self::Date,
            oid::TIME => Self::Time,
            oid::TIMESTAMP => Self::Timestamp,
            oid::TIMESTAMPTZ => Self::TimestampTz,
            oid::JSON => Self::Json,
            oid::JSONB => Self::Jsonb,
            oid::UUID => Self::Uuid,
            _ => return None,
        })
    }

    fn of_array_oid(oid: u32) -> Option<Self> {
        Some(match oid {
            oid::INT2_ARRAY => Self::Int2,
            oid::INT4_ARRAY => Self::Int4,
            oid::INT8_ARRAY => Self::Int8,
            oid::FLOAT4_ARRAY => Self::Float4,
            oid::FLOAT8_ARRAY => Self::Float8,
            oid::NUMERIC_ARRAY => Self::Numeric,
            oid::BOOL_ARRAY => Self::Bool,
            oid::TEXT_ARRAY | oid::VARCHAR_ARRAY | oid::BPCHAR_ARRAY | oid::NAME_ARRAY => {
                Self::Text
            }
            oid::BYTEA_ARRAY => Self::Bytea,
            oid::DATE_ARRAY => Self::Date,
            oid::TIME_ARRAY => Self::Time,
            oid::TIMESTAMP_ARRAY => Self::Timestamp,
            oid::TIMESTAMPTZ_ARRAY => Self::TimestampTz,
            oid::JSON_ARRAY => Self::Json,
            oid::JSONB_ARRAY => Self::Jsonb,
            oid::UUID_ARRAY => Self::Uuid,
            _ => return None,
        })
    }
}

/// What a source column decodes as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgKind {
    /// One value into its own Arrow type.
    Scalar(Scalar),
    /// An array of scalars, rendered as JSON text.
    Array(Scalar),
}

/// Whether a column of this type needs its typmod to pick its Arrow type.
pub(crate) fn needs_typmod(type_oid: u32) -> bool {
    type_oid == oid::NUMERIC
}

/// Precision and scale from a numeric typmod (`-1` means unconstrained).
pub(crate) fn numeric_typmod(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    // Since PostgreSQL 15 the scale is an 11-bit signed field.
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    Some((precision, scale))
}

/// The numeric typmod for `numeric(precision, scale)`.
pub(crate) fn numeric_typmod_of(precision: u8, scale: i8) -> i32 {
    ((i32::from(precision) << 16) | (i32::from(scale) & 0x7ff)) + 4
}

/// Maps one result column to its decoding and canonical Arrow field, or explains which cast
/// would make it readable.
pub(crate) fn source_field(
    name: &str,
    type_oid: u32,
    typmod: i32,
    type_name: &str,
) -> Result<(PgKind, Field), ConnectorError> {
    let plain = |dt: DataType| Field::new(name, dt, true);
    if let Some(scalar) = Scalar::of_array_oid(type_oid) {
        return Ok((PgKind::Array(scalar), json_field(name)));
    }
    let Some(scalar) = Scalar::of_oid(type_oid) else {
        return Err(ConnectorError::schema(
            name,
            format!(
                "column `{name}` has PostgreSQL type {type_name}, which Backflow cannot read; \
                 cast it in the query, e.g. `{name}::text`"
            ),
        ));
    };
    let field = match scalar {
        Scalar::Int2 => plain(DataType::Int16),
        Scalar::Int4 => plain(DataType::Int32),
        Scalar::Int8 => plain(DataType::Int64),
        Scalar::Float4 => plain(DataType::Float32),
        Scalar::Float8 => plain(DataType::Float64),
        Scalar::Numeric => {
            let (p, s) = match numeric_typmod(typmod) {
                None => UNCONSTRAINED_NUMERIC,
                Some((p, s)) if (1..=38).contains(&p) && s >= 0 && s <= p => (p as u8, s as i8),
                Some((p, s)) => {
                    return Err(ConnectorError::schema(
                        name,
                        format!(
                            "column `{name}` has PostgreSQL type numeric({p},{s}), which does \
                             not fit Decimal128 (at most 38 digits, scale 0 to precision); cast \
                             it in the query, e.g. `{name}::numeric(38,{})` or `{name}::text`",
                            s.clamp(0, 38)
                        ),
                    ))
                }
            };
            plain(DataType::Decimal128(p, s))
        }
        Scalar::Bool => plain(DataType::Boolean),
        Scalar::Text => plain(DataType::Utf8),
        Scalar::Bytea => plain(DataType::Binary),
        Scalar::Date => plain(DataType::Date32),
        Scalar::Time => plain(DataType::Time64(TimeUnit::Microsecond)),
        Scalar::Timestamp => plain(DataType::Timestamp(TimeUnit::Microsecond, None)),
        Scalar::TimestampTz => plain(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))),
        Scalar::Json | Scalar::Jsonb => json_field(name),
        Scalar::Uuid => uuid_field(name),
    };
    Ok((PgKind::Scalar(scalar), field))
}

/// The PostgreSQL type a canonical type is written as: in staging tables, in tables that
/// `create_table` makes, and by the COPY encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NativeType {
    /// SQL spelling, e.g. `numeric(12,2)`.
    pub(crate) sql: String,
    /// Type OID.
    pub(crate) oid: u32,
    /// Typmod a column declared with `sql` has (`-1` when none).
    pub(crate) typmod: i32,
}

/// The native PostgreSQL type of a canonical type; decimals with a negative scale are refused.
pub(crate) fn native_type(column: &str, t: &CanonicalType) -> Result<NativeType, ConnectorError> {
    let simple = |sql: &str, oid: u32| NativeType {
        sql: sql.to_string(),
        oid,
        typmod: -1,
    };
    Ok(match t {
        CanonicalType::Int16 => simple("int2", oid::INT2),
        CanonicalType::Int32 => simple("int4", oid::INT4),
        CanonicalType::Int64 => simple("int8", oid::INT8),
        CanonicalType::Decimal { precision, scale } => {
            if *scale < 0 || *precision == 0 || *precision > 38 || (*scale as u8) > *precision {
                return Err(ConnectorError::schema(
                    column,
                    format!(
                        "Decimal128({precision}, {scale}) cannot be written to PostgreSQL: \
                         the scale must be between 0 and the precision"
                    ),
                ));
            }
            NativeType {
                sql: format!("numeric({precision},{scale})"),
                oid: oid::NUMERIC,
                typmod: numeric_typmod_of(*precision, *scale),
            }
        }
        CanonicalType::Float32 => simple("float4", oid::FLOAT4),
        CanonicalType::Float64 => simple("float8", oid::FLOAT8),
        CanonicalType::Boolean => simple("bool", oid::BOOL),
        CanonicalType::Text => simple("text", oid::TEXT),
        CanonicalType::Binary => simple("bytea", oid::BYTEA),
        CanonicalType::Date => simple("date", oid::DATE),
        CanonicalType::Time => simple("time", oid::TIME),
        CanonicalType::Timestamp => simple("timestamp", oid::TIMESTAMP),
        CanonicalType::TimestampTz => simple("timestamptz", oid::TIMESTAMPTZ),
        CanonicalType::Json => simple("jsonb", oid::JSONB),
        CanonicalType::Uuid => simple("uuid", oid::UUID),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods_round_trip() {
        assert_eq!(numeric_typmod(-1), None);
        let t = numeric_typmod_of(38, 10);
        assert_eq!(numeric_typmod(t), Some((38, 10)));
        assert_eq!(numeric_typmod(numeric_typmod_of(5, 0)), Some((5, 0)));
        // numeric(10,2) as stored by PostgreSQL.
        assert_eq!(numeric_typmod(655366), Some((10, 2)));
    }

    #[test]
    fn unknown_types_suggest_a_cast() {
        let e = source_field("span", 1186, -1, "INTERVAL").unwrap_err();
        assert_eq!(e.column(), Some("span"));
        assert!(e.message().contains("INTERVAL"), "{e}");
        assert!(e.message().contains("span::text"), "{e}");
        let e = source_field(
            "n",
            oid::NUMERIC,
            numeric_typmod_of(38, 2) + (12 << 16),
            "NUMERIC",
        )
        .unwrap_err();
        assert!(e.message().contains("numeric(50,2)"), "{e}");
    }
}

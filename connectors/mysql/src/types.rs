//! The Arrow → MySQL type mapping of the destination: the native types `create_table` uses and
//! which existing column types accept each canonical type.

use backflow_connector_core::{CanonicalType, ConnectorError};

/// Longest key text or binary value `create_table` allows: 255 characters of utf8mb4 are 1020
/// bytes, so a composite key of three such columns stays under InnoDB's 3072-byte index limit.
pub(crate) const KEY_VARCHAR_LENGTH: u32 = 255;

/// MySQL's largest DECIMAL scale.
const MAX_SCALE: i8 = 30;

/// The column definition `create_table` uses for a canonical type. Key columns need a bounded
/// length to be indexed, so text and binary key columns are `VARCHAR(255)` / `VARBINARY(255)`.
pub(crate) fn native_type(
    column: &str,
    canonical: &CanonicalType,
    in_key: bool,
) -> Result<String, ConnectorError> {
    Ok(match canonical {
        CanonicalType::Int16 => "SMALLINT".to_string(),
        CanonicalType::Int32 => "INT".to_string(),
        CanonicalType::Int64 => "BIGINT".to_string(),
        CanonicalType::Decimal { precision, scale } => {
            if *scale < 0 || *scale > MAX_SCALE || *scale as u8 > *precision {
                return Err(ConnectorError::schema(
                    column,
                    format!(
                        "Decimal128({precision}, {scale}) has no MySQL DECIMAL form: the scale must \
                         be between 0 and {MAX_SCALE} and at most the precision"
                    ),
                ));
            }
            format!("DECIMAL({precision},{scale})")
        }
        CanonicalType::Float32 => "FLOAT".to_string(),
        CanonicalType::Float64 => "DOUBLE".to_string(),
        CanonicalType::Boolean => "BOOLEAN".to_string(),
        CanonicalType::Text if in_key => format!("VARCHAR({KEY_VARCHAR_LENGTH})"),
        CanonicalType::Text => "LONGTEXT".to_string(),
        CanonicalType::Binary if in_key => format!("VARBINARY({KEY_VARCHAR_LENGTH})"),
        CanonicalType::Binary => "LONGBLOB".to_string(),
        CanonicalType::Date => "DATE".to_string(),
        CanonicalType::Time => "TIME(6)".to_string(),
        CanonicalType::Timestamp => "DATETIME(6)".to_string(),
        CanonicalType::TimestampTz => "DATETIME(6) COMMENT 'UTC'".to_string(),
        CanonicalType::Json => "JSON".to_string(),
        CanonicalType::Uuid => "BINARY(16)".to_string(),
    })
}

/// The families of MySQL column types (information_schema `DATA_TYPE`).
fn family(data_type: &str) -> &'static str {
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
        | "numeric" | "float" | "double" | "real" | "bit" | "year" => "number",
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" | "uuid" | "inet4" | "inet6" => "text",
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => "binary",
        "date" => "date",
        "time" => "time",
        "datetime" | "timestamp" => "datetime",
        _ => "other",
    }
}

/// Whether an existing column of `data_type` can take values of `canonical`. MySQL converts
/// between most types; this refuses only the pairs where every value would be refused (or
/// silently mangled), so the mistake shows at `check` rather than as rejected rows.
pub(crate) fn accepts(data_type: &str, canonical: &CanonicalType) -> bool {
    let family = family(data_type);
    if family == "text" {
        return true;
    }
    match canonical {
        CanonicalType::Int16
        | CanonicalType::Int32
        | CanonicalType::Int64
        | CanonicalType::Decimal { .. }
        | CanonicalType::Float32
        | CanonicalType::Float64
        | CanonicalType::Boolean => family == "number",
        CanonicalType::Text | CanonicalType::Json => family != "other",
        CanonicalType::Binary | CanonicalType::Uuid => family == "binary",
        CanonicalType::Date => matches!(family, "date" | "datetime"),
        CanonicalType::Time => family == "time",
        CanonicalType::Timestamp | CanonicalType::TimestampTz => {
            matches!(family, "date" | "datetime")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_canonical_types() {
        let d = CanonicalType::Decimal {
            precision: 12,
            scale: 2,
        };
        assert_eq!(native_type("x", &d, false).unwrap(), "DECIMAL(12,2)");
        assert_eq!(
            native_type("x", &CanonicalType::Text, true).unwrap(),
            "VARCHAR(255)"
        );
        let bad = CanonicalType::Decimal {
            precision: 38,
            scale: -2,
        };
        assert_eq!(
            native_type("amount", &bad, false).unwrap_err().column(),
            Some("amount")
        );
        assert!(accepts("char", &CanonicalType::Uuid));
        assert!(accepts("binary", &CanonicalType::Uuid));
        assert!(!accepts("int", &CanonicalType::Date));
        assert!(!accepts("date", &CanonicalType::Binary));
    }
}

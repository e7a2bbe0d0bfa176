//! Text forms of BigQuery values: parsing what the REST API returns and rendering what goes
//! into JSON, identically for both read paths so a row hashes the same whichever path read it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

const MICROS_PER_SECOND: i64 = 1_000_000;

/// A decimal's text (`-12.5`, `+3`, `.5`) as an integer scaled by `scale`, if it fits an
/// `i128` without losing digits.
pub(crate) fn parse_decimal(text: &str, scale: u32) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let scale = scale as usize;
    if frac.len() > scale && frac[scale..].bytes().any(|b| b != b'0') {
        return None;
    }
    let mut value: i128 = 0;
    for b in int
        .bytes()
        .chain(frac.bytes().chain(std::iter::repeat(b'0')).take(scale))
    {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

/// The exact text of the unscaled integer `digits` (as printed, with an optional `-`) at
/// `scale`, in the normal form [`normalize_decimal`] gives.
pub(crate) fn scaled_text(digits: &str, scale: u32) -> String {
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, digits),
    };
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits.to_string()
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if negative { "-" } else { "" };
    normalize_decimal(&format!("{sign}{int}.{frac}"))
}

/// A decimal's text in one normal form: no `+`, no leading zeros, no trailing fractional
/// zeros, no `-0` (`+007.500` → `7.5`). Text that is not a plain decimal is returned as it is.
pub(crate) fn normalize_decimal(text: &str) -> String {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return text.to_string();
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.is_empty();
    let sign = if negative && !zero { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub(crate) fn parse_date(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    i32::try_from((date - epoch()).num_days()).ok()
}

/// `YYYY-MM-DD` of days since 1970-01-01.
pub(crate) fn date_text(days: i32) -> String {
    (epoch() + chrono::Duration::days(i64::from(days)))
        .format("%Y-%m-%d")
        .to_string()
}

/// Microseconds since midnight of an `HH:MM:SS[.ffffff]` time.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    let t = NaiveTime::parse_from_str(text.trim(), "%H:%M:%S%.f").ok()?;
    Some(
        i64::from(t.num_seconds_from_midnight()) * MICROS_PER_SECOND
            + i64::from(t.nanosecond() / 1000),
    )
}

/// `HH:MM:SS[.ffffff]` of microseconds since midnight.
pub(crate) fn time_text(micros: i64) -> String {
    let secs = micros.div_euclid(MICROS_PER_SECOND);
    let nanos = micros.rem_euclid(MICROS_PER_SECOND) * 1000;
    NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, nanos as u32)
        .map(|t| t.format("%H:%M:%S%.6f").to_string())
        .map(|s| trim_micros(&s))
        .unwrap_or_else(|| micros.to_string())
}

/// Microseconds since 1970-01-01T00:00:00 of a wall-clock `YYYY-MM-DD[T ]HH:MM:SS[.ffffff]`.
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    Some(t.and_utc().timestamp_micros())
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` of wall-clock microseconds.
pub(crate) fn datetime_text(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| trim_micros(&t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()))
        .unwrap_or_else(|| micros.to_string())
}

/// Microseconds since the epoch of a `TIMESTAMP` as the REST API may render it: integer
/// microseconds (`formatOptions.useInt64Timestamp`), floating-point seconds (`1.6E9`), or
/// text with a zone (`2024-01-02 03:04:05.5 UTC`, RFC 3339).
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(micros) = text.parse::<i64>() {
        return Some(micros);
    }
    if let Some(micros) = parse_seconds(text) {
        return Some(micros);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    let zoneless = text
        .strip_suffix(" UTC")
        .or_else(|| text.strip_suffix('Z'))
        .or_else(|| text.strip_suffix("+00:00"))
        .or_else(|| text.strip_suffix("+00"))
        .unwrap_or(text);
    parse_datetime(zoneless)
}

/// Seconds as a decimal (`1700000000.123456`, exact) or in exponent form (`1.7E9`, through
/// `f64`, rounded to the microsecond).
fn parse_seconds(text: &str) -> Option<i64> {
    if text.contains(['e', 'E']) {
        let seconds: f64 = text.parse().ok()?;
        let micros = (seconds * 1e6).round();
        return (micros.is_finite() && micros.abs() < 9.2e18).then_some(micros as i64);
    }
    let micros = parse_decimal(text, 6)?;
    i64::try_from(micros).ok()
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` of an instant.
pub(crate) fn timestamp_text(micros: i64) -> String {
    format!("{}Z", datetime_text(micros))
}

/// A float as JSON: a number, or BigQuery's text for the values JSON has no number for.
pub(crate) fn float_json(v: f64) -> serde_json::Value {
    if v.is_nan() {
        serde_json::Value::String("NaN".into())
    } else if v.is_infinite() {
        serde_json::Value::String(if v > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Bytes as BigQuery renders them in JSON: standard base64.
pub(crate) fn bytes_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::Value::String(STANDARD.encode(bytes))
}

/// Decodes the base64 the REST API uses for `BYTES`.
pub(crate) fn parse_bytes(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// Drops trailing zeros of a `.ffffff` fraction, and the point when nothing is left.
fn trim_micros(text: &str) -> String {
    match text.rsplit_once('.') {
        Some((head, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                head.to_string()
            } else {
                format!("{head}.{frac}")
            }
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_and_normalise() {
        assert_eq!(parse_decimal("-12.5", 9), Some(-12_500_000_000));
        assert_eq!(parse_decimal("1.0000000001", 9), None);
        assert_eq!(parse_decimal("x", 9), None);
        assert_eq!(normalize_decimal("+007.500"), "7.5");
        assert_eq!(normalize_decimal("-0.000"), "0");
        assert_eq!(normalize_decimal("NaN"), "NaN");
        assert_eq!(scaled_text("-1250", 2), "-12.5");
        assert_eq!(scaled_text("5", 3), "0.005");
        assert_eq!(scaled_text("0", 38), "0");
    }

    #[test]
    fn dates_and_times_round_trip() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(parse_time("01:02:03.000004"), Some(3_723_000_004));
        assert_eq!(time_text(3_723_000_004), "01:02:03.000004");
        assert_eq!(time_text(3_723_500_000), "01:02:03.5");
        assert_eq!(parse_datetime("1970-01-01 00:00:01.5"), Some(1_500_000));
        assert_eq!(datetime_text(1_500_000), "1970-01-01T00:00:01.5");
    }

    #[test]
    fn timestamps_parse_in_every_rest_form() {
        assert_eq!(parse_timestamp("1500000"), Some(1_500_000));
        assert_eq!(parse_timestamp("1.5"), Some(1_500_000));
        assert_eq!(parse_timestamp("1.5E0"), Some(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:01.5 UTC"),
            Some(1_500_000)
        );
        assert_eq!(
            parse_timestamp("1970-01-01T01:00:01.5+01:00"),
            Some(1_500_000)
        );
        assert_eq!(timestamp_text(1_500_000), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn floats_and_bytes_render_as_json() {
        assert_eq!(float_json(f64::NAN), serde_json::json!("NaN"));
        assert_eq!(float_json(-f64::INFINITY), serde_json::json!("-Infinity"));
        assert_eq!(float_json(1.5), serde_json::json!(1.5));
        assert_eq!(bytes_json(b"\x00\xff"), serde_json::json!("AP8="));
        assert_eq!(parse_bytes("AP8="), Some(vec![0, 255]));
    }
}

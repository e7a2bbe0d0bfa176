//! PostgreSQL's binary `numeric`: base-10000 digits with a weight, a sign and a display scale.
//!
//! `ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: [i16; ndigits]`, where the value
//! is `Σ digits[i] × 10000^(weight − i)`. Leading and trailing zero digits are not stored.

/// Sign word of a positive value.
const POS: u16 = 0x0000;
/// Sign word of a negative value.
const NEG: u16 = 0x4000;
/// Sign word of NaN.
const NAN: u16 = 0xC000;
/// Sign word of +Infinity.
const PINF: u16 = 0xD000;
/// Sign word of -Infinity.
const NINF: u16 = 0xF000;

/// Why a numeric could not become a `Decimal128`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NumericError {
    /// NaN, Infinity or -Infinity (named).
    Special(&'static str),
    /// Too many digits, or non-zero digits beyond the scale.
    DoesNotFit,
    /// The bytes are not a numeric.
    Malformed,
}

struct Parsed<'a> {
    weight: i32,
    sign: u16,
    dscale: u16,
    digits: &'a [u8],
}

impl Parsed<'_> {
    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }

    fn digit(&self, i: usize) -> i32 {
        i32::from(i16::from_be_bytes([
            self.digits[2 * i],
            self.digits[2 * i + 1],
        ]))
    }
}

fn parse(data: &[u8]) -> Result<Parsed<'_>, NumericError> {
    if data.len() < 8 {
        return Err(NumericError::Malformed);
    }
    let ndigits = i16::from_be_bytes([data[0], data[1]]);
    let weight = i16::from_be_bytes([data[2], data[3]]);
    let sign = u16::from_be_bytes([data[4], data[5]]);
    let dscale = u16::from_be_bytes([data[6], data[7]]);
    let ndigits = usize::try_from(ndigits).map_err(|_| NumericError::Malformed)?;
    if data.len() != 8 + 2 * ndigits {
        return Err(NumericError::Malformed);
    }
    let parsed = Parsed {
        weight: i32::from(weight),
        sign,
        dscale,
        digits: &data[8..],
    };
    if (0..ndigits).any(|i| !(0..10000).contains(&parsed.digit(i))) {
        return Err(NumericError::Malformed);
    }
    Ok(parsed)
}

fn special(sign: u16) -> Result<(), NumericError> {
    match sign {
        POS | NEG => Ok(()),
        NAN => Err(NumericError::Special("NaN")),
        PINF => Err(NumericError::Special("Infinity")),
        NINF => Err(NumericError::Special("-Infinity")),
        _ => Err(NumericError::Malformed),
    }
}

/// The unscaled `i128` of `Decimal128(precision, scale)` holding exactly this numeric.
pub(crate) fn decode_decimal(data: &[u8], precision: u8, scale: i8) -> Result<i128, NumericError> {
    let n = parse(data)?;
    special(n.sign)?;
    let mut acc: i128 = 0;
    for i in 0..n.ndigits() {
        let d = i128::from(n.digit(i));
        if d == 0 {
            continue;
        }
        // This digit stands for d × 10^(4·(weight − i)); scaled by 10^scale.
        let exp = 4 * (n.weight - i as i32) + i32::from(scale);
        let term = if exp >= 0 {
            let factor = 10i128
                .checked_pow(exp as u32)
                .ok_or(NumericError::DoesNotFit)?;
            d.checked_mul(factor).ok_or(NumericError::DoesNotFit)?
        } else if exp <= -4 {
            // Every digit of this group is below the scale, and it is not zero.
            return Err(NumericError::DoesNotFit);
        } else {
            let div = 10i128.pow((-exp) as u32);
            if d % div != 0 {
                return Err(NumericError::DoesNotFit);
            }
            d / div
        };
        acc = acc.checked_add(term).ok_or(NumericError::DoesNotFit)?;
    }
    if acc >= 10i128.pow(u32::from(precision)) {
        return Err(NumericError::DoesNotFit);
    }
    Ok(if n.sign == NEG { -acc } else { acc })
}

/// The numeric as PostgreSQL prints it (`-12.50`, `NaN`, `Infinity`), at any precision.
pub(crate) fn to_text(data: &[u8]) -> Result<String, NumericError> {
    let n = parse(data)?;
    match special(n.sign) {
        Ok(()) => {}
        Err(NumericError::Special(name)) => return Ok(name.to_string()),
        Err(e) => return Err(e),
    }
    let mut out = String::new();
    if n.sign == NEG && n.ndigits() > 0 {
        out.push('-');
    }
    let group = |k: i32| -> i32 {
        if k >= 0 && (k as usize) < n.ndigits() {
            n.digit(k as usize)
        } else {
            0
        }
    };
    if n.weight < 0 {
        out.push('0');
    } else {
        for k in 0..=n.weight {
            if k == 0 {
                out.push_str(&group(k).to_string());
            } else {
                out.push_str(&format!("{:04}", group(k)));
            }
        }
    }
    if n.dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut k = n.weight + 1;
        while frac.len() < usize::from(n.dscale) {
            frac.push_str(&format!("{:04}", group(k)));
            k += 1;
        }
        frac.truncate(usize::from(n.dscale));
        out.push_str(&frac);
    }
    Ok(out)
}

/// Appends the binary numeric for `unscaled × 10^-scale` (without the length prefix).
pub(crate) fn encode_decimal(unscaled: i128, scale: u8, out: &mut Vec<u8>) {
    let negative = unscaled < 0;
    let mut decimal = unscaled.unsigned_abs().to_string();
    let s = usize::from(scale);
    if decimal.len() <= s {
        decimal = format!("{}{decimal}", "0".repeat(s + 1 - decimal.len()));
    }
    let (int_part, frac_part) = decimal.split_at(decimal.len() - s);
    let int_padded = format!("{}{int_part}", "0".repeat((4 - int_part.len() % 4) % 4));
    let frac_padded = format!("{frac_part}{}", "0".repeat((4 - frac_part.len() % 4) % 4));
    let mut groups: Vec<i16> = int_padded
        .as_bytes()
        .chunks(4)
        .chain(frac_padded.as_bytes().chunks(4))
        .map(|c| c.iter().fold(0i16, |acc, b| acc * 10 + i16::from(b - b'0')))
        .collect();
    let mut weight = (int_padded.len() / 4) as i32 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let (weight, sign) = if groups.is_empty() {
        (0, POS)
    } else {
        (weight, if negative { NEG } else { POS })
    };
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&u16::from(scale).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(v: i128, scale: u8) -> Vec<u8> {
        let mut out = Vec::new();
        encode_decimal(v, scale, &mut out);
        out
    }

    fn round_trip(v: i128, precision: u8, scale: u8) {
        let bytes = encoded(v, scale);
        assert_eq!(
            decode_decimal(&bytes, precision, scale as i8),
            Ok(v),
            "{v} scale {scale}"
        );
    }

    #[test]
    fn encode_decode_edge_cases() {
        round_trip(0, 1, 0);
        round_trip(0, 38, 10);
        round_trip(-1, 5, 2);
        round_trip(-123_456_789, 12, 4);
        // 1e-10 at scale 10.
        round_trip(1, 11, 10);
        // 10^37 with scale 0, and the largest 38-digit values.
        round_trip(10i128.pow(37), 38, 0);
        round_trip(10i128.pow(38) - 1, 38, 10);
        round_trip(-(10i128.pow(38) - 1), 38, 38);
        // scale larger than the number of digits: 0.000000000000000000000000000000000007
        round_trip(7, 38, 36);
        round_trip(10000, 10, 4);
        round_trip(12_3400, 10, 4);
    }

    #[test]
    fn wire_layout_matches_postgres() {
        // 1e-10 (scale 10): one digit 100 at weight -3.
        assert_eq!(encoded(1, 10), vec![0, 1, 0xff, 0xfd, 0, 0, 0, 10, 0, 100]);
        // 10^37: digit 10 at weight 9.
        assert_eq!(
            encoded(10i128.pow(37), 0),
            vec![0, 1, 0, 9, 0, 0, 0, 0, 0, 10]
        );
        // zero keeps its display scale.
        assert_eq!(encoded(0, 3), vec![0, 0, 0, 0, 0, 0, 0, 3]);
        // -12.5 (scale 1): digits 12, 5000 at weight 0, negative.
        assert_eq!(
            encoded(-125, 1),
            vec![0, 2, 0, 0, 0x40, 0, 0, 1, 0, 12, 0x13, 0x88]
        );
    }

    #[test]
    fn text_rendering() {
        assert_eq!(to_text(&encoded(-125, 1)).unwrap(), "-12.5");
        assert_eq!(to_text(&encoded(1, 10)).unwrap(), "0.0000000001");
        assert_eq!(to_text(&encoded(0, 2)).unwrap(), "0.00");
        assert_eq!(
            to_text(&encoded(10i128.pow(37), 0)).unwrap(),
            format!("1{}", "0".repeat(37))
        );
        assert_eq!(to_text(&encoded(1_0000_0001, 4)).unwrap(), "10000.0001");
        assert_eq!(to_text(&[0, 0, 0, 0, 0xC0, 0, 0, 0]).unwrap(), "NaN");
    }

    #[test]
    fn refuses_what_does_not_fit() {
        // 0.123 into scale 2 would lose a digit.
        assert_eq!(
            decode_decimal(&encoded(123, 3), 10, 2),
            Err(NumericError::DoesNotFit)
        );
        // 0.120 into scale 2 is fine.
        assert_eq!(decode_decimal(&encoded(120, 3), 10, 2), Ok(12));
        // 1000 into precision 3.
        assert_eq!(
            decode_decimal(&encoded(1000, 0), 3, 0),
            Err(NumericError::DoesNotFit)
        );
        // 10^38 into anything.
        let mut big = Vec::new();
        big.extend_from_slice(&[0, 1, 0, 9, 0, 0, 0, 0, 0, 100]);
        assert_eq!(decode_decimal(&big, 38, 0), Err(NumericError::DoesNotFit));
        assert_eq!(
            decode_decimal(&[0, 0, 0, 0, 0xD0, 0, 0, 0], 38, 10),
            Err(NumericError::Special("Infinity"))
        );
        assert_eq!(
            decode_decimal(&[0, 1], 38, 10),
            Err(NumericError::Malformed)
        );
    }
}

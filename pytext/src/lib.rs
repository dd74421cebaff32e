//! Python's text of JSON values: what `str()` and `repr()` give for the values
//! `json.loads` makes (`None`, `True`, `1.5e-05`, `['a', 1]`, `{'id': ''}`). Ceilometer
//! feeds these to its message signatures, and its dynamic pollsters' expressions
//! produce them; Pollen's signatures and expression language share this one reading.
#![warn(missing_docs)]

use serde_json::Value;

/// Python's `str()` of a value decoded from JSON.
pub fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => python_repr(other),
    }
}

/// Python's `repr()` of a value decoded from JSON.
pub fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(integer), _) => integer.to_string(),
            (None, Some(integer)) => integer.to_string(),
            _ => python_float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => python_string_repr(text),
        Value::Array(items) => format!("[{}]", items.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", python_string_repr(k), python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr()` of a float: the shortest text that reads back the same, in fixed
/// notation for exponents from -4 to 15 and in scientific notation (`1e+16`,
/// `1.5e-05`) otherwise.
pub fn python_float(number: f64) -> String {
    let mut text = String::new();
    write_python_float(&mut text, number);
    text
}

/// Appends [`python_float`]'s text for `number` to `out`; whole numbers below 10^16,
/// the usual counter volumes, take a path without allocating.
pub fn write_python_float(out: &mut String, number: f64) {
    if number.fract() == 0.0 && number.abs() < 1e16 && !(number == 0.0 && number.is_sign_negative()) {
        out.push_str(itoa::Buffer::new().format(number as i64));
        out.push_str(".0");
        return;
    }
    out.push_str(&python_float_slow(number));
}

fn python_float_slow(number: f64) -> String {
    if number.is_nan() {
        return "nan".into();
    }
    if number.is_infinite() {
        return if number > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` is the shortest round-trip form too: `-1.2345e-5`, `1e16`.
    let scientific = format!("{number:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is a number");
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let fixed = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{fixed}")
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{fraction}e{exponent_sign}{:02}", exponent.unsigned_abs())
    }
}

/// Python's `repr()` of a string: single quotes unless the text has a single quote and
/// no double quote; backslash escapes for the quote, `\`, control characters and
/// other non-printable characters.
pub fn python_string_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr()` of a byte string (`b'caf\xc3\xa9'`); Python 2's byte strings
/// print the same without the `b`. Single quotes unless it has a single quote and no
/// double quote; `\t`, `\n`, `\r`, `\\`, the quote escaped; bytes below 0x20 and from
/// 0x7f as `\xNN`.
pub fn python_bytes_repr(bytes: &[u8], with_b: bool) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { b'"' } else { b'\'' };
    let mut out = String::with_capacity(bytes.len() + 3);
    if with_b {
        out.push('b');
    }
    out.push(quote as char);
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            b if !(0x20..0x7f).contains(&b) => out.push_str(&format!("\\x{b:02x}")),
            b => out.push(b as char),
        }
    }
    out.push(quote as char);
    out
}

/// Which Python prints a value Ceilometer signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Python {
    /// Python 3 (every Ceilometer since 10, and 9 where it ran on Python 3).
    Three,
    /// Python 2.7 (Ceilometer 9 and before, on Python 2).
    Two,
}

/// `repr()` of what Ceilometer's `decode_unicode` makes of a value before it signs a
/// list (`ceilometer/publisher/utils.py` in 27, `ceilometer/utils.py` in 9.0.7): text
/// becomes UTF-8 bytes (`[b'a', b'caf\xc3\xa9']` on Python 3, `['a', ...]` on Python
/// 2), mappings are rebuilt with their keys sorted (Python 2 then prints them in its
/// hash order, which this cannot know: sorted is printed), numbers, booleans and
/// `None` stay (Python 2 prints integers past 2^63 - 1 with an `L`).
pub fn decoded_repr(value: &Value, python: Python) -> String {
    let mut out = String::new();
    write_decoded(&mut out, value, python);
    out
}

fn write_decoded(out: &mut String, value: &Value, python: Python) {
    match value {
        Value::String(text) => out.push_str(&python_bytes_repr(text.as_bytes(), python == Python::Three)),
        Value::Number(number) if python == Python::Two && number.as_i64().is_none() && number.as_u64().is_some() => {
            out.push_str(&python_repr(value));
            out.push('L');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_decoded(out, item, python);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                out.push_str(&python_bytes_repr(key.as_bytes(), python == Python::Three));
                out.push_str(": ");
                write_decoded(out, item, python);
            }
            out.push('}');
        }
        other => out.push_str(&python_repr(other)),
    }
}

/// Python 2's `str()` of a float: 12 significant digits (`'%.12g'`), then `.0` when
/// that reads as an integer (CPython 2.7, `Objects/floatobject.c`: `float_str` with
/// `PyFloat_STR_PRECISION` 12 and `Py_DTSF_ADD_DOT_0`).
pub fn python2_float_str(number: f64) -> String {
    if number.is_nan() {
        return "nan".into();
    }
    if number.is_infinite() {
        return if number > 0.0 { "inf".into() } else { "-inf".into() };
    }
    const PRECISION: i32 = 12;
    let scientific = format!("{:.*e}", PRECISION as usize - 1, number);
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is a number");
    let trim = |text: &str| -> String {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text.to_string()
        }
    };
    if !(-4..PRECISION).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.unsigned_abs())
    } else {
        let fixed = trim(&format!("{:.*}", (PRECISION - 1 - exponent) as usize, number));
        if fixed.contains('.') {
            fixed
        } else {
            format!("{fixed}.0")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The Python 3 line is what Ceilometer 27 itself printed for this list:
    /// `str(value)` of what `recursive_keypairs` (`ceilometer/publisher/utils.py`, through
    /// `decode_unicode`) yields, run in the venv of `scripts/ceilometer.sh`; Python 2's
    /// is the same without the `b` (its byte strings' `repr`, `Objects/stringobject.c`).
    #[test]
    fn lists_print_as_ceilometer_signs_them() {
        let list = json!(["x", "it's", "café", 1.5, null, 10, {"k": ["v"], "a": true}]);
        assert_eq!(
            decoded_repr(&list, Python::Three),
            "[b'x', b\"it's\", b'caf\\xc3\\xa9', 1.5, None, 10, {b'a': True, b'k': [b'v']}]"
        );
        assert_eq!(
            decoded_repr(&list, Python::Two),
            "['x', \"it's\", 'caf\\xc3\\xa9', 1.5, None, 10, {'a': True, 'k': ['v']}]"
        );
        assert_eq!(decoded_repr(&json!([18446744073709551615u64]), Python::Two), "[18446744073709551615L]");
        assert_eq!(python_bytes_repr(b"tab\there\\", true), "b'tab\\there\\\\'");
    }

    /// The table is Python's own `format(x, '.12g')` with `.0` added where it reads as
    /// an integer, which is CPython 2.7's `float_str` (`Objects/floatobject.c`, with
    /// `PyFloat_STR_PRECISION` 12 from `Include/floatobject.h` and `Py_DTSF_ADD_DOT_0`).
    #[test]
    fn python2_prints_floats_with_twelve_digits() {
        let cases = [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (1.0 / 3.0, "0.333333333333"),
            (2.5, "2.5"),
            (123456789.12345679, "123456789.123"),
            (123456789012.0, "123456789012.0"),
            (1234567890123.0, "1.23456789012e+12"),
            (1e16, "1e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-0.5, "-0.5"),
            (0.0, "0.0"),
        ];
        for (number, python2) in cases {
            assert_eq!(python2_float_str(number), python2, "{number:?}");
        }
    }

    #[test]
    fn floats_print_as_python_prints_them() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1024.0, "1024.0"),
            (-7.0, "-7.0"),
            (9007199254740992.0, "9007199254740992.0"),
            (0.1, "0.1"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.795314278469025e18, "1.795314278469025e+18"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (f64::NAN, "nan"),
        ];
        for (number, python) in cases {
            assert_eq!(python_float(number), python, "{number:?}");
        }
    }

    #[test]
    fn values_print_as_python_prints_them() {
        assert_eq!(python_str(&json!(null)), "None");
        assert_eq!(python_str(&json!(true)), "True");
        assert_eq!(python_str(&json!("plain text")), "plain text");
        assert_eq!(python_str(&json!(42)), "42");
        assert_eq!(python_str(&json!(["a", 1, null, 2.5])), "['a', 1, None, 2.5]");
        assert_eq!(python_str(&json!(["it's"])), "[\"it's\"]");
        assert_eq!(python_str(&json!([{"id": "x"}])), "[{'id': 'x'}]");
    }
}

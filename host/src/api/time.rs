//! Times as Ceilometer's API writes and reads them: naive UTC ISO 8601
//! (`2026-12-07T10:00:00`, microseconds only when there are some).

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Python's `datetime.isoformat()` of a naive UTC time, from microseconds since the
/// epoch.
pub fn isoformat(us: i64) -> String {
    let Some(time) = DateTime::from_timestamp_micros(us) else { return us.to_string() };
    let time = time.naive_utc();
    if us.rem_euclid(1_000_000) == 0 {
        time.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        time.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// Microseconds since the epoch of an ISO 8601 time, as `oslo_utils.timeutils.
/// parse_isotime` reads it: a date, or a date and time (`T` or a space), seconds
/// and fraction optional, an offset (`Z`, `+02:00`) converted to UTC, none taken
/// as UTC.
pub fn parse_isotime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.timestamp_micros());
        }
    }
    let naive = text.strip_suffix('Z').unwrap_or(text);
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(time.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_print_as_ceilometer_does() {
        let at = parse_isotime("2013-12-01T18:00:00").unwrap();
        assert_eq!(isoformat(at), "2013-12-01T18:00:00");
        assert_eq!(parse_isotime("2013-12-01T19:00:00+01:00"), Some(at));
        assert_eq!(parse_isotime("2013-12-01T18:00:00Z"), Some(at));
        assert_eq!(parse_isotime("2013-12-01 18:00"), Some(at));
        assert_eq!(parse_isotime("2013-12-01"), Some(at - 18 * 3_600_000_000));
        assert_eq!(isoformat(at + 1500), "2013-12-01T18:00:00.001500");
        assert_eq!(parse_isotime("yesterday"), None);
    }
}

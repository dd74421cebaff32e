//! Retention: how long samples are kept, per meter pattern (Ceilometer's
//! `metering_time_to_live`, per meter), enforced by the collector itself — no cron job.
//! The first rule whose pattern matches a meter's name gives its time to live; a meter
//! no rule matches is kept for ever.

use serde::Deserialize;
use std::time::Duration;

/// One rule of the collector's `retention` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// The meters it covers: a name, or a pattern with `*` and `?` (`cpu*`, `*`).
    pub meters: String,
    /// How long their samples are kept: `90d`, `12h`, `30m`, `45s`, or seconds.
    #[serde(deserialize_with = "time_to_live")]
    pub time_to_live: Duration,
}

/// What one pass of retention removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Samples deleted one by one.
    pub samples: u64,
    /// Whole partitions dropped (PostgreSQL).
    pub partitions: u64,
}

/// The time to live of a meter's samples, if a rule covers it.
pub fn time_to_live_of(rules: &[RetentionRule], meter: &str) -> Option<Duration> {
    rules.iter().find(|rule| wildmatch::WildMatch::new(&rule.meters).matches(meter)).map(|rule| rule.time_to_live)
}

/// Reads `90d`, `12h`, `30m`, `45s` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{text}` is not a duration: write e.g. `90d`, `12h`, `30m` or `3600`")),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration: write e.g. `90d` or `3600`"))?;
    if number == 0 {
        return Err("a time to live of 0 would delete every sample as it is stored".into());
    }
    number.checked_mul(seconds_per).map(Duration::from_secs).ok_or_else(|| format!("`{text}` is too long"))
}

fn time_to_live<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Seconds(u64),
        Text(String),
    }
    let text = match Given::deserialize(deserializer)? {
        Given::Seconds(seconds) => seconds.to_string(),
        Given::Text(text) => text,
    };
    parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_decides_and_unmatched_meters_are_kept() {
        let rules: Vec<RetentionRule> =
            serde_yaml::from_str("[{meters: 'cpu*', time_to_live: 7d}, {meters: 'memory', time_to_live: 3600}]")
                .unwrap();
        assert_eq!(time_to_live_of(&rules, "cpu"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(time_to_live_of(&rules, "cpu_util"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(time_to_live_of(&rules, "memory"), Some(Duration::from_secs(3600)));
        assert_eq!(time_to_live_of(&rules, "memory.usage"), None);
    }

    #[test]
    fn durations_read_with_their_unit_or_say_what_to_write() {
        assert_eq!(parse_duration("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("3 days").unwrap_err().contains("not a duration"));
        assert!(parse_duration("0s").unwrap_err().contains("every sample"));
        let error = serde_yaml::from_str::<RetentionRule>("{meters: '*', time_to_live: forever}").unwrap_err();
        assert!(error.to_string().contains("not a duration"), "{error}");
    }
}

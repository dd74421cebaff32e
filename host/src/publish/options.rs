//! Publisher options from a URL's query string (`?topic=metering&batch_size=100`):
//! typed getters, and an error for any option the publisher does not know.

use std::collections::BTreeMap;
use std::str::FromStr;

/// The query parameters of a publisher URL, consumed one by one.
pub struct Query {
    params: BTreeMap<String, String>,
    asked: Vec<String>,
}

impl Query {
    /// The parameters of `url` (a repeated one keeps its last value).
    pub fn new(url: &url::Url) -> Self {
        Self { params: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(), asked: Vec::new() }
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.asked.push(name.to_string());
        self.params.remove(name)
    }

    /// A text option.
    pub fn text(&mut self, name: &str) -> Option<String> {
        self.take(name)
    }

    /// A parsed option, or `default`.
    pub fn parse<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.take(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| format!("option `{name}={text}` is not valid")),
        }
    }

    /// A boolean option: `1`, `true`, `yes` or `0`, `false`, `no`; present without a
    /// value means true.
    pub fn flag(&mut self, name: &str) -> Result<bool, String> {
        match self.take(name).as_deref() {
            None => Ok(false),
            Some("" | "1" | "true" | "True" | "yes") => Ok(true),
            Some("0" | "false" | "False" | "no") => Ok(false),
            Some(other) => Err(format!("option `{name}={other}` is not a boolean (use 1 or 0)")),
        }
    }

    /// The options no getter asked for (kept in the URL a publisher posts to).
    pub fn remaining(self) -> Vec<(String, String)> {
        self.params.into_iter().collect()
    }

    /// Fails if an option was given that no getter asked for.
    pub fn finish(self) -> Result<(), String> {
        match self.params.keys().next() {
            None => Ok(()),
            Some(unknown) if self.asked.is_empty() => {
                Err(format!("unknown option `{unknown}`; this publisher takes none"))
            }
            Some(unknown) => {
                Err(format!("unknown option `{unknown}`; this publisher takes: {}", self.asked.join(", ")))
            }
        }
    }
}

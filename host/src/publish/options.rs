//! Publisher options from a URL's query string (`?topic=metering&batch_size=100`):
//! typed getters, an error for any option the publisher does not know, and the
//! host and port of socket publishers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;

/// A boolean option's value: `1`, `true`, `yes` (or nothing: present means true) and
/// `0`, `false`, `no`.
pub fn boolean(text: &str) -> Option<bool> {
    match text {
        "" | "1" | "true" | "True" | "yes" => Some(true),
        "0" | "false" | "False" | "no" => Some(false),
        _ => None,
    }
}

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

    /// A boolean option (see [`boolean`]), `false` when absent.
    pub fn flag(&mut self, name: &str) -> Result<bool, String> {
        self.flag_or(name, false)
    }

    /// A boolean option (see [`boolean`]), `default` when absent.
    pub fn flag_or(&mut self, name: &str, default: bool) -> Result<bool, String> {
        match self.take(name) {
            None => Ok(default),
            Some(text) => boolean(&text).ok_or(format!("option `{name}={text}` is not a boolean (use 1 or 0)")),
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
            Some(unknown) if self.asked.is_empty() => Err(format!("unknown option `{unknown}`; it takes none")),
            Some(unknown) => Err(format!(
                "unknown option `{unknown}`{}; it takes: {}",
                crate::suggest::did_you_mean(unknown, self.asked.iter().map(|a| &**a)),
                self.asked.join(", ")
            )),
        }
    }
}

/// Where a socket publisher (`udp://`, `tcp://`) sends.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketOptions {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl SocketOptions {
    /// Reads a `udp://` or `tcp://` URL; `default_port` applies when it has none.
    pub fn from_url(url: &url::Url, default_port: Option<u16>) -> Result<Self, String> {
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("names no host, e.g. `udp://collector:4952`")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port().or(default_port).ok_or("names no port, e.g. `tcp://collector:4953`")?;
        Query::new(url).finish()?;
        Ok(Self { host, port })
    }

    /// The addresses the host resolves to.
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((self.host.as_str(), self.port)).await?.collect())
    }
}

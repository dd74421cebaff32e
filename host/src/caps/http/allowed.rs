//! Which origins a plugin may reach: its `allowed_hosts`, written as Spin's
//! `allowed_outbound_hosts` are: `scheme://host[:port]`, where the scheme may be `*`,
//! the host `*` or `*.example.com` (its subdomains, not itself), and the port `*` or a
//! range `8000..8100`; without a port, the scheme's own (80, 443).

use std::fmt;

/// One entry of `allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemePattern {
    Http,
    Https,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// This host (lower case; an IPv6 address in brackets).
    Exact(String),
    /// Any host.
    Any,
    /// Any subdomain of this one, written with its leading dot: `.example.com`.
    Subdomains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// The scheme's default port.
    Default,
    Exact(u16),
    /// An inclusive range.
    Range(u16, u16),
    Any,
}

/// The scheme, host and port a request goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `true` for `https`.
    pub https: bool,
    /// Lower case; an IPv6 address in brackets.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl Origin {
    /// The origin of an absolute URI; `None` if it has no host or another scheme than
    /// `http` and `https`.
    pub fn of(uri: &http::Uri) -> Option<Self> {
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host().filter(|h| !h.is_empty())?.to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Self { https, host, port })
    }
}

impl std::str::FromStr for OriginPattern {
    type Err = String;

    /// Reads one entry; the error says what is wrong with it and how it is written.
    fn from_str(text: &str) -> Result<Self, String> {
        let example = "write origins as `https://glance.example:9292`, `http://127.0.0.1:*` or `https://*.example.com`";
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!("`{text}` has no scheme; {example}"));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => SchemePattern::Http,
            "https" => SchemePattern::Https,
            "*" => SchemePattern::Any,
            other => return Err(format!("`{text}`: scheme `{other}` is not http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!("`{text}` is more than an origin (a path, query or user); {example}"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| format!("`{text}`: cannot read its host; {example}"))?;
        let host = host_pattern(&host.to_ascii_lowercase()).map_err(|why| format!("`{text}`: {why}"))?;
        let port = match port {
            None => PortPattern::Default,
            Some(port) => port_pattern(port).map_err(|why| format!("`{text}`: {why}"))?,
        };
        Ok(Self { scheme, host, port })
    }
}

/// `host[:port]`, the host an IPv6 address in brackets or not.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if text.starts_with('[') {
        let end = text.find(']')?;
        let (host, after) = text.split_at(end + 1);
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match text.split_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((text, None)),
    }
}

fn host_pattern(host: &str) -> Result<HostPattern, String> {
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(HostPattern::Exact(host.to_string())),
            Err(_) => Err(format!("`{host}` is not an IPv6 address")),
        };
    }
    let (subdomains, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    let label_ok = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{host}` is not a host name or address (`*` may stand only for the whole host or its first label)"
        ));
    }
    Ok(match subdomains {
        true => HostPattern::Subdomains(format!(".{name}")),
        false => HostPattern::Exact(name.to_string()),
    })
}

fn port_pattern(port: &str) -> Result<PortPattern, String> {
    let number = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    if port == "*" {
        return Ok(PortPattern::Any);
    }
    if let Some((low, high)) = port.split_once("..") {
        return match (number(low), number(high)) {
            (Some(low), Some(high)) if low <= high => Ok(PortPattern::Range(low, high)),
            _ => Err(format!("port range `{port}` is not `low..high` with 1 <= low <= high <= 65535")),
        };
    }
    number(port).map(PortPattern::Exact).ok_or_else(|| format!("port `{port}` is not 1-65535, `*` or a range"))
}

impl OriginPattern {
    /// Whether a request to `origin` is allowed by this entry.
    pub fn allows(&self, origin: &Origin) -> bool {
        let scheme = match self.scheme {
            SchemePattern::Http => !origin.https,
            SchemePattern::Https => origin.https,
            SchemePattern::Any => true,
        };
        let host = match &self.host {
            HostPattern::Exact(host) => *host == origin.host,
            HostPattern::Any => true,
            HostPattern::Subdomains(suffix) => {
                origin.host.ends_with(suffix.as_str()) && origin.host.len() > suffix.len()
            }
        };
        let port = match self.port {
            PortPattern::Default => origin.port == if origin.https { 443 } else { 80 },
            PortPattern::Exact(port) => origin.port == port,
            PortPattern::Range(low, high) => (low..=high).contains(&origin.port),
            PortPattern::Any => true,
        };
        scheme && host && port
    }
}

/// A plugin's `allowed_hosts`, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(Vec<OriginPattern>);

impl AllowedHosts {
    /// Reads every entry; the first bad one is the error, with its index.
    pub fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        entries
            .iter()
            .enumerate()
            .map(|(index, entry)| entry.parse().map_err(|why| (index, why)))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether any entry allows `origin`.
    pub fn allows(&self, origin: &Origin) -> bool {
        self.0.iter().any(|pattern| pattern.allows(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(uri: &str) -> Origin {
        Origin::of(&uri.parse().unwrap()).unwrap()
    }

    fn allows(pattern: &str, uri: &str) -> bool {
        pattern.parse::<OriginPattern>().unwrap().allows(&origin(uri))
    }

    #[test]
    fn patterns_allow_what_spin_s_allow() {
        assert!(allows("https://glance.example:9292", "https://glance.example:9292/v2/images"));
        assert!(allows("https://Glance.Example:9292", "https://glance.example:9292/"));
        assert!(!allows("https://glance.example:9292", "http://glance.example:9292/"), "another scheme");
        assert!(!allows("https://glance.example:9292", "https://glance.example:9293/"), "another port");
        assert!(!allows("https://glance.example:9292", "https://evil.example:9292/"), "another host");
        assert!(allows("https://glance.example", "https://glance.example/"), "default port");
        assert!(!allows("https://glance.example", "https://glance.example:8443/"));
        assert!(allows("http://127.0.0.1:*", "http://127.0.0.1:35357/v3"));
        assert!(!allows("http://127.0.0.1:*", "http://127.0.0.2:35357/v3"));
        assert!(allows("*://api.example:8000..8100", "https://api.example:8080/"));
        assert!(!allows("*://api.example:8000..8100", "https://api.example:8101/"));
        assert!(allows("https://*.example.com", "https://a.example.com/"));
        assert!(allows("https://*.example.com", "https://a.b.example.com/"));
        assert!(!allows("https://*.example.com", "https://example.com/"), "the domain itself is not a subdomain");
        assert!(!allows("https://*.example.com", "https://badexample.com/"));
        assert!(allows("http://[::1]:8080", "http://[::1]:8080/"));
        assert!(allows("*://*:*", "http://anything:1/"));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (entry, says) in [
            ("glance.example:9292", "no scheme"),
            ("ftp://glance.example", "not http, https or *"),
            ("https://glance.example/v2", "more than an origin"),
            ("https://user@glance.example", "more than an origin"),
            ("https://glance.example:0", "not 1-65535"),
            ("https://glance.example:99999", "not 1-65535"),
            ("https://glance.example:9..1", "port range"),
            ("https://gl*nce.example", "not a host name"),
            ("https://[::zz]:80", "not an IPv6 address"),
            ("https://", "not a host name"),
        ] {
            let error = entry.parse::<OriginPattern>().unwrap_err();
            assert!(error.contains(says), "{entry}: {error}");
        }
    }

    #[test]
    fn origins_are_read_from_request_uris() {
        assert_eq!(origin("http://Keystone.Local/v3").to_string(), "http://keystone.local:80");
        assert_eq!(origin("https://[::1]/").to_string(), "https://[::1]:443");
        assert!(Origin::of(&"/relative".parse().unwrap()).is_none());
        assert!(Origin::of(&"ftp://host/".parse().unwrap()).is_none());
    }
}

//! The schema of one dynamic-pollster definition, with Ceilometer 27's defaults
//! (`PollsterDefinitions.standard_definitions` and the `extra_definitions` of its
//! subclasses, `ceilometer/polling/dynamic_pollster.py`), checked whole: every
//! problem of a definition is reported, each with the key it is at.

use crate::expr::{Expr, ParseError};
use crate::Attribute;
use serde_json::{Map, Value as Json};
use std::fmt;

/// Gauge, cumulative or delta (Ceilometer's `sample.TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleType {
    /// A point-in-time value.
    Gauge,
    /// A counter that only grows.
    Cumulative,
    /// The change since the previous reading.
    Delta,
}

/// How a response body is read (`response_handlers`), tried in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// JSON.
    Json,
    /// XML, as Python's `xmltodict` reads it.
    Xml,
    /// Plain text: one entry, `{"out": <the text>}`.
    Text,
}

/// Where a definition's requests go.
#[derive(Debug, Clone, PartialEq)]
pub enum Api {
    /// An OpenStack service of the catalog (`endpoint_type`), the agent's token on its
    /// requests; `url_path` relative to each of its endpoints, or absolute.
    OpenStack {
        /// The catalog's service type, e.g. `image`.
        endpoint_type: String,
    },
    /// Another API, at the absolute `url_path` (Ceilometer's non-OpenStack pollsters,
    /// `module` set): credentials, if any, are the agent's (`agent.credentials`),
    /// never the definition's.
    External {
        /// What Ceilometer's `module`/`authentication_object` asked for.
        auth: ExternalAuth,
    },
}

/// What a non-OpenStack definition's `module` and `authentication_object` map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalAuth {
    /// No `module`: whatever credential the agent holds for the URL's origin, if any.
    AgentCredential,
    /// `requests.auth`/`HTTPBasicAuth`: HTTP basic auth, with the agent's credential
    /// for the URL's origin.
    Basic,
}

/// `url_path`: a path or URL, or (where it parses as one and reads only the scope's
/// names) an expression that makes one, as Ceilometer's `eval` of it.
#[derive(Debug, Clone, PartialEq)]
pub enum UrlPath {
    /// Used as written.
    Literal(String),
    /// Evaluated with `sample`, `extra_metadata_captured` and `extra_metadata_by_name`.
    Expression {
        /// The parsed expression.
        expr: Expr,
        /// Its text (used as written where it cannot be evaluated, as Ceilometer does).
        text: String,
    },
}

/// The names a `url_path` expression may read, in [`UrlPath::Expression`]'s order.
pub const URL_PATH_NAMES: [&str; 3] = ["sample", "extra_metadata_captured", "extra_metadata_by_name"];

/// The part of a name that makes a multi-metric definition: `prefix.{category}` with
/// `value_attribute: "[categories].ops"`.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiMetric {
    /// The attribute of each listed object that names its sub-meter (`category`).
    pub name_attribute: String,
    /// The key of the list in each entry (`categories`).
    pub list_key: String,
}

/// A definition's `extra_metadata_fields` entry: a child request whose value becomes
/// one metadata key of each sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraMetadata {
    /// The metadata key.
    pub name: String,
    /// The catalog's service type it asks.
    pub endpoint_type: String,
    /// What it asks, usually an expression of `sample` (`'/v3/projects/' + str(sample['project_id'])`).
    pub url_path: UrlPath,
    /// What of the response becomes the value (`value`).
    pub value: Attribute,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// `response_entries_key`.
    pub response_entries_key: Option<Attribute>,
    /// `next_sample_url_attribute`.
    pub next_sample_url_attribute: Option<Attribute>,
    /// `metadata_fields`: keys of its response added as metadata too.
    pub metadata_fields: Vec<Attribute>,
    /// How long its responses are kept, seconds (the parent's by default).
    pub cache_seconds: u64,
    /// Samples matching one of these are not enriched.
    pub skip: Vec<Json>,
    /// How its responses are read.
    pub response_handlers: Vec<Handler>,
    /// Its request's timeout, seconds.
    pub timeout: Option<f64>,
}

/// One dynamic pollster, as its YAML defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The meter (and pollster) name; `prefix.{attribute}` for a multi-metric one.
    pub name: String,
    /// Set for a multi-metric definition.
    pub multi_metric: Option<MultiMetric>,
    /// `sample_type`.
    pub sample_type: SampleType,
    /// `unit`.
    pub unit: String,
    /// `value_attribute` (for a multi-metric definition, the field of each listed object).
    pub value_attribute: Attribute,
    /// Where its requests go.
    pub api: Api,
    /// `url_path`.
    pub url_path: UrlPath,
    /// `metadata_fields` (the text of each is its metadata key).
    pub metadata_fields: Vec<Attribute>,
    /// `skip_sample_values`.
    pub skip_sample_values: Vec<Json>,
    /// `value_mapping`: pairs, as YAML keys may be strings or numbers.
    pub value_mapping: Vec<(Json, Json)>,
    /// `default_value` (-1).
    pub default_value: Json,
    /// `metadata_mapping`.
    pub metadata_mapping: Vec<(String, String)>,
    /// `preserve_mapped_metadata` (true).
    pub preserve_mapped_metadata: bool,
    /// `response_entries_key`; none: the response's first key.
    pub response_entries_key: Option<Attribute>,
    /// `next_sample_url_attribute`.
    pub next_sample_url_attribute: Option<Attribute>,
    /// `user_id_attribute` (`user_id`).
    pub user_id_attribute: Attribute,
    /// `project_id_attribute` (`project_id`).
    pub project_id_attribute: Attribute,
    /// `resource_id_attribute` (`id`).
    pub resource_id_attribute: Attribute,
    /// `headers`.
    pub headers: Vec<(String, String)>,
    /// `timeout`, seconds (30); none: the agent's own bound.
    pub timeout: Option<f64>,
    /// `extra_metadata_fields`.
    pub extra_metadata_fields: Vec<ExtraMetadata>,
    /// `response_handlers` (`[json]`).
    pub response_handlers: Vec<Handler>,
    /// `namespaces` (`[central]`).
    pub namespaces: Vec<String>,
}

/// One problem of a definition: the key it is at (`url_path`,
/// `extra_metadata_fields[0].value`; empty for the definition as a whole), where in
/// that key's text when it is an expression, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The key's path in the definition.
    pub key: String,
    /// Byte offset into the key's text, for expressions.
    pub offset: Option<usize>,
    /// What is wrong and what to write instead.
    pub message: String,
    /// Whether it is only a warning (something Ceilometer uses that Pollen ignores).
    pub warning: bool,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(offset) = self.offset {
            write!(f, " (at character {})", offset + 1)?;
        }
        Ok(())
    }
}

/// Every key a definition may have.
const KEYS: [&str; 30] = [
    "name",
    "sample_type",
    "unit",
    "value_attribute",
    "endpoint_type",
    "url_path",
    "metadata_fields",
    "skip_sample_values",
    "value_mapping",
    "default_value",
    "metadata_mapping",
    "preserve_mapped_metadata",
    "response_entries_key",
    "next_sample_url_attribute",
    "user_id_attribute",
    "resource_id_attribute",
    "project_id_attribute",
    "headers",
    "timeout",
    "extra_metadata_fields_cache_seconds",
    "extra_metadata_fields",
    "extra_metadata_fields_skip",
    "response_handlers",
    "base_metadata",
    "namespaces",
    "module",
    "authentication_object",
    "authentication_parameters",
    "barbican_secret_id",
    "host_command",
];

/// Every key an `extra_metadata_fields` entry may have (a definition's, and `value`).
const EXTRA_KEYS: [&str; 17] = [
    "name",
    "endpoint_type",
    "url_path",
    "value",
    "value_attribute",
    "headers",
    "response_entries_key",
    "next_sample_url_attribute",
    "metadata_fields",
    "extra_metadata_fields_cache_seconds",
    "extra_metadata_fields_skip",
    "response_handlers",
    "timeout",
    "sample_type",
    "unit",
    "user_id_attribute",
    "project_id_attribute",
];

/// Ceilometer's `POLLSTER_VALID_NAMES_REGEXP`, `^([\w-]+)(\.[\w-]+)*(\.{[\w-]+})?$`.
fn valid_name(name: &str) -> bool {
    let word = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let mut parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 1 {
        if let Some(last) = parts.last().and_then(|p| p.strip_prefix('{')).and_then(|p| p.strip_suffix('}')) {
            if !word(last) {
                return false;
            }
            parts.pop();
        }
    }
    parts.iter().all(|part| word(part))
}

/// The multi-metric placeholder of a name (`.{category}` → `category`): Ceilometer's
/// `MULTI_METRIC_POLLSTER_NAME_REGEXP`, `.*(\.{(\w+)})$`.
fn placeholder(name: &str) -> Option<&str> {
    let (_, last) = name.rsplit_once('.')?;
    let inner = last.strip_prefix('{')?.strip_suffix('}')?;
    (!inner.is_empty() && inner.chars().all(|c| c.is_alphanumeric() || c == '_')).then_some(inner)
}

/// Reads the keys of one mapping, collecting problems.
struct Reader<'a> {
    map: &'a Map<String, Json>,
    prefix: String,
    problems: Vec<DefinitionError>,
}

impl<'a> Reader<'a> {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(DefinitionError {
            key: self.key(key),
            offset: None,
            message: message.into(),
            warning: false,
        });
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(DefinitionError {
            key: self.key(key),
            offset: None,
            message: message.into(),
            warning: true,
        });
    }

    fn expression_error(&mut self, key: &str, error: ParseError) {
        self.problems.push(DefinitionError {
            key: self.key(key),
            offset: Some(error.offset),
            message: error.message,
            warning: false,
        });
    }

    /// The value, unless absent or null (Ceilometer treats both as missing).
    fn get(&self, key: &str) -> Option<&'a Json> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn text(&mut self, key: &str) -> Option<String> {
        match self.get(key)? {
            Json::String(text) => Some(text.clone()),
            Json::Number(number) => Some(number.to_string()),
            other => {
                self.fail(key, format!("must be text, not {}", kind(other)));
                None
            }
        }
    }

    fn required_text(&mut self, key: &str) -> Option<String> {
        let text = self.text(key);
        if text.is_none() && self.get(key).is_none() {
            self.fail(key, "is required");
        }
        text.filter(|t| {
            let empty = t.trim().is_empty();
            if empty {
                self.problems.push(DefinitionError {
                    key: self.key(key),
                    offset: None,
                    message: "is empty".into(),
                    warning: false,
                });
            }
            !empty
        })
    }

    fn attribute(&mut self, key: &str) -> Option<Attribute> {
        let text = self.text(key)?;
        match Attribute::parse(&text) {
            Ok(attribute) => Some(attribute),
            Err(error) => {
                self.expression_error(key, error);
                None
            }
        }
    }

    fn attribute_or(&mut self, key: &str, default: &str) -> Attribute {
        self.attribute(key).unwrap_or_else(|| Attribute::parse(default).expect("defaults parse"))
    }

    fn attributes(&mut self, key: &str) -> Vec<Attribute> {
        let Some(value) = self.get(key) else { return Vec::new() };
        let items: Vec<&Json> = match value {
            Json::Array(items) => items.iter().collect(),
            // Ceilometer iterates what it is given; a lone string would be its characters.
            other => {
                self.fail(key, format!("must be a list of attributes, not {}", kind(other)));
                return Vec::new();
            }
        };
        let mut attributes = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let at = format!("{key}[{index}]");
            let Json::String(text) = item else {
                self.fail(&at, format!("must be text, not {}", kind(item)));
                continue;
            };
            match Attribute::parse(text) {
                Ok(attribute) => attributes.push(attribute),
                Err(error) => self.expression_error(&at, error),
            }
        }
        attributes
    }

    fn pairs(&mut self, key: &str) -> Vec<(String, String)> {
        let Some(value) = self.get(key) else { return Vec::new() };
        let Json::Object(entries) = value else {
            self.fail(key, format!("must be a mapping, not {}", kind(value)));
            return Vec::new();
        };
        let mut pairs = Vec::new();
        for (name, value) in entries {
            match value {
                Json::String(text) => pairs.push((name.clone(), text.clone())),
                Json::Number(_) | Json::Bool(_) => pairs.push((name.clone(), value.to_string())),
                other => self.fail(&format!("{key}.{name}"), format!("must be text, not {}", kind(other))),
            }
        }
        pairs
    }

    fn seconds(&mut self, key: &str, default: Option<f64>) -> Option<f64> {
        let Some(value) = self.map.get(key) else { return default };
        match value {
            Json::Null => None,
            Json::Number(number) => match number.as_f64() {
                Some(seconds) if seconds > 0.0 && seconds.is_finite() => Some(seconds),
                _ => {
                    self.fail(key, "must be a positive number of seconds");
                    default
                }
            },
            other => {
                self.fail(key, format!("must be a number of seconds, not {}", kind(other)));
                default
            }
        }
    }

    fn cache_seconds(&mut self, key: &str, default: u64) -> u64 {
        match self.get(key) {
            None => default,
            Some(Json::Number(number)) if number.as_u64().is_some() => number.as_u64().unwrap_or(default),
            Some(other) => {
                self.fail(key, format!("must be a whole number of seconds (0: no cache), not {}", kind(other)));
                default
            }
        }
    }

    fn handlers(&mut self, key: &str) -> Vec<Handler> {
        let Some(value) = self.get(key) else { return vec![Handler::Json] };
        let Json::Array(items) = value else {
            self.fail(key, format!("must be a list (e.g. `[json]`), not {}", kind(value)));
            return vec![Handler::Json];
        };
        let mut handlers = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item.as_str() {
                Some("json") => handlers.push(Handler::Json),
                Some("xml") => handlers.push(Handler::Xml),
                Some("text") => handlers.push(Handler::Text),
                _ => self.fail(
                    &format!("{key}[{index}]"),
                    format!("{} is not a handler: write `json`, `xml` or `text`", item),
                ),
            }
        }
        if handlers.is_empty() {
            handlers.push(Handler::Json);
        }
        handlers
    }

    fn skips(&mut self, key: &str, default: Vec<Json>) -> Vec<Json> {
        let Some(value) = self.get(key) else { return default };
        match value {
            Json::Array(items) if items.iter().all(Json::is_object) => items.clone(),
            other => {
                self.fail(key, format!("must be a list of mappings, not {}", kind(other)));
                default
            }
        }
    }

    fn url_path(&mut self, key: &str) -> Option<UrlPath> {
        let text = self.required_text(key)?;
        Some(url_path(&text))
    }

    fn unknown_keys(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self.map.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            let message = match closest(&key, known) {
                Some(candidate) => format!("unknown key (did you mean `{candidate}`?)"),
                None => format!("unknown key; the keys are `{}`", known.join("`, `")),
            };
            self.fail(&key, message);
        }
    }
}

/// How an error names a JSON value's type.
fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "nothing",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "text",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// The closest known key to a misspelt one, if close enough to be a typo.
fn closest<'k>(word: &str, candidates: &[&'k str]) -> Option<&'k str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// `url_path` as Ceilometer reads it: `eval`'d with the scope's names, and used as
/// written where that fails. Here: an expression when it parses as one that reads
/// only those names and is not a bare path (`v1/clusters/detail` parses as a
/// division of names, which Python's `eval` fails on too).
pub fn url_path(text: &str) -> UrlPath {
    match Expr::parse(text, &URL_PATH_NAMES) {
        Ok(expr) => match expr.as_literal() {
            Some(Json::String(literal)) => UrlPath::Literal(literal.clone()),
            Some(_) => UrlPath::Literal(text.to_string()),
            None => UrlPath::Expression { expr, text: text.to_string() },
        },
        Err(_) => UrlPath::Literal(text.to_string()),
    }
}

/// Whether a `url_path` is an absolute URL.
pub fn is_absolute(path: &str) -> bool {
    url::Url::parse(path).is_ok_and(|url| url.has_host())
}

impl Definition {
    /// Reads one definition (a YAML mapping, as JSON). On success, the definition and
    /// its warnings; else every problem found.
    pub fn parse(value: &Json) -> Result<(Definition, Vec<DefinitionError>), Vec<DefinitionError>> {
        let Json::Object(map) = value else {
            return Err(vec![DefinitionError {
                key: String::new(),
                offset: None,
                message: format!("a definition is a mapping (`- name: ...`), not {}", kind(value)),
                warning: false,
            }]);
        };
        let mut reader = Reader { map, prefix: String::new(), problems: Vec::new() };
        reader.unknown_keys(&KEYS);
        let name = reader.required_text("name");
        if let Some(name) = &name {
            if !valid_name(name) {
                reader.fail(
                    "name",
                    format!("`{name}` is not a meter name: words of letters, digits, `_` and `-` joined by dots, the last one `{{attribute}}` for a multi-metric pollster"),
                );
            }
        }
        let sample_type = match reader.required_text("sample_type").as_deref() {
            Some("gauge") | None => SampleType::Gauge,
            Some("cumulative") => SampleType::Cumulative,
            Some("delta") => SampleType::Delta,
            Some(other) => {
                reader.fail(
                    "sample_type",
                    format!("`{other}` is not a sample type: write `gauge`, `delta` or `cumulative`"),
                );
                SampleType::Gauge
            }
        };
        let unit = reader.required_text("unit").unwrap_or_default();
        if reader.get("host_command").is_some() {
            reader.fail(
                "host_command",
                "is refused: Pollen runs no command (there is no shell in the sandbox); serve the value over HTTP and poll it with `url_path`, or write a pollster plugin",
            );
        }
        if reader.get("barbican_secret_id").is_some() {
            reader.fail(
                "barbican_secret_id",
                "is not supported: the agent holds the credentials; name one for this URL's host in `agent.credentials`",
            );
        }
        let multi_metric = name.as_deref().and_then(placeholder).map(str::to_string);
        let value_text = reader.required_text("value_attribute");
        let (multi_metric, value_attribute) = match (multi_metric, value_text) {
            (Some(name_attribute), Some(text)) => match multi_metric_value(&text) {
                Some((list_key, field)) => {
                    (Some(MultiMetric { name_attribute, list_key }), Attribute::parse(&field).ok())
                }
                None => {
                    reader.fail(
                        "value_attribute",
                        format!("a multi-metric pollster (its name ends in `.{{{name_attribute}}}`) takes `[list].field`, e.g. `[categories].ops`, not `{text}`"),
                    );
                    (None, None)
                }
            },
            (None, Some(_)) => (None, reader.attribute("value_attribute")),
            (_, None) => (None, None),
        };
        let module = reader.text("module");
        let endpoint_type = reader.text("endpoint_type");
        let api = match (&module, &endpoint_type) {
            (Some(module), _) => {
                let object = reader.text("authentication_object");
                if object.is_none() {
                    reader.fail("authentication_object", "is required with `module`");
                }
                if reader.get("authentication_parameters").is_some() {
                    reader.warn(
                        "authentication_parameters",
                        "is ignored: credentials never come from a definition; the agent's `agent.credentials` entry for this URL's host is used",
                    );
                }
                let auth = match (module.as_str(), object.as_deref()) {
                    ("requests.auth" | "requests", Some("HTTPBasicAuth")) => ExternalAuth::Basic,
                    (_, Some(object)) => {
                        reader.fail(
                            "module",
                            format!("Pollen cannot import `{module}.{object}`; it maps only `requests.auth.HTTPBasicAuth` (basic auth). Remove `module` and `authentication_object`, and give the API's credential (basic, bearer or header) for this URL's host in `agent.credentials`"),
                        );
                        ExternalAuth::AgentCredential
                    }
                    (_, None) => ExternalAuth::AgentCredential,
                };
                Api::External { auth }
            }
            (None, Some(endpoint_type)) => Api::OpenStack { endpoint_type: endpoint_type.clone() },
            (None, None) => Api::External { auth: ExternalAuth::AgentCredential },
        };
        let url_path = match reader.get("host_command") {
            // Refused above; its url_path is not required.
            Some(_) => None,
            None => reader.url_path("url_path"),
        };
        if let (Api::External { .. }, Some(path)) = (&api, &url_path) {
            let absolute = match path {
                UrlPath::Literal(text) => is_absolute(text),
                UrlPath::Expression { .. } => true,
            };
            if !absolute && reader.get("endpoint_type").is_none() && module.is_none() {
                reader.fail(
                    "endpoint_type",
                    "is required (the catalog's service type, e.g. `image`), unless `url_path` is an absolute URL",
                );
            } else if !absolute {
                reader.fail("url_path", "must be an absolute URL (`https://host/path`) for a non-OpenStack API");
            }
        }
        let metadata_fields = reader.attributes("metadata_fields");
        let skip_sample_values = match reader.get("skip_sample_values") {
            None => Vec::new(),
            Some(Json::Array(items)) => items.clone(),
            Some(other) => {
                reader.fail("skip_sample_values", format!("must be a list, not {}", kind(other)));
                Vec::new()
            }
        };
        let value_mapping = match reader.get("value_mapping") {
            None => Vec::new(),
            Some(Json::Object(entries)) => entries.iter().map(|(k, v)| (Json::String(k.clone()), v.clone())).collect(),
            Some(other) => {
                reader.fail("value_mapping", format!("must be a mapping, not {}", kind(other)));
                Vec::new()
            }
        };
        let default_value = reader.get("default_value").cloned().unwrap_or(Json::from(-1));
        let metadata_mapping = reader.pairs("metadata_mapping");
        let preserve_mapped_metadata = match reader.get("preserve_mapped_metadata") {
            None => true,
            Some(Json::Bool(flag)) => *flag,
            Some(other) => {
                reader.fail("preserve_mapped_metadata", format!("must be true or false, not {}", kind(other)));
                true
            }
        };
        let response_entries_key = reader.attribute("response_entries_key");
        let next_sample_url_attribute = reader.attribute("next_sample_url_attribute");
        let user_id_attribute = reader.attribute_or("user_id_attribute", "user_id");
        let project_id_attribute = reader.attribute_or("project_id_attribute", "project_id");
        let resource_id_attribute = reader.attribute_or("resource_id_attribute", "id");
        let headers = reader.pairs("headers");
        let timeout = reader.seconds("timeout", Some(30.0));
        let cache_seconds = reader.cache_seconds("extra_metadata_fields_cache_seconds", 3600);
        let skip = reader.skips("extra_metadata_fields_skip", vec![Json::Object(Map::new())]);
        let response_handlers = reader.handlers("response_handlers");
        if reader.get("base_metadata").is_some() {
            reader.warn("base_metadata", "is ignored: Ceilometer sets it itself, for `extra_metadata_fields`");
        }
        let namespaces = match reader.get("namespaces") {
            None => vec!["central".to_string()],
            Some(Json::String(one)) => vec![one.clone()],
            Some(Json::Array(items)) if items.iter().all(Json::is_string) => {
                items.iter().filter_map(Json::as_str).map(str::to_string).collect()
            }
            Some(other) => {
                reader.fail("namespaces", format!("must be a namespace or a list of them, not {}", kind(other)));
                Vec::new()
            }
        };
        let mut extra_metadata_fields = Vec::new();
        match reader.get("extra_metadata_fields") {
            None => {}
            Some(Json::Array(items)) => {
                if matches!(api, Api::External { .. }) {
                    reader.fail("extra_metadata_fields", "is for OpenStack pollsters only (as in Ceilometer)");
                }
                for (index, item) in items.iter().enumerate() {
                    let defaults =
                        ExtraDefaults { cache_seconds, skip: &skip, timeout, value_attribute: value_text_of(map) };
                    match extra_metadata(item, &format!("extra_metadata_fields[{index}]."), &defaults) {
                        Ok(extra) => extra_metadata_fields.push(extra),
                        Err(problems) => reader.problems.extend(problems),
                    }
                }
            }
            Some(other) => {
                reader.fail("extra_metadata_fields", format!("must be a list of mappings, not {}", kind(other)))
            }
        }
        let problems = reader.problems;
        if problems.iter().any(|p| !p.warning) {
            return Err(problems);
        }
        let (Some(name), Some(value_attribute), Some(url_path)) = (name, value_attribute, url_path) else {
            return Err(problems);
        };
        let definition = Definition {
            name,
            multi_metric,
            sample_type,
            unit,
            value_attribute,
            api,
            url_path,
            metadata_fields,
            skip_sample_values,
            value_mapping,
            default_value,
            metadata_mapping,
            preserve_mapped_metadata,
            response_entries_key,
            next_sample_url_attribute,
            user_id_attribute,
            project_id_attribute,
            resource_id_attribute,
            headers,
            timeout,
            extra_metadata_fields,
            response_handlers,
            namespaces,
        };
        Ok((definition, problems))
    }

    /// Whether it runs in the agent of this namespace (`central`, `compute`).
    pub fn runs_in(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
    }

    /// The discoverer whose resources it is polled on: `endpoint:<endpoint_type>` for
    /// an OpenStack API (Ceilometer's `default_discovery`); none for another API, whose
    /// one URL is polled once a cycle.
    pub fn default_discovery(&self) -> Option<String> {
        match &self.api {
            Api::OpenStack { endpoint_type } => Some(format!("endpoint:{endpoint_type}")),
            Api::External { .. } => None,
        }
    }

    /// The meter of a multi-metric definition's sub-meter (`prefix.{category}` with
    /// `get_obj` gives `prefix.get_obj`), as Ceilometer replaces the placeholder.
    pub fn sub_meter(&self, part: &str) -> Option<String> {
        let multi = self.multi_metric.as_ref()?;
        let placeholder = format!("{{{}}}", multi.name_attribute);
        Some(self.name.replacen(&placeholder, part, 1))
    }
}

/// The multi-metric `value_attribute`, `[list].field.path`, as Ceilometer's
/// `^(\[(\w+)\])((\.\w+)+)$`: the list key and the field path.
fn multi_metric_value(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix('[')?;
    let (list, field) = rest.split_once(']')?;
    let field = field.strip_prefix('.')?;
    let word = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_');
    (word(list) && field.split('.').all(word)).then(|| (list.to_string(), field.to_string()))
}

/// The parent's `value_attribute` text, for an extra metadata entry without `value`.
fn value_text_of(map: &Map<String, Json>) -> Option<String> {
    map.get("value_attribute").and_then(Json::as_str).map(str::to_string)
}

/// What an extra metadata entry inherits from its definition.
struct ExtraDefaults<'a> {
    cache_seconds: u64,
    skip: &'a [Json],
    timeout: Option<f64>,
    value_attribute: Option<String>,
}

fn extra_metadata(
    value: &Json,
    prefix: &str,
    defaults: &ExtraDefaults<'_>,
) -> Result<ExtraMetadata, Vec<DefinitionError>> {
    let Json::Object(map) = value else {
        return Err(vec![DefinitionError {
            key: prefix.trim_end_matches('.').to_string(),
            offset: None,
            message: format!("must be a mapping, not {}", kind(value)),
            warning: false,
        }]);
    };
    let mut reader = Reader { map, prefix: prefix.to_string(), problems: Vec::new() };
    reader.unknown_keys(&EXTRA_KEYS);
    let name = reader.required_text("name");
    let endpoint_type = reader.required_text("endpoint_type");
    let url_path = reader.url_path("url_path");
    let value_key = if reader.get("value").is_some() { "value" } else { "value_attribute" };
    let value = match reader.attribute(value_key) {
        Some(value) => Some(value),
        None if reader.get(value_key).is_none() => match &defaults.value_attribute {
            Some(text) => Attribute::parse(text).ok(),
            None => {
                reader.fail("value", "is required");
                None
            }
        },
        None => None,
    };
    let headers = reader.pairs("headers");
    let response_entries_key = reader.attribute("response_entries_key");
    let next_sample_url_attribute = reader.attribute("next_sample_url_attribute");
    let metadata_fields = reader.attributes("metadata_fields");
    let cache_seconds = reader.cache_seconds("extra_metadata_fields_cache_seconds", defaults.cache_seconds);
    let skip = reader.skips("extra_metadata_fields_skip", defaults.skip.to_vec());
    let response_handlers = reader.handlers("response_handlers");
    let timeout = reader.seconds("timeout", defaults.timeout);
    let problems = reader.problems;
    match (name, endpoint_type, url_path, value) {
        (Some(name), Some(endpoint_type), Some(url_path), Some(value)) if problems.iter().all(|p| p.warning) => {
            Ok(ExtraMetadata {
                name,
                endpoint_type,
                url_path,
                value,
                headers,
                response_entries_key,
                next_sample_url_attribute,
                metadata_fields,
                cache_seconds,
                skip,
                response_handlers,
                timeout,
            })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests;

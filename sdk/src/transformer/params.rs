//! A transformer's parameters: the sink's `parameters` mapping, flattened by the host
//! into dotted keys (`target.name`, `source.map_from.unit`), values as text.

use super::bindings::pollen::plugin::config;
use super::{Error, MeterType};
use crate::expr::Expr;

/// The parameters, with the keys read so far remembered: [`Params::finish`] refuses
/// any other (a typo in the pipeline file is an error, not a silent default).
#[derive(Debug)]
pub struct Params {
    all: Vec<(String, String)>,
    read: Vec<String>,
}

impl Params {
    /// Every parameter the pipeline gives this instance.
    pub fn load() -> Self {
        Self::from_pairs(config::get_all())
    }

    /// Parameters from pairs (for tests, or another source).
    pub fn from_pairs(all: Vec<(String, String)>) -> Self {
        Self { all, read: Vec::new() }
    }

    /// The text of `key`, if set (an empty value counts as unset, as YAML's `null`).
    pub fn text(&mut self, key: &str) -> Option<String> {
        self.read.push(key.to_string());
        self.all.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    }

    /// A number.
    pub fn number(&mut self, key: &str) -> Result<Option<f64>, Error> {
        self.text(key).map(|text| number_param(key, &text)).transpose()
    }

    /// A boolean (`true`/`false`, any case, as YAML and Python write them).
    pub fn flag(&mut self, key: &str) -> Result<Option<bool>, Error> {
        self.text(key)
            .map(|text| match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(true),
                "false" | "no" | "0" => Ok(false),
                _ => Err(Error::BadConfig(format!("`{key}`: `{text}` is not true or false"))),
            })
            .transpose()
    }

    /// A meter type (`gauge`, `cumulative` or `delta`).
    pub fn meter_type(&mut self, key: &str) -> Result<Option<MeterType>, Error> {
        self.text(key).map(|text| meter_type_param(key, &text)).transpose()
    }

    /// An expression (see [`crate::expr`]).
    pub fn expr(&mut self, key: &str) -> Result<Option<Expr>, Error> {
        self.text(key)
            .map(|text| Expr::parse(&text).map_err(|e| Error::BadConfig(format!("`{key}`: `{text}`: {e}"))))
            .transpose()
    }

    /// One of `choices`.
    pub fn choice(&mut self, key: &str, choices: &[&str]) -> Result<Option<String>, Error> {
        match self.text(key) {
            Some(text) if !choices.contains(&text.as_str()) => {
                Err(Error::BadConfig(format!("`{key}`: `{text}` is not one of {}", choices.join(", "))))
            }
            other => Ok(other),
        }
    }

    /// Refuses parameters that were never read: they are typos or belong to another
    /// transformer.
    pub fn finish(self) -> Result<(), Error> {
        let unknown: Vec<&str> =
            self.all.iter().map(|(k, _)| k.as_str()).filter(|k| !self.read.iter().any(|r| r == k)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut known = self.read.clone();
        known.sort();
        known.dedup();
        Err(Error::BadConfig(format!(
            "unknown parameter{} `{}`; this transformer reads: {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join("`, `"),
            known.join(", ")
        )))
    }
}

/// A number parameter's value.
pub fn number_param(key: &str, text: &str) -> Result<f64, Error> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| Error::BadConfig(format!("`{key}`: `{text}` is not a number")))
}

/// A meter type parameter's value.
pub fn meter_type_param(key: &str, text: &str) -> Result<MeterType, Error> {
    match text {
        "gauge" => Ok(MeterType::Gauge),
        "cumulative" => Ok(MeterType::Cumulative),
        "delta" => Ok(MeterType::Delta),
        _ => Err(Error::BadConfig(format!("`{key}`: `{text}` is not gauge, cumulative or delta"))),
    }
}

//! What Ceilometer's conversion transformers share (`unit_conversion`,
//! `rate_of_change`, `delta`, `aggregator`): the output meter's name, unit and type,
//! fixed (`target.name`) or mapped by regex (`source.map_from.name` →
//! `target.map_to.name`, Python's `\1` back-references), and the `scale` and `max`
//! applied to the volume.

use super::{Error, Lookups, MeterType, Params, SampleRef};
use crate::expr::Expr;
use std::cell::RefCell;
use std::collections::HashMap;

/// How a name or unit is made from the input's.
#[derive(Debug, Clone)]
pub enum Mapping {
    /// Kept as it is.
    Keep,
    /// Always this.
    Fixed(String),
    /// `regex` replaced by `replacement` (Rust's `${1}` form); kept where it does not
    /// match, as Python's `re.sub` does.
    Regex(regex_lite::Regex, String),
}

impl Mapping {
    fn apply(&self, input: &str) -> String {
        match self {
            Mapping::Keep => input.to_string(),
            Mapping::Fixed(text) => text.clone(),
            Mapping::Regex(regex, replacement) => regex.replace_all(input, replacement.as_str()).into_owned(),
        }
    }

    /// From `target.<attr>`, or the `source.map_from.<attr>` / `target.map_to.<attr>`
    /// pair, which wins when both are set.
    fn read(params: &mut Params, attr: &str) -> Result<Self, Error> {
        let fixed = params.text(&format!("target.{attr}"));
        let from = params.text(&format!("source.map_from.{attr}"));
        let to = params.text(&format!("target.map_to.{attr}"));
        match (from, to) {
            (Some(from), Some(to)) => {
                let regex = regex_lite::Regex::new(&from)
                    .map_err(|e| Error::BadConfig(format!("`source.map_from.{attr}`: `{from}` is not a regex: {e}")))?;
                Ok(Mapping::Regex(regex, python_replacement(&to)))
            }
            (Some(_), None) | (None, Some(_)) => Err(Error::BadConfig(format!(
                "`source.map_from.{attr}` and `target.map_to.{attr}` go together: give both or neither"
            ))),
            (None, None) => Ok(fixed.map_or(Mapping::Keep, Mapping::Fixed)),
        }
    }
}

/// Python's `\1` back-references as Rust's `${1}`; a literal `$` escaped.
fn python_replacement(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut group = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    group.push(d);
                    chars.next();
                }
                out.push_str(&format!("${{{group}}}"));
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// How the volume is scaled: Ceilometer's `target.scale`.
#[derive(Debug, Clone)]
enum Scale {
    /// No scale.
    None,
    /// A plain number: the volume (or rate) times it.
    Factor(f64),
    /// An expression over `volume` and `resource_metadata`.
    Expr(Expr),
}

/// The output meter and volume of a conversion transformer.
#[derive(Debug)]
pub struct Conversion {
    name: Mapping,
    unit: Mapping,
    type_: Option<MeterType>,
    scale: Scale,
    max: Option<f64>,
    outputs: RefCell<HashMap<u32, u32>>,
    /// Samples whose scale had no value since the last [`Conversion::report`], and why
    /// the last one had none.
    unscalable: RefCell<(u64, String)>,
}

impl Conversion {
    /// Reads `source.map_from.{name,unit}`, `target.{name,unit,type,scale,max}` and
    /// `target.map_to.{name,unit}`.
    pub fn read(params: &mut Params) -> Result<Self, Error> {
        let scale = match params.expr("target.scale")? {
            None => Scale::None,
            Some(expr) => match expr.as_constant() {
                Some(factor) => Scale::Factor(factor),
                None => Scale::Expr(expr),
            },
        };
        Ok(Self {
            name: Mapping::read(params, "name")?,
            unit: Mapping::read(params, "unit")?,
            type_: params.meter_type("target.type")?,
            scale,
            max: params.number("target.max")?,
            outputs: RefCell::default(),
            unscalable: RefCell::default(),
        })
    }

    /// Forces the output type (e.g. `delta` for the delta transformer).
    pub fn with_type(mut self, type_: MeterType) -> Self {
        self.type_ = Some(type_);
        self
    }

    /// Whether a scale expression or factor is set.
    pub fn has_scale(&self) -> bool {
        !matches!(self.scale, Scale::None)
    }

    /// The output meter's handle for an input meter handle; `None` if the input meter
    /// is unknown to the host.
    pub fn output_meter(&self, lookups: &Lookups, input: u32) -> Option<u32> {
        if let Some(&output) = self.outputs.borrow().get(&input) {
            return Some(output);
        }
        let meter = lookups.meter(input)?;
        let output = lookups.intern(
            &self.name.apply(&meter.name),
            self.type_.unwrap_or(meter.type_),
            &self.unit.apply(&meter.unit),
        );
        self.outputs.borrow_mut().insert(input, output);
        Some(output)
    }

    /// The output type for an input of `input` type.
    pub fn output_type(&self, input: MeterType) -> MeterType {
        self.type_.unwrap_or(input)
    }

    /// The scaled volume of `sample` (`unit_conversion`): the scale expression's
    /// value, or the volume times a plain factor, capped by `max`. `None` (counted, see
    /// [`Conversion::report`]) when the expression has no value for this sample.
    pub fn volume(&self, lookups: &Lookups, sample: &SampleRef) -> Option<f64> {
        let volume = match &self.scale {
            Scale::None => sample.volume,
            Scale::Factor(factor) => sample.volume * factor,
            Scale::Expr(expr) => self.evaluate(expr, lookups, sample)?,
        };
        Some(self.capped(volume))
    }

    /// A rate (or another growth) scaled for `sample` (`rate_of_change`): the rate
    /// times the scale expression's value or factor, capped by `max`. `None` (counted)
    /// when the expression has no value for this sample.
    pub fn scaled(&self, lookups: &Lookups, sample: &SampleRef, growth: f64) -> Option<f64> {
        let factor = match &self.scale {
            Scale::None => 1.0,
            Scale::Factor(factor) => *factor,
            Scale::Expr(expr) => self.evaluate(expr, lookups, sample)?,
        };
        Some(self.capped(growth * factor))
    }

    /// Logs how many samples were dropped because their scale had no value since the
    /// last report (call it in `flush`, once per cycle), and starts counting again.
    pub fn report(&self) {
        let (count, reason) = std::mem::take(&mut *self.unscalable.borrow_mut());
        if count > 0 {
            super::log::warn(&format!("dropped {count} samples whose scale has no value: {reason}"));
        }
    }

    fn evaluate(&self, expr: &Expr, lookups: &Lookups, sample: &SampleRef) -> Option<f64> {
        match expr.eval(&|operand: &_| lookups.sample_operand(sample, operand)) {
            Ok(value) => Some(value),
            Err(error) => {
                let mut unscalable = self.unscalable.borrow_mut();
                *unscalable = (unscalable.0 + 1, error.to_string());
                None
            }
        }
    }

    fn capped(&self, volume: f64) -> f64 {
        match self.max {
            Some(max) => volume.min(max),
            None => volume,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_back_references_become_rust_ones() {
        assert_eq!(python_replacement(r"\1.\2.\3.rate"), "${1}.${2}.${3}.rate");
        assert_eq!(python_replacement(r"\1/s"), "${1}/s");
        assert_eq!(python_replacement("cost$"), "cost$$");
        let mut params = Params::from_pairs(vec![
            ("source.map_from.name".into(), r"(disk\.device|disk)\.(read|write)\.(bytes|requests)".into()),
            ("target.map_to.name".into(), r"\1.\2.\3.rate".into()),
            ("source.map_from.unit".into(), "(B|request)".into()),
            ("target.map_to.unit".into(), r"\1/s".into()),
        ]);
        let name = Mapping::read(&mut params, "name").unwrap();
        let unit = Mapping::read(&mut params, "unit").unwrap();
        assert_eq!(name.apply("disk.device.read.bytes"), "disk.device.read.bytes.rate");
        assert_eq!(name.apply("cpu"), "cpu", "kept where the regex does not match");
        assert_eq!(unit.apply("request"), "request/s");
        let mut half = Params::from_pairs(vec![("source.map_from.name".into(), "x".into())]);
        assert!(Mapping::read(&mut half, "name").is_err());
    }
}

//! The expression language of dynamic-pollster definitions: the `|` operations of
//! `value_attribute` and the other `*_attribute` keys, and `url_path` expressions.
//! Ceilometer runs these with Python's `eval`; here they are parsed into a tree that
//! can only compute over JSON values: nothing is imported, no attribute is read,
//! no name outside the expression's scope exists, and evaluation is bounded in steps
//! and in the size of what it makes ([`MAX_STEPS`], [`MAX_SIZE`], [`MAX_ITEMS`]).
//!
//! What it knows (docs/dynamic-pollsters.md has the differences from Python):
//!
//! - literals: `'text'`, `"text"`, numbers, `None`, `True`, `False`, lists `[a, b]`,
//!   dicts `{'id': ''}`;
//! - the scope's names (`value` in operations; `sample`, `extra_metadata_captured`
//!   and `extra_metadata_by_name` in `url_path`);
//! - `x[key]`, `x[index]` (negative from the end), `x[a:b]`;
//! - `+ - * / // %`, unary `-`, `== != < <= > >=`, `in`, `not in`, `is None`,
//!   `is not None`, `and`, `or`, `not`, `a if c else b`;
//! - the functions in [`Function`] and the methods in [`Method`];
//! - `lambda v: ...` as the first argument of `filter` and `map`.

mod eval;
mod lex;
mod parse;
mod python;

use serde_json::Value as Json;
use std::fmt;

pub(crate) use python::equal;
pub use python::{python_str, truthy};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: parse::Spanned,
    names: usize,
}

/// An expression that does not parse: what, and where (a byte offset into it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong, and what to write instead where it can say.
    pub message: String,
    /// Byte offset into the expression's text.
    pub offset: usize,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, offset: usize) -> Self {
        Self { message: message.into(), offset }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for ParseError {}

/// Why an expression has no value for this input (a key missing, a type mismatch,
/// a bound reached): the text says which, and where in the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// What went wrong.
    pub message: String,
    /// Byte offset into the expression's text.
    pub offset: usize,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for EvalError {}

/// The longest expression text.
pub const MAX_LENGTH: usize = 4096;
/// Steps (nodes evaluated, items filtered or mapped) one evaluation may take.
pub const MAX_STEPS: u32 = 100_000;
/// The largest string one evaluation may make, in bytes.
pub const MAX_SIZE: usize = 1 << 20;
/// The most values (items, entries, nested or not) a list or dict it makes may hold.
pub const MAX_ITEMS: usize = 100_000;

impl Expr {
    /// Parses `text`, in which `names` are the variables it may read (their values
    /// are given to [`Expr::eval`] in the same order).
    pub fn parse(text: &str, names: &[&str]) -> Result<Expr, ParseError> {
        if text.len() > MAX_LENGTH {
            return Err(ParseError::new(format!("longer than {MAX_LENGTH} bytes"), 0));
        }
        Ok(Expr { root: parse::parse(text, names)?, names: names.len() })
    }

    /// The value of the expression, the scope's variables given in the order of
    /// [`Expr::parse`]'s `names`.
    pub fn eval(&self, values: &[&Json]) -> Result<Json, EvalError> {
        assert_eq!(values.len(), self.names, "one value per name in scope");
        eval::evaluate(&self.root, values)
    }

    /// Whether the expression is a literal (a string, a number...) and nothing else.
    pub fn as_literal(&self) -> Option<&Json> {
        match &self.root.node {
            parse::Node::Literal(value) => Some(value),
            _ => None,
        }
    }
}

macro_rules! named {
    ($(#[$meta:meta])* $name:ident ($before:literal, $after:literal) { $($(#[$vmeta:meta])* $variant:ident = $text:literal ($min:literal, $max:literal)),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            /// The one with this name, if the language has it.
            pub fn named(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// Its name in expressions.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),*
                }
            }

            /// How many arguments it takes, at least and at most.
            pub fn arity(self) -> (usize, usize) {
                match self {
                    $(Self::$variant => ($min, $max)),*
                }
            }

            /// Every name, for error messages.
            pub fn list() -> String {
                [$(concat!("`", $text, "`")),*].join(", ")
            }

            /// Refuses a call with `count` arguments outside its arity.
            fn check_arity(self, count: usize, at: usize) -> Result<(), ParseError> {
                let (min, max) = self.arity();
                if count < min || count > max {
                    let expected = if min == max { format!("{min}") } else { format!("{min} to {max}") };
                    let plural = if max == 1 { "" } else { "s" };
                    return Err(ParseError::new(
                        format!("`{}{}{}` takes {expected} argument{plural}, not {count}", $before, self.name(), $after),
                        at,
                    ));
                }
                Ok(())
            }
        }
    };
}

named! {
    /// The functions an expression may call.
    Function ("", "") {
        /// `str(x)`: Python's text of `x`.
        Str = "str" (1, 1),
        /// `int(x)`: a whole number from a number or a numeric string.
        Int = "int" (1, 1),
        /// `float(x)`: a number from a number or a numeric string.
        Float = "float" (1, 1),
        /// `bool(x)`: Python's truth of `x`.
        Bool = "bool" (1, 1),
        /// `len(x)`: of a string, a list or a dict.
        Len = "len" (1, 1),
        /// `list(x)`: a list's items, a string's characters, a dict's keys.
        List = "list" (1, 1),
        /// `filter(lambda v: cond, items)`: the items for which `cond` holds.
        Filter = "filter" (2, 2),
        /// `map(lambda v: expr, items)`: `expr` of each item.
        Map = "map" (2, 2),
        /// `sorted(items)`: numbers or strings, in order.
        Sorted = "sorted" (1, 1),
        /// `min(items)` or `min(a, b, ...)`.
        Min = "min" (1, 16),
        /// `max(items)` or `max(a, b, ...)`.
        Max = "max" (1, 16),
        /// `sum(numbers)`.
        Sum = "sum" (1, 1),
        /// `abs(x)`.
        Abs = "abs" (1, 1),
        /// `round(x)` or `round(x, digits)`.
        Round = "round" (1, 2),
    }
}

impl Function {
    fn takes_lambda(self) -> bool {
        matches!(self, Self::Filter | Self::Map)
    }
}

named! {
    /// The methods an expression may call: of strings, of dicts, of lists.
    Method (".", "()") {
        /// `s.split()`, `s.split(sep)`, `s.split(sep, maxsplit)`.
        Split = "split" (0, 2),
        /// `s.rsplit(sep, maxsplit)`: from the right.
        Rsplit = "rsplit" (0, 2),
        /// `s.strip()`, `s.strip(chars)`.
        Strip = "strip" (0, 1),
        /// `s.lstrip()`, `s.lstrip(chars)`.
        Lstrip = "lstrip" (0, 1),
        /// `s.rstrip()`, `s.rstrip(chars)`.
        Rstrip = "rstrip" (0, 1),
        /// `s.replace(old, new)`, `s.replace(old, new, count)`.
        Replace = "replace" (2, 3),
        /// `s.lower()`.
        Lower = "lower" (0, 0),
        /// `s.upper()`.
        Upper = "upper" (0, 0),
        /// `s.startswith(prefix)`.
        Startswith = "startswith" (1, 1),
        /// `s.endswith(suffix)`.
        Endswith = "endswith" (1, 1),
        /// `sep.join(items)`: strings joined by `sep`.
        Join = "join" (1, 1),
        /// `s.find(sub)`: its first offset, or -1.
        Find = "find" (1, 1),
        /// `s.isdigit()`.
        Isdigit = "isdigit" (0, 0),
        /// `d.get(key)`, `d.get(key, default)`.
        Get = "get" (1, 2),
        /// `d.keys()`.
        Keys = "keys" (0, 0),
        /// `d.values()`.
        Values = "values" (0, 0),
        /// `d.items()`: `[key, value]` pairs.
        Items = "items" (0, 0),
        /// `l.index(x)`, `s.index(sub)`.
        Index = "index" (1, 1),
        /// `l.count(x)`, `s.count(sub)`.
        Count = "count" (1, 1),
    }
}

#[cfg(test)]
mod tests;

//! Evaluating a parsed expression over JSON values, within [`MAX_STEPS`] steps and
//! [`MAX_SIZE`] bytes per string and [`MAX_ITEMS`] values per list or dict made.

use super::parse::{BinOp, Node, Spanned};
use super::python::{compare, equal, number, python_float, python_str, truthy, type_name};
use super::{EvalError, Function, Method, MAX_ITEMS, MAX_SIZE, MAX_STEPS};
use serde_json::{Map, Value as Json};
use std::cmp::Ordering;

/// The value of `root` with `scope`'s variables.
pub(super) fn evaluate(root: &Spanned, scope: &[&Json]) -> Result<Json, EvalError> {
    let mut run = Run { variables: scope.iter().map(|v| (*v).clone()).collect(), steps: 0 };
    run.eval(root)
}

struct Run {
    /// The scope's variables, then the parameters of the lambdas being applied.
    variables: Vec<Json>,
    steps: u32,
}

fn fail(message: impl Into<String>, at: usize) -> EvalError {
    EvalError { message: message.into(), offset: at }
}

impl Run {
    fn step(&mut self, at: usize) -> Result<(), EvalError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(fail(format!("the evaluation took over {MAX_STEPS} steps"), at));
        }
        Ok(())
    }

    fn eval(&mut self, spanned: &Spanned) -> Result<Json, EvalError> {
        let at = spanned.at;
        self.step(at)?;
        Ok(match &spanned.node {
            Node::Literal(value) => value.clone(),
            Node::Var(index) => self.variables[*index].clone(),
            Node::List(items) => {
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    list.push(self.eval(item)?);
                }
                bounded(Json::Array(list), at)?
            }
            Node::Dict(entries) => {
                let mut map = Map::new();
                for (key, item) in entries {
                    let key = match self.eval(key)? {
                        Json::String(text) => text,
                        other => python_str(&other),
                    };
                    map.insert(key, self.eval(item)?);
                }
                bounded(Json::Object(map), at)?
            }
            Node::Index(value, index) => {
                let value = self.eval(value)?;
                let index = self.eval(index)?;
                get_item(value, &index, at)?
            }
            Node::Slice(value, start, stop) => {
                let value = self.eval(value)?;
                let start = start.as_ref().map(|s| self.eval(s)).transpose()?;
                let stop = stop.as_ref().map(|s| self.eval(s)).transpose()?;
                slice(value, start.as_ref(), stop.as_ref(), at)?
            }
            Node::Method(receiver, method, arguments) => {
                let receiver = self.eval(receiver)?;
                let mut values = Vec::with_capacity(arguments.len());
                for argument in arguments {
                    values.push(self.eval(argument)?);
                }
                call_method(receiver, *method, values, at)?
            }
            Node::Call(function, arguments) => self.call(*function, arguments, at)?,
            Node::Lambda(_) => return Err(fail("a lambda is not a value", at)),
            Node::Not(inner) => Json::Bool(!truthy(&self.eval(inner)?)),
            Node::Negate(inner) => match self.eval(inner)? {
                Json::Number(n) if n.is_i64() => Json::from(-n.as_i64().unwrap_or(0)),
                other => match number(&other) {
                    Some(n) => float(-n, at)?,
                    None => return Err(fail(format!("cannot negate a {}", type_name(&other)), at)),
                },
            },
            Node::And(left, right) => {
                let left = self.eval(left)?;
                if truthy(&left) {
                    self.eval(right)?
                } else {
                    left
                }
            }
            Node::Or(left, right) => {
                let left = self.eval(left)?;
                if truthy(&left) {
                    left
                } else {
                    self.eval(right)?
                }
            }
            Node::IfElse(then, condition, otherwise) => {
                if truthy(&self.eval(condition)?) {
                    self.eval(then)?
                } else {
                    self.eval(otherwise)?
                }
            }
            Node::Binary(op, left, right) => {
                let left = self.eval(left)?;
                let right = self.eval(right)?;
                binary(*op, left, right, at)?
            }
        })
    }

    /// Applies a lambda's body to one item.
    fn apply(&mut self, lambda: &Spanned, item: Json) -> Result<Json, EvalError> {
        let Node::Lambda(body) = &lambda.node else {
            return Err(fail("expected a lambda", lambda.at));
        };
        self.variables.push(item);
        let result = self.eval(body);
        self.variables.pop();
        result
    }

    fn call(&mut self, function: Function, arguments: &[Spanned], at: usize) -> Result<Json, EvalError> {
        if matches!(function, Function::Filter | Function::Map) {
            let items = iterate(self.eval(&arguments[1])?, at)?;
            let mut out = Vec::new();
            for item in items {
                self.step(at)?;
                let result = self.apply(&arguments[0], item.clone())?;
                match function {
                    Function::Filter if truthy(&result) => out.push(item),
                    Function::Filter => {}
                    _ => out.push(result),
                }
            }
            return bounded(Json::Array(out), at);
        }
        let mut values = Vec::with_capacity(arguments.len());
        for argument in arguments {
            values.push(self.eval(argument)?);
        }
        let mut values = values.into_iter();
        let first = values.next().unwrap_or(Json::Null);
        Ok(match function {
            Function::Str => Json::String(python_str(&first)),
            Function::Int => match &first {
                Json::String(text) => text
                    .trim()
                    .replace('_', "")
                    .parse::<i64>()
                    .map(Json::from)
                    .map_err(|_| fail(format!("int(): '{text}' is not a whole number"), at))?,
                other => match number(other) {
                    Some(n) if n.is_finite() && n.abs() < 9.2e18 => Json::from(n.trunc() as i64),
                    _ => return Err(fail(format!("int() of a {}", type_name(other)), at)),
                },
            },
            Function::Float => match &first {
                Json::String(text) => text
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| fail(format!("float(): '{text}' is not a number"), at))
                    .and_then(|n| float(n, at))?,
                other => match number(other) {
                    Some(n) => float(n, at)?,
                    None => return Err(fail(format!("float() of a {}", type_name(other)), at)),
                },
            },
            Function::Bool => Json::Bool(truthy(&first)),
            Function::Len => Json::from(match &first {
                Json::String(text) => text.chars().count(),
                Json::Array(items) => items.len(),
                Json::Object(entries) => entries.len(),
                other => return Err(fail(format!("len() of a {}", type_name(other)), at)),
            }),
            Function::List => Json::Array(iterate(first, at)?),
            Function::Sorted => {
                let mut items = iterate(first, at)?;
                let mut incomparable = false;
                items.sort_by(|a, b| {
                    compare(a, b).unwrap_or_else(|| {
                        incomparable = true;
                        Ordering::Equal
                    })
                });
                if incomparable {
                    return Err(fail("sorted(): the items cannot be compared", at));
                }
                Json::Array(items)
            }
            Function::Min | Function::Max => {
                let rest: Vec<Json> = values.collect();
                let items =
                    if rest.is_empty() { iterate(first, at)? } else { std::iter::once(first).chain(rest).collect() };
                let want = if function == Function::Min { Ordering::Less } else { Ordering::Greater };
                let mut best: Option<Json> = None;
                for item in items {
                    best = Some(match best {
                        None => item,
                        Some(current) => match compare(&item, &current) {
                            Some(order) if order == want => item,
                            Some(_) => current,
                            None => {
                                return Err(fail(format!("{}(): the items cannot be compared", function.name()), at))
                            }
                        },
                    });
                }
                best.ok_or_else(|| fail(format!("{}() of nothing", function.name()), at))?
            }
            Function::Sum => {
                let mut total = Json::from(0);
                for item in iterate(first, at)? {
                    total = binary(BinOp::Add, total, item, at)?;
                }
                total
            }
            Function::Abs => match &first {
                Json::Number(n) if n.is_i64() => Json::from(n.as_i64().unwrap_or(0).saturating_abs()),
                other => {
                    float(number(other).ok_or_else(|| fail(format!("abs() of a {}", type_name(other)), at))?.abs(), at)?
                }
            },
            Function::Round => {
                let value = number(&first).ok_or_else(|| fail(format!("round() of a {}", type_name(&first)), at))?;
                match values.next() {
                    None => Json::from(round_half_even(value) as i64),
                    Some(digits) => {
                        let digits = number(&digits).unwrap_or(0.0).clamp(-15.0, 15.0) as i32;
                        let scale = 10f64.powi(digits);
                        float(round_half_even(value * scale) / scale, at)?
                    }
                }
            }
            Function::Filter | Function::Map => unreachable!("handled above"),
        })
    }
}

/// Python's `round`: halves to even.
fn round_half_even(value: f64) -> f64 {
    let rounded = value.round();
    if (value - value.trunc()).abs() == 0.5 && rounded % 2.0 != 0.0 {
        rounded - value.signum()
    } else {
        rounded
    }
}

fn float(value: f64, at: usize) -> Result<Json, EvalError> {
    serde_json::Number::from_f64(value)
        .map(Json::Number)
        .ok_or_else(|| fail(format!("the result is {}", python_float(value)), at))
}

/// `value`, unless it holds over [`MAX_ITEMS`] values in all (what copying a value
/// into itself, again and again, would make).
fn bounded(value: Json, at: usize) -> Result<Json, EvalError> {
    fn count(value: &Json, budget: &mut usize) -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        match value {
            Json::Array(items) => items.iter().all(|item| count(item, budget)),
            Json::Object(entries) => entries.values().all(|item| count(item, budget)),
            _ => true,
        }
    }
    let mut budget = MAX_ITEMS;
    if count(&value, &mut budget) {
        Ok(value)
    } else {
        Err(fail(format!("the value made holds over {MAX_ITEMS} values"), at))
    }
}

/// A list's items, a string's characters, a dict's keys (Python's iteration).
fn iterate(value: Json, at: usize) -> Result<Vec<Json>, EvalError> {
    match value {
        Json::Array(items) => Ok(items),
        Json::String(text) if text.chars().count() > MAX_ITEMS => {
            Err(fail(format!("a string of over {MAX_ITEMS} characters cannot be iterated"), at))
        }
        Json::String(text) => Ok(text.chars().map(|c| Json::String(c.to_string())).collect()),
        Json::Object(entries) => Ok(entries.into_iter().map(|(key, _)| Json::String(key)).collect()),
        other => Err(fail(format!("a {} cannot be iterated", type_name(&other)), at)),
    }
}

/// A position in a sequence of `len`, Python's negative indices counted from the end.
fn position(index: &Json, len: usize, at: usize) -> Result<Option<usize>, EvalError> {
    let Some(index) = index.as_i64() else {
        return Err(fail(format!("an index must be a whole number, not a {}", type_name(index)), at));
    };
    let len = len as i64;
    let index = if index < 0 { index + len } else { index };
    Ok((0..len).contains(&index).then_some(index as usize))
}

/// `value[index]`.
pub(crate) fn get_item(value: Json, index: &Json, at: usize) -> Result<Json, EvalError> {
    match value {
        Json::Object(mut entries) => {
            let key = match index {
                Json::String(text) => text.clone(),
                other => python_str(other),
            };
            entries.remove(&key).ok_or_else(|| fail(format!("no key '{key}'"), at))
        }
        Json::Array(mut items) => match position(index, items.len(), at)? {
            Some(at_index) => Ok(items.swap_remove(at_index)),
            None => Err(fail(format!("index {index} is out of range (the list has {})", items.len()), at)),
        },
        Json::String(text) => {
            let chars: Vec<char> = text.chars().collect();
            match position(index, chars.len(), at)? {
                Some(at_index) => Ok(Json::String(chars[at_index].to_string())),
                None => Err(fail(format!("index {index} is out of range (the string has {})", chars.len()), at)),
            }
        }
        other => Err(fail(format!("a {} has no items (it was indexed with {index})", type_name(&other)), at)),
    }
}

/// `value[start:stop]`.
fn slice(value: Json, start: Option<&Json>, stop: Option<&Json>, at: usize) -> Result<Json, EvalError> {
    let bound = |bound: Option<&Json>, len: usize, default: usize| -> Result<usize, EvalError> {
        match bound {
            None | Some(Json::Null) => Ok(default),
            Some(value) => {
                let Some(index) = value.as_i64() else {
                    return Err(fail(format!("a slice bound must be a whole number, not a {}", type_name(value)), at));
                };
                let len = len as i64;
                Ok((if index < 0 { index + len } else { index }).clamp(0, len) as usize)
            }
        }
    };
    match value {
        Json::Array(items) => {
            let (from, to) = (bound(start, items.len(), 0)?, bound(stop, items.len(), items.len())?);
            Ok(Json::Array(if from < to { items[from..to].to_vec() } else { Vec::new() }))
        }
        Json::String(text) => {
            let chars: Vec<char> = text.chars().collect();
            let (from, to) = (bound(start, chars.len(), 0)?, bound(stop, chars.len(), chars.len())?);
            Ok(Json::String(if from < to { chars[from..to].iter().collect() } else { String::new() }))
        }
        other => Err(fail(format!("a {} cannot be sliced", type_name(&other)), at)),
    }
}

fn text_argument(value: &Json, method: Method, at: usize) -> Result<String, EvalError> {
    match value {
        Json::String(text) => Ok(text.clone()),
        other => Err(fail(format!("{}() takes a string, not a {}", method.name(), type_name(other)), at)),
    }
}

fn check_size(text: &str, at: usize) -> Result<(), EvalError> {
    if text.len() > MAX_SIZE {
        return Err(fail(format!("a string over {MAX_SIZE} bytes"), at));
    }
    Ok(())
}

fn call_method(receiver: Json, method: Method, arguments: Vec<Json>, at: usize) -> Result<Json, EvalError> {
    // The parser checked the arity.
    let argument = |index: usize| text_argument(&arguments[index], method, at);
    match (&receiver, method) {
        (Json::String(text), Method::Split | Method::Rsplit) => {
            let limit = match arguments.get(1) {
                Some(value) => value.as_i64().filter(|n| *n >= 0).map(|n| n as usize),
                None => None,
            };
            let parts: Vec<String> = match arguments.first().filter(|a| !a.is_null()) {
                None => {
                    let words = text.split_whitespace().map(str::to_string);
                    match limit {
                        // Whitespace with a limit: rarely written; split fully then rejoin the tail.
                        Some(limit) => {
                            let all: Vec<String> = words.collect();
                            if all.len() <= limit + 1 {
                                all
                            } else if method == Method::Split {
                                let mut head = all[..limit].to_vec();
                                head.push(all[limit..].join(" "));
                                head
                            } else {
                                let cut = all.len() - limit;
                                let mut parts = vec![all[..cut].join(" ")];
                                parts.extend_from_slice(&all[cut..]);
                                parts
                            }
                        }
                        None => words.collect(),
                    }
                }
                Some(_) => {
                    let separator = argument(0)?;
                    if separator.is_empty() {
                        return Err(fail("split(): empty separator", at));
                    }
                    match (limit, method) {
                        (Some(limit), Method::Split) => {
                            text.splitn(limit + 1, &separator).map(str::to_string).collect()
                        }
                        (Some(limit), _) => {
                            let mut parts: Vec<String> =
                                text.rsplitn(limit + 1, &separator).map(str::to_string).collect();
                            parts.reverse();
                            parts
                        }
                        (None, _) => text.split(&separator).map(str::to_string).collect(),
                    }
                }
            };
            bounded(Json::Array(parts.into_iter().map(Json::String).collect()), at)
        }
        (Json::String(text), Method::Strip | Method::Lstrip | Method::Rstrip) => {
            let chars: Option<Vec<char>> = match arguments.first().filter(|a| !a.is_null()) {
                Some(_) => Some(argument(0)?.chars().collect()),
                None => None,
            };
            let strip = |c: char| chars.as_ref().map_or(c.is_whitespace(), |set| set.contains(&c));
            Ok(Json::String(
                match method {
                    Method::Strip => text.trim_matches(strip),
                    Method::Lstrip => text.trim_start_matches(strip),
                    _ => text.trim_end_matches(strip),
                }
                .to_string(),
            ))
        }
        (Json::String(text), Method::Replace) => {
            let (old, new) = (argument(0)?, argument(1)?);
            let count = arguments.get(2).and_then(Json::as_i64).filter(|n| *n >= 0);
            let occurrences = if old.is_empty() { text.chars().count() + 1 } else { text.matches(&old).count() };
            let replaced = occurrences.min(count.map_or(usize::MAX, |n| n as usize));
            if text.len().saturating_add(replaced.saturating_mul(new.len())) > MAX_SIZE {
                return Err(fail(format!("replace() would make a string over {MAX_SIZE} bytes"), at));
            }
            Ok(Json::String(match count {
                Some(count) => text.replacen(&old, &new, count as usize),
                None => text.replace(&old, &new),
            }))
        }
        (Json::String(text), Method::Lower) => Ok(Json::String(text.to_lowercase())),
        (Json::String(text), Method::Upper) => Ok(Json::String(text.to_uppercase())),
        (Json::String(text), Method::Startswith) => Ok(Json::Bool(text.starts_with(&argument(0)?))),
        (Json::String(text), Method::Endswith) => Ok(Json::Bool(text.ends_with(&argument(0)?))),
        (Json::String(text), Method::Isdigit) => {
            Ok(Json::Bool(!text.is_empty() && text.chars().all(|c| c.is_ascii_digit())))
        }
        (Json::String(text), Method::Find | Method::Index) => {
            let needle = argument(0)?;
            match text.find(&needle) {
                Some(offset) => Ok(Json::from(text[..offset].chars().count())),
                None if method == Method::Find => Ok(Json::from(-1)),
                None => Err(fail(format!("index(): '{needle}' is not in the string"), at)),
            }
        }
        (Json::String(text), Method::Count) => Ok(Json::from(text.matches(&argument(0)?).count())),
        (Json::String(separator), Method::Join) => {
            let mut joined = String::new();
            for (index, item) in iterate(arguments[0].clone(), at)?.into_iter().enumerate() {
                let Json::String(item) = item else {
                    return Err(fail(format!("join(): item {index} is a {}, not a string", type_name(&item)), at));
                };
                if index > 0 {
                    joined.push_str(separator);
                }
                joined.push_str(&item);
                check_size(&joined, at)?;
            }
            Ok(Json::String(joined))
        }
        (Json::Object(entries), Method::Get) => {
            let key = match &arguments[0] {
                Json::String(text) => text.clone(),
                other => python_str(other),
            };
            Ok(entries.get(&key).cloned().unwrap_or_else(|| arguments.get(1).cloned().unwrap_or(Json::Null)))
        }
        (Json::Object(entries), Method::Keys) => Ok(Json::Array(entries.keys().cloned().map(Json::String).collect())),
        (Json::Object(entries), Method::Values) => Ok(Json::Array(entries.values().cloned().collect())),
        (Json::Object(entries), Method::Items) => Ok(Json::Array(
            entries.iter().map(|(key, value)| Json::Array(vec![Json::String(key.clone()), value.clone()])).collect(),
        )),
        (Json::Array(items), Method::Index) => match items.iter().position(|item| equal(item, &arguments[0])) {
            Some(index) => Ok(Json::from(index)),
            None => Err(fail("index(): the item is not in the list", at)),
        },
        (Json::Array(items), Method::Count) => {
            Ok(Json::from(items.iter().filter(|item| equal(item, &arguments[0])).count()))
        }
        (other, method) => Err(fail(format!("a {} has no method {}()", type_name(other), method.name()), at)),
    }
}

fn binary(op: BinOp, left: Json, right: Json, at: usize) -> Result<Json, EvalError> {
    let mismatch = |symbol: &str| fail(format!("unsupported: {} {symbol} {}", type_name(&left), type_name(&right)), at);
    match op {
        BinOp::Equal => Ok(Json::Bool(equal(&left, &right))),
        BinOp::NotEqual => Ok(Json::Bool(!equal(&left, &right))),
        BinOp::Is | BinOp::IsNot => {
            let same = match (&left, &right) {
                (Json::Null, Json::Null) => true,
                (Json::Bool(a), Json::Bool(b)) => a == b,
                (Json::Null | Json::Bool(_), _) | (_, Json::Null | Json::Bool(_)) => false,
                _ => return Err(fail("`is` compares with None, True or False only; write `==`", at)),
            };
            Ok(Json::Bool(same == (op == BinOp::Is)))
        }
        BinOp::Less | BinOp::LessEqual | BinOp::Greater | BinOp::GreaterEqual => {
            let symbol = match op {
                BinOp::Less => "<",
                BinOp::LessEqual => "<=",
                BinOp::Greater => ">",
                _ => ">=",
            };
            let Some(order) = compare(&left, &right) else { return Err(mismatch(symbol)) };
            Ok(Json::Bool(match op {
                BinOp::Less => order == Ordering::Less,
                BinOp::LessEqual => order != Ordering::Greater,
                BinOp::Greater => order == Ordering::Greater,
                _ => order != Ordering::Less,
            }))
        }
        BinOp::In | BinOp::NotIn => {
            let found = match (&left, &right) {
                (Json::String(needle), Json::String(haystack)) => haystack.contains(needle.as_str()),
                (_, Json::Array(items)) => items.iter().any(|item| equal(item, &left)),
                (Json::String(key), Json::Object(entries)) => entries.contains_key(key),
                (_, Json::Object(_)) => false,
                _ => return Err(mismatch("in")),
            };
            Ok(Json::Bool(found == (op == BinOp::In)))
        }
        BinOp::Add => match (left, right) {
            (Json::String(mut a), Json::String(b)) => {
                a.push_str(&b);
                check_size(&a, at)?;
                Ok(Json::String(a))
            }
            (Json::Array(mut a), Json::Array(b)) => {
                a.extend(b);
                bounded(Json::Array(a), at)
            }
            (a, b) => arithmetic(op, &a, &b, at),
        },
        BinOp::Multiply => match (&left, &right) {
            (Json::String(text), count) | (count, Json::String(text)) if count.is_i64() || count.is_u64() => {
                let count = count.as_i64().unwrap_or(i64::MAX).max(0) as usize;
                if text.len().saturating_mul(count) > MAX_SIZE {
                    return Err(fail(format!("repeating the string would make one over {MAX_SIZE} bytes"), at));
                }
                Ok(Json::String(text.repeat(count)))
            }
            (Json::Array(items), count) | (count, Json::Array(items)) if count.is_i64() || count.is_u64() => {
                let count = count.as_i64().unwrap_or(i64::MAX).max(0) as usize;
                if items.len().saturating_mul(count) > MAX_ITEMS {
                    return Err(fail(format!("repeating the list would make one over {MAX_ITEMS} items"), at));
                }
                bounded(Json::Array(items.iter().cloned().cycle().take(items.len() * count).collect()), at)
            }
            _ => arithmetic(op, &left, &right, at),
        },
        _ => arithmetic(op, &left, &right, at),
    }
}

/// Numbers: whole numbers stay whole where Python's would (`+ - * // %`).
fn arithmetic(op: BinOp, left: &Json, right: &Json, at: usize) -> Result<Json, EvalError> {
    let symbol = match op {
        BinOp::Add => "+",
        BinOp::Subtract => "-",
        BinOp::Multiply => "*",
        BinOp::Divide => "/",
        BinOp::FloorDivide => "//",
        _ => "%",
    };
    let (Some(a), Some(b)) = (number(left), number(right)) else {
        return Err(fail(format!("unsupported: {} {symbol} {}", type_name(left), type_name(right)), at));
    };
    let whole = |v: &Json| v.is_i64() || v.is_boolean();
    if whole(left) && whole(right) {
        let (x, y) = (a as i64, b as i64);
        let exact = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Subtract => x.checked_sub(y),
            BinOp::Multiply => x.checked_mul(y),
            BinOp::FloorDivide | BinOp::Modulo if y == 0 => {
                return Err(fail("division by zero", at));
            }
            BinOp::FloorDivide | BinOp::Modulo => {
                let quotient = x.checked_div(y).map(|q| if x % y != 0 && ((x < 0) != (y < 0)) { q - 1 } else { q });
                match op {
                    BinOp::FloorDivide => quotient,
                    _ => quotient.and_then(|q| y.checked_mul(q)).and_then(|p| x.checked_sub(p)),
                }
            }
            _ => None,
        };
        if let Some(value) = exact {
            return Ok(Json::from(value));
        }
    }
    let value = match op {
        BinOp::Add => a + b,
        BinOp::Subtract => a - b,
        BinOp::Multiply => a * b,
        _ if b == 0.0 => return Err(fail("division by zero", at)),
        BinOp::Divide => a / b,
        BinOp::FloorDivide => (a / b).floor(),
        _ => a - b * (a / b).floor(),
    };
    float(value, at)
}

//! The parser: Python's grammar for the expressions Ceilometer's users write, and
//! nothing more. Names are resolved here (a name the expression may not see is a
//! parse error), and so are functions and methods: what parses can only compute.

use super::lex::{tokenize, Token};
use super::{Function, Method, ParseError};
use serde_json::Value as Json;

/// A node with the offset of its first token, for runtime errors.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spanned {
    pub(super) node: Node,
    pub(super) at: usize,
}

/// The binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    FloorDivide,
    Modulo,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    In,
    NotIn,
    Is,
    IsNot,
}

/// A parsed expression's tree.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Literal(Json),
    /// A variable, by its index: the scope's names first, then lambda parameters.
    Var(usize),
    List(Vec<Spanned>),
    Dict(Vec<(Spanned, Spanned)>),
    Index(Box<Spanned>, Box<Spanned>),
    Slice(Box<Spanned>, Option<Box<Spanned>>, Option<Box<Spanned>>),
    Method(Box<Spanned>, Method, Vec<Spanned>),
    Call(Function, Vec<Spanned>),
    /// `lambda v: body`, only as the first argument of `filter` and `map`.
    Lambda(Box<Spanned>),
    Not(Box<Spanned>),
    Negate(Box<Spanned>),
    Binary(BinOp, Box<Spanned>, Box<Spanned>),
    And(Box<Spanned>, Box<Spanned>),
    Or(Box<Spanned>, Box<Spanned>),
    /// `then if condition else otherwise`.
    IfElse(Box<Spanned>, Box<Spanned>, Box<Spanned>),
}

/// Parses `text` with `names` in scope.
pub(super) fn parse(text: &str, names: &[&str]) -> Result<Spanned, ParseError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(ParseError::new("the expression is empty", 0));
    }
    let mut parser =
        Parser { tokens, position: 0, end: text.len(), depth: 0, names: names.iter().map(|n| n.to_string()).collect() };
    let root = parser.expression()?;
    match parser.peek() {
        None => Ok(root),
        Some((token, at)) => {
            Err(ParseError::new(format!("unexpected {} after a whole expression", token.describe()), at))
        }
    }
}

/// How deep expressions may nest (parentheses, calls, operators).
const MAX_DEPTH: usize = 64;

struct Parser {
    tokens: Vec<(Token, usize)>,
    position: usize,
    end: usize,
    depth: usize,
    /// The names in scope: the caller's, then the lambdas' being parsed.
    names: Vec<String>,
}

impl Parser {
    fn peek(&self) -> Option<(Token, usize)> {
        self.tokens.get(self.position).cloned()
    }

    fn at(&self) -> usize {
        self.tokens.get(self.position).map_or(self.end, |(_, at)| *at)
    }

    fn next(&mut self) -> Option<(Token, usize)> {
        let token = self.peek();
        self.position += 1;
        token
    }

    fn is(&self, token: &Token) -> bool {
        self.tokens.get(self.position).is_some_and(|(t, _)| t == token)
    }

    fn eat(&mut self, token: &Token) -> bool {
        let found = self.is(token);
        if found {
            self.position += 1;
        }
        found
    }

    fn expect(&mut self, punct: &'static str) -> Result<(), ParseError> {
        if self.eat(&Token::Punct(punct)) {
            return Ok(());
        }
        Err(match self.peek() {
            Some((token, at)) => ParseError::new(format!("expected `{punct}`, found {}", token.describe()), at),
            None => ParseError::new(format!("expected `{punct}`, found the end"), self.end),
        })
    }

    /// Enters one level of nesting; a bound keeps a hostile expression from
    /// exhausting the stack.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(format!("nested deeper than {MAX_DEPTH} levels"), self.at()));
        }
        Ok(())
    }

    /// `a if c else b`, or a lambda where one is allowed (see `lambda`).
    fn expression(&mut self) -> Result<Spanned, ParseError> {
        self.enter()?;
        let parsed = self.conditional();
        self.depth -= 1;
        parsed
    }

    fn conditional(&mut self) -> Result<Spanned, ParseError> {
        let at = self.at();
        if self.is(&Token::Keyword("lambda")) {
            return Err(ParseError::new("a `lambda` is allowed only as the first argument of `filter` or `map`", at));
        }
        let then = self.or()?;
        if !self.eat(&Token::Keyword("if")) {
            return Ok(then);
        }
        let condition = self.or()?;
        if !self.eat(&Token::Keyword("else")) {
            return Err(ParseError::new("`x if condition` needs its `else`", self.at()));
        }
        let otherwise = self.expression()?;
        Ok(Spanned { node: Node::IfElse(Box::new(then), Box::new(condition), Box::new(otherwise)), at })
    }

    fn lambda(&mut self) -> Result<Spanned, ParseError> {
        let at = self.at();
        self.next();
        let name = match self.next() {
            Some((Token::Name(name), _)) => name,
            Some((token, at)) => {
                return Err(ParseError::new(
                    format!("a lambda needs one parameter name, found {}", token.describe()),
                    at,
                ))
            }
            None => return Err(ParseError::new("a lambda needs one parameter name", self.end)),
        };
        check_name(&name, at)?;
        self.expect(":")?;
        self.names.push(name);
        let body = self.expression();
        self.names.pop();
        Ok(Spanned { node: Node::Lambda(Box::new(body?)), at })
    }

    fn or(&mut self) -> Result<Spanned, ParseError> {
        let mut left = self.and()?;
        while self.eat(&Token::Keyword("or")) {
            let right = self.and()?;
            let at = left.at;
            left = Spanned { node: Node::Or(Box::new(left), Box::new(right)), at };
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Spanned, ParseError> {
        let mut left = self.not()?;
        while self.eat(&Token::Keyword("and")) {
            let right = self.not()?;
            let at = left.at;
            left = Spanned { node: Node::And(Box::new(left), Box::new(right)), at };
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Spanned, ParseError> {
        let at = self.at();
        if self.eat(&Token::Keyword("not")) {
            self.enter()?;
            let inner = self.not();
            self.depth -= 1;
            let inner = inner?;
            return Ok(Spanned { node: Node::Not(Box::new(inner)), at });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Spanned, ParseError> {
        let mut left = self.sum()?;
        loop {
            let op = match self.peek() {
                Some((Token::Punct("=="), _)) => BinOp::Equal,
                Some((Token::Punct("!="), _)) => BinOp::NotEqual,
                Some((Token::Punct("<"), _)) => BinOp::Less,
                Some((Token::Punct("<="), _)) => BinOp::LessEqual,
                Some((Token::Punct(">"), _)) => BinOp::Greater,
                Some((Token::Punct(">="), _)) => BinOp::GreaterEqual,
                Some((Token::Keyword("in"), _)) => BinOp::In,
                Some((Token::Keyword("is"), _)) => {
                    self.next();
                    let op = if self.is(&Token::Keyword("not")) { BinOp::IsNot } else { BinOp::Is };
                    if op == BinOp::IsNot {
                        self.next();
                    }
                    let right = self.sum()?;
                    let at = left.at;
                    left = Spanned { node: Node::Binary(op, Box::new(left), Box::new(right)), at };
                    continue;
                }
                Some((Token::Keyword("not"), _))
                    if self.tokens.get(self.position + 1).is_some_and(|(t, _)| *t == Token::Keyword("in")) =>
                {
                    self.next();
                    BinOp::NotIn
                }
                _ => return Ok(left),
            };
            self.next();
            let right = self.sum()?;
            let at = left.at;
            left = Spanned { node: Node::Binary(op, Box::new(left), Box::new(right)), at };
        }
    }

    fn sum(&mut self) -> Result<Spanned, ParseError> {
        let mut left = self.product()?;
        loop {
            let op = match self.peek() {
                Some((Token::Punct("+"), _)) => BinOp::Add,
                Some((Token::Punct("-"), _)) => BinOp::Subtract,
                _ => return Ok(left),
            };
            self.next();
            let right = self.product()?;
            let at = left.at;
            left = Spanned { node: Node::Binary(op, Box::new(left), Box::new(right)), at };
        }
    }

    fn product(&mut self) -> Result<Spanned, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some((Token::Punct("*"), _)) => BinOp::Multiply,
                Some((Token::Punct("/"), _)) => BinOp::Divide,
                Some((Token::Punct("//"), _)) => BinOp::FloorDivide,
                Some((Token::Punct("%"), _)) => BinOp::Modulo,
                _ => return Ok(left),
            };
            self.next();
            let right = self.unary()?;
            let at = left.at;
            left = Spanned { node: Node::Binary(op, Box::new(left), Box::new(right)), at };
        }
    }

    fn unary(&mut self) -> Result<Spanned, ParseError> {
        let at = self.at();
        if self.eat(&Token::Punct("-")) {
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            let inner = inner?;
            return Ok(Spanned { node: Node::Negate(Box::new(inner)), at });
        }
        if self.eat(&Token::Punct("+")) {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Spanned, ParseError> {
        let mut value = self.atom()?;
        loop {
            let at = self.at();
            if self.eat(&Token::Punct("[")) {
                value = self.subscript(value)?;
            } else if self.eat(&Token::Punct(".")) {
                let (name, name_at) = match self.next() {
                    Some((Token::Name(name), name_at)) => (name, name_at),
                    Some((token, at)) => {
                        return Err(ParseError::new(
                            format!("expected a method name after `.`, found {}", token.describe()),
                            at,
                        ))
                    }
                    None => return Err(ParseError::new("expected a method name after `.`", self.end)),
                };
                check_name(&name, name_at)?;
                if !self.is(&Token::Punct("(")) {
                    return Err(ParseError::new(
                        format!("attributes cannot be read, only methods called: write `value['{name}']` for a key"),
                        name_at,
                    ));
                }
                let Some(method) = Method::named(&name) else {
                    return Err(ParseError::new(
                        format!("`{name}` is not a method the language knows; it knows {}", Method::list()),
                        name_at,
                    ));
                };
                self.next();
                let arguments = self.arguments(false)?;
                method.check_arity(arguments.len(), name_at)?;
                value = Spanned { node: Node::Method(Box::new(value), method, arguments), at };
            } else if self.is(&Token::Punct("(")) {
                return Err(ParseError::new("only named functions and methods can be called", at));
            } else {
                return Ok(value);
            }
        }
    }

    /// After `[`: an index or a slice, through `]`.
    fn subscript(&mut self, value: Spanned) -> Result<Spanned, ParseError> {
        let at = value.at;
        let start = if self.is(&Token::Punct(":")) { None } else { Some(Box::new(self.expression()?)) };
        if self.eat(&Token::Punct(":")) {
            let stop = if self.is(&Token::Punct("]")) { None } else { Some(Box::new(self.expression()?)) };
            self.expect("]")?;
            return Ok(Spanned { node: Node::Slice(Box::new(value), start, stop), at });
        }
        self.expect("]")?;
        let index = start.ok_or_else(|| ParseError::new("an empty index", at))?;
        Ok(Spanned { node: Node::Index(Box::new(value), index), at })
    }

    /// After `(`: comma-separated arguments through `)`; `lambda_first` allows a
    /// lambda as the first.
    fn arguments(&mut self, lambda_first: bool) -> Result<Vec<Spanned>, ParseError> {
        let mut arguments = Vec::new();
        while !self.eat(&Token::Punct(")")) {
            if !arguments.is_empty() {
                self.expect(",")?;
                if self.eat(&Token::Punct(")")) {
                    break;
                }
            }
            if let Some((Token::Name(_), at)) = self.peek() {
                if self.tokens.get(self.position + 1).is_some_and(|(t, _)| *t == Token::Punct("=")) {
                    return Err(ParseError::new("keyword arguments are not supported", at));
                }
            }
            if lambda_first && arguments.is_empty() && self.is(&Token::Keyword("lambda")) {
                arguments.push(self.lambda()?);
            } else {
                arguments.push(self.expression()?);
            }
            if self.peek().is_none() {
                return Err(ParseError::new("expected `)`, found the end", self.end));
            }
        }
        Ok(arguments)
    }

    fn atom(&mut self) -> Result<Spanned, ParseError> {
        let Some((token, at)) = self.next() else {
            return Err(ParseError::new("the expression ends where a value was expected", self.end));
        };
        let node = match token {
            Token::Int(value) => Node::Literal(Json::from(value)),
            Token::Float(value) => Node::Literal(Json::from(value)),
            Token::Str(mut text) => {
                // Adjacent literals join, as in Python.
                while let Some((Token::Str(more), _)) = self.peek() {
                    text.push_str(&more);
                    self.next();
                }
                Node::Literal(Json::String(text))
            }
            Token::Keyword("None") => Node::Literal(Json::Null),
            Token::Keyword("True") => Node::Literal(Json::Bool(true)),
            Token::Keyword("False") => Node::Literal(Json::Bool(false)),
            Token::Punct("(") => {
                let inner = self.expression()?;
                if self.is(&Token::Punct(",")) {
                    return Err(ParseError::new("tuples are not supported; write a list `[a, b]`", self.at()));
                }
                self.expect(")")?;
                return Ok(inner);
            }
            Token::Punct("[") => {
                let mut items = Vec::new();
                while !self.eat(&Token::Punct("]")) {
                    if !items.is_empty() {
                        self.expect(",")?;
                        if self.eat(&Token::Punct("]")) {
                            break;
                        }
                    }
                    items.push(self.expression()?);
                    if self.peek().is_none() {
                        return Err(ParseError::new("expected `]`, found the end", self.end));
                    }
                }
                Node::List(items)
            }
            Token::Punct("{") => {
                let mut entries = Vec::new();
                while !self.eat(&Token::Punct("}")) {
                    if !entries.is_empty() {
                        self.expect(",")?;
                        if self.eat(&Token::Punct("}")) {
                            break;
                        }
                    }
                    let key = self.expression()?;
                    self.expect(":")?;
                    entries.push((key, self.expression()?));
                    if self.peek().is_none() {
                        return Err(ParseError::new("expected `}`, found the end", self.end));
                    }
                }
                Node::Dict(entries)
            }
            Token::Name(name) => {
                check_name(&name, at)?;
                if self.is(&Token::Punct("(")) {
                    let Some(function) = Function::named(&name) else {
                        return Err(ParseError::new(
                            format!("`{name}` is not a function the language knows; it knows {}", Function::list()),
                            at,
                        ));
                    };
                    self.next();
                    let arguments = self.arguments(function.takes_lambda())?;
                    function.check_arity(arguments.len(), at)?;
                    if function.takes_lambda() && !matches!(arguments.first().map(|a| &a.node), Some(Node::Lambda(_))) {
                        return Err(ParseError::new(format!("`{name}` takes a `lambda v: ...` first"), at));
                    }
                    Node::Call(function, arguments)
                } else {
                    match self.names.iter().rposition(|n| *n == name) {
                        Some(index) => Node::Var(index),
                        None => {
                            let known = self.names.join("`, `");
                            return Err(ParseError::new(
                                format!("unknown name `{name}`; this expression can read `{known}`"),
                                at,
                            ));
                        }
                    }
                }
            }
            other => return Err(ParseError::new(format!("unexpected {}", other.describe()), at)),
        };
        Ok(Spanned { node, at })
    }
}

/// Python's internals are reached through double-underscore names: none parses.
fn check_name(name: &str, at: usize) -> Result<(), ParseError> {
    if name.starts_with("__") || name.contains("__") {
        return Err(ParseError::new(
            format!("`{name}`: names with double underscores (Python's internals) are refused"),
            at,
        ));
    }
    Ok(())
}

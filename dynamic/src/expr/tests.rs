use super::*;
use serde_json::json;

fn eval(text: &str, value: Json) -> Result<Json, EvalError> {
    Expr::parse(text, &["value"]).unwrap_or_else(|e| panic!("{text}: {e}")).eval(&[&value])
}

fn ok(text: &str, value: Json) -> Json {
    eval(text, value).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn refused(text: &str) -> ParseError {
    Expr::parse(text, &["value"]).expect_err(text)
}

#[test]
fn python_s_operators_and_precedence() {
    assert_eq!(ok("1 + 2 * 3", json!(null)), json!(7));
    assert_eq!(ok("(1 + 2) * 3", json!(null)), json!(9));
    assert_eq!(ok("7 // 2", json!(null)), json!(3));
    assert_eq!(ok("-7 // 2", json!(null)), json!(-4));
    assert_eq!(ok("-7 % 3", json!(null)), json!(2));
    assert_eq!(ok("7 / 2", json!(null)), json!(3.5));
    assert_eq!(ok("value * 1024", json!(2)), json!(2048));
    assert_eq!(ok("value / 1024 / 1024", json!(1048576)), json!(1.0));
    assert_eq!(ok("not value", json!([])), json!(true));
    assert_eq!(ok("value or 'x'", json!(null)), json!("x"));
    assert_eq!(ok("value and value['a']", json!({"a": 3})), json!(3));
    assert_eq!(ok("1 if value == 'ACTIVE' else 0", json!("ACTIVE")), json!(1));
    assert_eq!(ok("1 if value == 'ACTIVE' else 0", json!("ERROR")), json!(0));
    assert_eq!(ok("value is None", json!(null)), json!(true));
    assert_eq!(ok("value is not None", json!(0)), json!(true));
    assert_eq!(ok("'a' in value", json!({"a": 1})), json!(true));
    assert_eq!(ok("'x' not in value", json!("abc")), json!(true));
    assert_eq!(ok("2 in value", json!([1, 2.0])), json!(true));
    assert_eq!(ok("value >= 10 and value < 20", json!(15)), json!(true));
    assert_eq!(ok("'/v3/projects/' + str(value)", json!("p1")), json!("/v3/projects/p1"));
    assert_eq!(ok("'a' 'b'", json!(null)), json!("ab"));
}

#[test]
fn indexing_slicing_and_literals() {
    assert_eq!(ok("value[0]", json!(["a", "b"])), json!("a"));
    assert_eq!(ok("value[-1]", json!(["a", "b"])), json!("b"));
    assert_eq!(ok("value['id']", json!({"id": "x"})), json!("x"));
    assert_eq!(ok("value[1:3]", json!("abcd")), json!("bc"));
    assert_eq!(ok("value[:2]", json!([1, 2, 3])), json!([1, 2]));
    assert_eq!(ok("value[-2:]", json!([1, 2, 3])), json!([2, 3]));
    assert_eq!(ok("[value, 1, None, True]", json!("v")), json!(["v", 1, null, true]));
    assert_eq!(ok("{'id': value, 'n': 2}['id']", json!("v")), json!("v"));
    assert_eq!(eval("value[5]", json!([1])).unwrap_err().message, "index 5 is out of range (the list has 1)");
    assert_eq!(eval("value['b']", json!({"a": 1})).unwrap_err().message, "no key 'b'");
}

#[test]
fn functions_and_methods() {
    assert_eq!(ok("str(value)", json!(1.0)), json!("1.0"));
    assert_eq!(ok("int(value)", json!(" 42 ")), json!(42));
    assert_eq!(ok("int(value)", json!(3.9)), json!(3));
    assert_eq!(ok("float(value)", json!("2.5")), json!(2.5));
    assert_eq!(ok("len(value)", json!({"a": 1, "b": 2})), json!(2));
    assert_eq!(ok("list(value)", json!({"a": 1, "b": 2})), json!(["a", "b"]));
    assert_eq!(ok("sorted(value)", json!([3, 1, 2])), json!([1, 2, 3]));
    assert_eq!(ok("max(value)", json!([3, 1, 2])), json!(3));
    assert_eq!(ok("min(value, 0)", json!(5)), json!(0));
    assert_eq!(ok("sum(value)", json!([1, 2, 3.5])), json!(6.5));
    assert_eq!(ok("round(value)", json!(2.5)), json!(2));
    assert_eq!(ok("round(value, 1)", json!(2.25)), json!(2.2));
    assert_eq!(ok("abs(value)", json!(-3)), json!(3));
    assert_eq!(ok("bool(value)", json!("")), json!(false));
    assert_eq!(ok("list(map(lambda v: v['n'] * 2, value))", json!([{"n": 1}, {"n": 2}])), json!([2, 4]));
    assert_eq!(ok("len(list(filter(lambda v: v > 1, value)))", json!([1, 2, 3])), json!(2));
    assert_eq!(ok("value.split('$')", json!("a$b")), json!(["a", "b"]));
    assert_eq!(ok("value.split()", json!(" a  b ")), json!(["a", "b"]));
    assert_eq!(ok("value.split('/', 1)", json!("a/b/c")), json!(["a", "b/c"]));
    assert_eq!(ok("value.rsplit('/', 1)", json!("a/b/c")), json!(["a/b", "c"]));
    assert_eq!(ok("value.strip()", json!("  x ")), json!("x"));
    assert_eq!(ok("value.strip('<>')", json!("<x>")), json!("x"));
    assert_eq!(ok("value.replace('http:', 'https:')", json!("http://a")), json!("https://a"));
    assert_eq!(ok("value.lower() + value.upper()", json!("aB")), json!("abAB"));
    assert_eq!(ok("value.startswith('ab')", json!("abc")), json!(true));
    assert_eq!(ok("value.endswith('bc')", json!("abc")), json!(true));
    assert_eq!(ok("','.join(value)", json!(["a", "b"])), json!("a,b"));
    assert_eq!(ok("value.find('c')", json!("abc")), json!(2));
    assert_eq!(ok("value.get('x', 'd')", json!({})), json!("d"));
    assert_eq!(ok("value.get('x')", json!({})), json!(null));
    assert_eq!(ok("value.keys()", json!({"k": 1})), json!(["k"]));
    assert_eq!(ok("value.values()", json!({"k": 1})), json!([1]));
    assert_eq!(ok("value.items()", json!({"k": 1})), json!([["k", 1]]));
    assert_eq!(ok("value.index(2)", json!([1, 2])), json!(1));
    assert_eq!(ok("value.count('a')", json!("banana")), json!(3));
    assert_eq!(ok("value.isdigit()", json!("123")), json!(true));
    assert_eq!(eval("value.split('$')", json!(3)).unwrap_err().message, "a int has no method split()");
}

#[test]
fn nothing_reaches_python_s_internals() {
    let error = refused("__import__('os').system('id')");
    assert!(error.message.contains("double underscores"), "{error}");
    assert_eq!(error.offset, 0);
    assert!(refused("value.__class__").message.contains("double underscores"));
    assert!(refused("value.__class__.__mro__").message.contains("double underscores"));
    assert!(refused("value['a'].__dict__").message.contains("double underscores"));
    let error = refused("open('/etc/passwd')");
    assert!(error.message.contains("`open` is not a function"), "{error}");
    let error = refused("eval('1')");
    assert!(error.message.contains("`eval` is not a function"), "{error}");
    let error = refused("os");
    assert!(error.message.contains("unknown name `os`"), "{error}");
    assert!(refused("value.real").message.contains("attributes cannot be read"));
    assert!(refused("value.format(1)").message.contains("`format` is not a method"));
    assert!(refused("(lambda v: v)(1)").message.contains("lambda"));
    assert!(refused("value; 1").message.contains("unexpected character"));
    assert!(refused("f(x=1)").message.contains("not a function"));
    assert!(refused("max(value, key=1)").message.contains("keyword arguments"));
    assert!(refused("[v for v in value]").message.contains("unknown name `v`"));
    assert!(refused("[value for value in value]").message.contains("expected `,`"));
    assert!(refused("value ** 2").message.contains("unexpected"));
    // A lambda's parameter exists only in its body.
    assert!(refused("filter(lambda v: v, value) + v").message.contains("unknown name `v`"));
}

#[test]
fn parse_errors_point_at_the_problem() {
    assert_eq!(refused("value[").offset, 6);
    assert_eq!(refused("value.split('$'").offset, 15);
    assert_eq!(refused("1 if value").message, "`x if condition` needs its `else`");
    assert_eq!(refused("").message, "the expression is empty");
    assert_eq!(refused("value.lower(1)").message, "`.lower()` takes 0 arguments, not 1");
    assert_eq!(refused("len()").message, "`len` takes 1 argument, not 0");
}

#[test]
fn hostile_expressions_are_bounded() {
    // Repetition.
    let error = eval("'a' * 1000000000", json!(null)).unwrap_err();
    assert!(error.message.contains("over 1048576 bytes"), "{error}");
    assert!(eval("[1] * 1000000000", json!(null)).unwrap_err().message.contains("over 100000 items"));
    assert!(eval("value.replace('a', 'aaaaaaaaaaaaaaaaaaaa')", json!("a".repeat(100_000))).is_err());
    // A value copied into itself, operation after operation (the attribute's `|`).
    let doubling = ["{'a': value, 'b': value}"; 40].join(" | ");
    let attribute = crate::Attribute::parse(&format!(". | {doubling}")).unwrap();
    assert!(attribute.get(&json!(1)).unwrap_err().message.contains("over 100000 values"));
    // Work: a map over a map.
    let error = eval("list(map(lambda v: list(map(lambda w: w, value)), value))", json!(vec![0; 1000])).unwrap_err();
    assert!(error.message.contains("steps"), "{error}");
    // Nesting: the parser's depth is bounded, not the stack.
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Expr::parse(&deep, &["value"]).unwrap_err().message.contains("longer than"));
    let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
    assert!(Expr::parse(&deep, &["value"]).unwrap_err().message.contains("nested deeper"));
    let negations = format!("{}1", "-".repeat(1000));
    assert!(Expr::parse(&negations, &["value"]).unwrap_err().message.contains("nested deeper"));
    assert!(eval("1 // 0", json!(null)).unwrap_err().message.contains("division by zero"));
}

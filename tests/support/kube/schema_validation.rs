//! Validation of a custom resource against its CRD's structural `openAPIV3Schema`, with
//! the causes a v1.33 server reports (kube-openapi's validator, turned into field errors
//! by apiextensions-apiserver's `kubeOpenAPIResultToFieldErrors`): `type` (and
//! `nullable`, `x-kubernetes-int-or-string`), `enum`, `required`, `minimum`/`maximum`
//! (and their `exclusive` forms), `multipleOf`, `minLength`/`maxLength`, `pattern`,
//! `format: date-time`, `minItems`/`maxItems`, `minProperties`/`maxProperties`,
//! uniqueness in `x-kubernetes-list-type: set|map` lists, `allOf`/`anyOf`/`oneOf`/`not`,
//! and `apiVersion`/`kind` of `x-kubernetes-embedded-resource` objects. Not evaluated:
//! CEL rules (`x-kubernetes-validations`), formats other than date-time, ratcheting of
//! unchanged invalid values on update.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::pruning::{Sub, child, embedded, index, sub_schema};
use super::schema::item_key;
use super::status::Cause;

/// The causes of everything in `obj` that `schema` refuses (the root's `apiVersion`,
/// `kind` and `metadata` are the server's business, validated elsewhere).
pub(crate) fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut causes = vec![];
    let Some(map) = obj.as_object() else {
        return causes;
    };
    for req in strings(&schema["required"]) {
        if !map.contains_key(&req) {
            causes.push(Cause::required(req, ""));
        }
    }
    for (k, v) in map {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Sub::Schema(sub) = sub_schema(schema, k) {
            check(v, sub, k, &mut causes);
        }
    }
    causes
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// The JSON type name go-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

/// How a value appears in a field error (Go's `%#v`-like rendering kube uses).
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn check(x: &Value, s: &Value, path: &str, causes: &mut Vec<Cause>) {
    let int_or_string = s["x-kubernetes-int-or-string"] == true;
    if x.is_null() {
        if s["nullable"] == true {
            return;
        }
        let expected = if int_or_string {
            Some("integer,string".to_string())
        } else {
            s["type"].as_str().map(str::to_string)
        };
        if let Some(t) = expected {
            causes.push(Cause::type_invalid(
                path,
                format!("\"null\": {path} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    if int_or_string && !(has_type(x, "integer") || x.is_string()) {
        causes.push(Cause::type_invalid(
            path,
            format!(
                "{}: {path} in body must be of type integer,string: \"{}\"",
                shown(x),
                type_name(x)
            ),
        ));
        return;
    }
    if let Some(t) = s["type"].as_str()
        && !has_type(x, t)
    {
        causes.push(Cause::type_invalid(
            path,
            format!(
                "{}: {path} in body must be of type {t}: \"{}\"",
                shown(x),
                type_name(x)
            ),
        ));
        return;
    }
    if let Some(allowed) = s["enum"].as_array()
        && !allowed.contains(x)
    {
        let values: Vec<String> = allowed.iter().map(shown).collect();
        causes.push(Cause::not_supported(
            path,
            format!("{}: supported values: {}", shown(x), values.join(", ")),
        ));
    }
    match x {
        Value::String(text) => check_string(text, s, path, causes),
        Value::Number(_) => check_number(x, s, path, causes),
        Value::Array(items) => check_array(items, s, path, causes),
        Value::Object(map) => check_object(map, s, path, causes),
        _ => {}
    }
    for sub in s["allOf"].as_array().into_iter().flatten() {
        check(x, sub, path, causes);
    }
    let passes = |sub: &Value| {
        let mut c = vec![];
        check(x, sub, path, &mut c);
        c.is_empty()
    };
    if let Some(any) = s["anyOf"].as_array()
        && !any.iter().any(passes)
    {
        causes.push(Cause::invalid(
            path,
            format!(
                "{}: {path} in body must validate at least one schema (anyOf)",
                shown(x)
            ),
        ));
    }
    if let Some(one) = s["oneOf"].as_array()
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        causes.push(Cause::invalid(
            path,
            format!(
                "{}: {path} in body must validate one and only one schema (oneOf)",
                shown(x)
            ),
        ));
    }
    if s["not"].is_object() && passes(&s["not"]) {
        causes.push(Cause::invalid(
            path,
            format!(
                "{}: {path} in body must not validate the schema (not)",
                shown(x)
            ),
        ));
    }
}

thread_local! {
    static PATTERNS: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::new(HashMap::new());
}

/// Whether `text` matches `pattern` somewhere (Go's `regexp.MatchString`, unanchored).
fn matches_pattern(pattern: &str, text: &str) -> bool {
    PATTERNS.with(|cache| {
        cache
            .borrow_mut()
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(pattern).ok())
            .as_ref()
            .is_none_or(|re| re.is_match(text))
    })
}

/// RFC 3339 as strfmt's `date-time` takes it: `2006-01-02T15:04:05(.frac)(Z|±07:00)`.
fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 19
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] | [b'+' | b'-', h1, h2, m1, m2] => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

fn check_string(text: &str, s: &Value, path: &str, causes: &mut Vec<Cause>) {
    let len = text.chars().count() as u64;
    if let Some(max) = s["maxLength"].as_u64()
        && len > max
    {
        causes.push(Cause::too_long(
            path,
            format!("may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = s["minLength"].as_u64()
        && len < min
    {
        causes.push(Cause::invalid(
            path,
            format!("{text:?}: {path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = s["pattern"].as_str()
        && !matches_pattern(pattern, text)
    {
        causes.push(Cause::invalid(
            path,
            format!("{text:?}: {path} in body should match '{pattern}'"),
        ));
    }
    if s["format"] == "date-time" && !is_date_time(text) {
        causes.push(Cause::type_invalid(
            path,
            format!("{text:?}: {path} in body must be of type date-time: {text:?}"),
        ));
    }
}

fn check_number(x: &Value, s: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(n) = number(x) else {
        return;
    };
    if let Some(min) = number(&s["minimum"]) {
        let exclusive = s["exclusiveMinimum"] == true;
        if n < min || (exclusive && n == min) {
            let op = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(Cause::invalid(
                path,
                format!("{x}: {path} in body should be {op} {}", s["minimum"]),
            ));
        }
    }
    if let Some(max) = number(&s["maximum"]) {
        let exclusive = s["exclusiveMaximum"] == true;
        if n > max || (exclusive && n == max) {
            let op = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(Cause::invalid(
                path,
                format!("{x}: {path} in body should be {op} {}", s["maximum"]),
            ));
        }
    }
    if let Some(m) = number(&s["multipleOf"])
        && m > 0.0
        && (n / m).fract() != 0.0
    {
        causes.push(Cause::invalid(
            path,
            format!(
                "{x}: {path} in body should be a multiple of {}",
                s["multipleOf"]
            ),
        ));
    }
}

fn check_array(items: &[Value], s: &Value, path: &str, causes: &mut Vec<Cause>) {
    let len = items.len() as u64;
    if let Some(max) = s["maxItems"].as_u64()
        && len > max
    {
        causes.push(Cause::too_many(
            path,
            format!("{len}: must have at most {max} items"),
        ));
    }
    if let Some(min) = s["minItems"].as_u64()
        && len < min
    {
        causes.push(Cause::invalid(
            path,
            format!("{len}: {path} in body should have at least {min} items"),
        ));
    }
    let item_schema = &s["items"];
    if item_schema.is_object() {
        for (i, v) in items.iter().enumerate() {
            check(v, item_schema, &index(path, i), causes);
        }
    }
    match s["x-kubernetes-list-type"].as_str() {
        Some("set") => {
            for (i, v) in items.iter().enumerate() {
                if items[..i].contains(v) {
                    causes.push(Cause::duplicate(index(path, i), shown(v)));
                }
            }
        }
        Some("map") => {
            let keys = strings(&s["x-kubernetes-list-map-keys"]);
            let mut seen = vec![];
            for (i, v) in items.iter().enumerate() {
                let Some(key) = item_key(v, &keys) else {
                    continue;
                };
                if seen.contains(&key) {
                    causes.push(Cause::duplicate(index(path, i), key.to_string()));
                }
                seen.push(key);
            }
        }
        _ => {}
    }
}

fn check_object(
    map: &serde_json::Map<String, Value>,
    s: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    for req in strings(&s["required"]) {
        if !map.contains_key(&req) {
            causes.push(Cause::required(child(path, &req), ""));
        }
    }
    let len = map.len() as u64;
    if let Some(max) = s["maxProperties"].as_u64()
        && len > max
    {
        causes.push(Cause::too_many(
            path,
            format!("{len}: must have at most {max} items"),
        ));
    }
    if let Some(min) = s["minProperties"].as_u64()
        && len < min
    {
        causes.push(Cause::invalid(
            path,
            format!("{len}: {path} in body should have at least {min} properties"),
        ));
    }
    let is_embedded = embedded(s);
    if is_embedded {
        for field in ["apiVersion", "kind"] {
            if map
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required(child(path, field), "must not be empty"));
            }
        }
    }
    for (k, v) in map {
        if is_embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Sub::Schema(sub) = sub_schema(s, k) {
            check(v, sub, &child(path, k), causes);
        }
    }
}

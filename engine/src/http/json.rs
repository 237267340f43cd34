//! `JsonBody<T>`: the one JSON body extractor of the REST routes. Its errors are `400 invalid_json`
//! answers that name the field's path and what was expected (`questions: expected a whole number from
//! 1 to 50, got -3`), found with `serde_path_to_error`, plus `error.field` for programs; an oversized
//! body is `413 payload_too_large` and a body sent without a JSON content type says how to send one.
//!
//! Bodies may describe their fields better than Rust's type names do through [`FieldHints`].

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::State;
use crate::error::ApiError;

/// What a body's fields hold, in words, for error messages (`questions` → "a whole number from 1 to
/// 50"). The default knows none and falls back on the type.
pub trait FieldHints {
    /// The expected value at `path` (`candidate.name`, `messages[0].role`), if worth saying.
    fn expected(_path: &str) -> Option<&'static str> {
        None
    }
}

impl FieldHints for Value {}

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + FieldHints + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<State>()
            .map_or(0, |s| s.config.server.max_body_bytes);
        let content_type_ok = is_json(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::InvalidJson(
                    "send the body as JSON with the header Content-Type: application/json (curl: -H 'Content-Type: application/json')".into(),
                ));
            }
            let bytes = body.await.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => ApiError::PayloadTooLarge(limit),
                _ => ApiError::InvalidJson(format!("could not read the body: {e}")),
            })?;
            parse::<T>(&bytes).map(JsonBody)
        })
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(ct) = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a body: JSON syntax first (with line and column), then an object at the top, then `T` with
/// the failing field's path.
pub fn parse<T: DeserializeOwned + FieldHints>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidField {
            field: "body".into(),
            message: "empty; expected a JSON object".into(),
        });
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::InvalidField {
            field: "body".into(),
            message: format!("expected a JSON object, got {}", kind(&value)),
        });
    }
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let (field, message) = describe(&path, &inner, T::expected);
        ApiError::InvalidField { field, message }
    })
}

/// A JSON value's kind with the value itself when short: `an array`, `the string "5"`, `-3`.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A serde message (`invalid type: string "5", expected u32`) as the field's path and a sentence for
/// people (`expected a whole number from 1 to 50, got the string "5"`).
pub fn describe(
    path: &str,
    serde_message: &str,
    hint: fn(&str) -> Option<&'static str>,
) -> (String, String) {
    // serde_json appends the position; the path says more.
    let msg = serde_message
        .rsplit_once(" at line ")
        .map_or(serde_message, |(m, _)| m);
    let at = |p: &str| {
        if p.is_empty() || p == "." {
            "body".to_string()
        } else {
            p.to_string()
        }
    };
    let mut field = at(path);
    if let Some(name) = between(msg, "missing field `", "`") {
        field = at(&join(path, name));
        return (field, "missing; this field is required".into());
    }
    if let Some(name) = between(msg, "unknown field `", "`") {
        let known = msg
            .split_once(", expected ")
            .map(|(_, e)| e.trim_start_matches("one of ").replace('`', ""))
            .unwrap_or_default();
        field = at(&join(path, name));
        let message = if known.is_empty() || known == "nothing" {
            "unknown field".to_string()
        } else {
            format!("unknown field; the fields here are {known}")
        };
        return (field, message);
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let (got, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let expected = expected.replace('`', "");
        return (
            field,
            format!(
                "unknown value {}, expected {expected}",
                got.replace('`', "\"")
            ),
        );
    }
    let expected_from_serde = msg.split_once(", expected ").map(|(_, e)| e.trim());
    let got = if let Some(rest) = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
    {
        Some(got_words(
            rest.split_once(", expected ").map_or(rest, |(g, _)| g),
        ))
    } else if msg.starts_with("invalid length ") {
        Some(
            if expected_from_serde.is_some_and(|e| e.starts_with("struct ")) {
                "an array".to_string()
            } else {
                "a list of the wrong length".to_string()
            },
        )
    } else {
        None
    };
    let expected = hint(&field)
        .map(str::to_string)
        .or_else(|| expected_from_serde.map(expected_words));
    let message = match (expected, got) {
        (Some(e), Some(g)) => format!("expected {e}, got {g}"),
        (Some(e), None) => format!("expected {e} ({msg})"),
        _ => msg.to_string(),
    };
    (field, message)
}

fn join(path: &str, name: &str) -> String {
    if path == name || path.ends_with(&format!(".{name}")) {
        // serde_path_to_error already went into it (unknown fields).
        path.to_string()
    } else if path.is_empty() || path == "." {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// serde's "unexpected" side in words: `integer `-3`` → `-3`, `sequence` → `an array`.
fn got_words(g: &str) -> String {
    let g = g.trim();
    for prefix in ["integer ", "floating point ", "boolean "] {
        if let Some(v) = g.strip_prefix(prefix) {
            return v.trim_matches('`').to_string();
        }
    }
    if let Some(s) = g.strip_prefix("string ") {
        return format!("the string {s}");
    }
    match g {
        "sequence" => "an array".into(),
        "map" => "an object".into(),
        "unit value" | "null" => "null".into(),
        other => other.to_string(),
    }
}

/// serde's "expected" side in words: `u32` → `a whole number from 0 to 4294967295`.
fn expected_words(e: &str) -> String {
    let e = e.trim();
    if e.starts_with("struct ") || e == "a map" {
        return "an object".into();
    }
    match e {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "an array".into(),
        "a boolean" => "true or false".into(),
        other => other.replace('`', ""),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        who: Who,
        count: Option<u32>,
        kind: Option<Kind>,
        items: Option<Vec<Item>>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Who {
        id: Option<String>,
        name: String,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Alpha,
        Beta,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        n: f64,
    }
    impl FieldHints for Body {
        fn expected(path: &str) -> Option<&'static str> {
            (path == "count").then_some("a whole number from 1 to 50")
        }
    }

    fn err(body: &str) -> (String, String) {
        match parse::<Body>(body.as_bytes()).unwrap_err() {
            ApiError::InvalidField { field, message } => (field, message),
            other => ("-".into(), other.to_string()),
        }
    }

    #[test]
    fn type_errors_name_the_path_and_what_was_expected() {
        let ok = r#"{"who": {"name": "A"}}"#;
        assert!(parse::<Body>(ok.as_bytes()).is_ok());
        let e = err(r#"{"who": {"name": "A"}, "count": -3}"#);
        assert_eq!(
            e,
            (
                "count".into(),
                "expected a whole number from 1 to 50, got -3".into()
            )
        );
        let e = err(r#"{"who": {"name": "A"}, "count": "5"}"#);
        assert_eq!(
            e.1,
            "expected a whole number from 1 to 50, got the string \"5\""
        );
        let e = err(r#"{"who": {"name": "A"}, "kind": "gamma"}"#);
        assert_eq!(
            e,
            (
                "kind".into(),
                "unknown value \"gamma\", expected alpha or beta".into()
            )
        );
        let e = err(r#"{"who": {"name": 7}}"#);
        assert_eq!(e, ("who.name".into(), "expected a string, got 7".into()));
        let e = err(r#"{"who": {}}"#);
        assert_eq!(
            e,
            ("who.name".into(), "missing; this field is required".into())
        );
        let e = err(r#"{"who": {"name": "A", "nme": 1}}"#);
        assert_eq!(e.0, "who.nme");
        assert_eq!(e.1, "unknown field; the fields here are id or name");
        let e = err(r#"{"who": {"name": "A"}, "items": [{"n": 1}, {"n": "x"}]}"#);
        assert_eq!(
            e,
            (
                "items[1].n".into(),
                "expected a number, got the string \"x\"".into()
            )
        );
        let e = err(r#"{"who": []}"#);
        assert_eq!(e, ("who".into(), "expected an object, got an array".into()));
        let e = err(r#"{"who": {"name": "A"}, "items": {}}"#);
        assert_eq!(
            e,
            ("items".into(), "expected an array, got an object".into())
        );
    }

    #[test]
    fn the_body_itself() {
        assert_eq!(
            err("[]"),
            ("body".into(), "expected a JSON object, got an array".into())
        );
        assert_eq!(
            err("  "),
            ("body".into(), "empty; expected a JSON object".into())
        );
        assert_eq!(
            err("\"x\""),
            (
                "body".into(),
                "expected a JSON object, got the string \"x\"".into()
            )
        );
        let (_, syntax) = err("{\"who\": ");
        assert!(
            syntax.contains("invalid JSON body") && syntax.contains("line 1"),
            "{syntax}"
        );
    }
}

//! Errors in what a client sent, before anything is stored.

use std::fmt;

/// One invalid field: which one (a dotted path such as `changes.plan_id` or `[3].time`)
/// and what is accepted there, written for a person.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Why a request body could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The body is not JSON (or NDJSON) at all: a syntax error or truncated body. HTTP 400.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// The body parsed, but a field has the wrong type or value. HTTP 422.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

impl InputError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        InputError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<FieldError> for InputError {
    fn from(e: FieldError) -> Self {
        InputError::Invalid(vec![e])
    }
}

/// Parses a JSON body into `T`, telling syntax errors (400) from type errors (422) and
/// naming the field of a type error by its path.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, InputError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end().map_err(|e| InputError::Malformed(e.to_string()))?;
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            Err(classify_json_error(path, inner))
        }
    }
}

/// Like [`parse_json`] for a value that was already parsed into a `serde_json::Value`
/// (one line of NDJSON or one element of a batch): every failure is a field error.
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, InputError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = err.path().to_string();
        let msg = tidy_serde_message(&err.into_inner().to_string());
        InputError::field(if path == "." { String::new() } else { path }, msg)
    })
}

fn classify_json_error(path: String, err: serde_json::Error) -> InputError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            InputError::Malformed(format!("the body is not valid JSON ({})", err))
        }
        Category::Data => {
            let field = if path == "." { String::new() } else { path };
            InputError::field(field, tidy_serde_message(&err.to_string()))
        }
    }
}

/// serde's messages end with " at line 1 column 20"; the field path says more.
fn tidy_serde_message(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct T {
        a: i64,
        b: Option<String>,
    }

    #[test]
    fn syntax_error_is_malformed() {
        assert!(matches!(
            parse_json::<T>(b"{\"a\": 1,"),
            Err(InputError::Malformed(_))
        ));
        assert!(matches!(
            parse_json::<T>(b"{\"a\": 1} x"),
            Err(InputError::Malformed(_))
        ));
    }

    #[test]
    fn type_error_names_the_field() {
        let err = parse_json::<T>(br#"{"a": "x"}"#).unwrap_err();
        let InputError::Invalid(errs) = err else {
            panic!("{err:?}")
        };
        assert_eq!(errs[0].field, "a");
        assert!(
            errs[0].message.contains("expected i64"),
            "{}",
            errs[0].message
        );
        assert!(!errs[0].message.contains("line 1"));
    }

    #[test]
    fn missing_field_is_invalid() {
        let err = parse_json::<T>(br#"{"b": "x"}"#).unwrap_err();
        assert_eq!(err.to_string(), "missing field `a`");
    }
}

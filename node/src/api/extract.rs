//! The request extractors of every route: axum's, with their refusals answered as the API's
//! errors (`{"error": "..."}`, 400) instead of plain text, so that every answer of the API is the
//! JSON its description promises.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;
use crate::NodeError;

fn refused(what: &str, detail: String) -> ApiError {
    ApiError(NodeError::BadRequest(format!("{what}: {detail}")))
}

/// A JSON request body (`Content-Type: application/json`): always an object; a number with
/// no fractional part (`2.0`) is the integer it spells, as JSON Schema has it.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(mut value) = axum::Json::<Value>::from_request(req, state)
            .await
            .map_err(|e| refused("request body", e.body_text()))?;
        if !value.is_object() {
            return Err(refused(
                "request body",
                "send a JSON object (see the route's schema in /api2/json/openapi.json)".into(),
            ));
        }
        integral(&mut value);
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| refused("request body", e.to_string()))
    }
}

/// Rewrites every number with no fractional part into the integer it spells.
fn integral(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            // Only integers a double holds exactly (|n| <= 2^53): a larger one may not be the
            // number that was sent, so it stays a float and is refused where an integer goes.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() <= EXACT {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral),
        Value::Object(map) => map.values_mut().for_each(integral),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        let mut v = serde_json::json!({"a": 2.0, "b": [-3.0, 1.5], "c": {"d": 1e3}, "e": "2.0", "f": -9.3e18});
        integral(&mut v);
        let want =
            serde_json::json!({"a": 2, "b": [-3, 1.5], "c": {"d": 1000}, "e": "2.0", "f": -9.3e18});
        assert_eq!(v, want);
    }
}

/// The query string's parameters.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| refused("query", e.body_text()))
    }
}

/// The path's parameters.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| refused("path", e.body_text()))
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option` field: absent is `None`,
/// a value is `Some`, and `null` is refused like any other wrong type (the description does not
/// allow it).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

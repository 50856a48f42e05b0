//! The JSON calls most commands make on a node's API, and the shape of their answers.

use anyhow::Result;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;
use serde_json::Value;

/// `GET path`, the answer as JSON.
pub fn get(api: &ApiClient, path: &str) -> Result<Value> {
    Ok(api.blocking(api.get(path))?)
}

/// `m path` with a JSON `body`, the answer as JSON.
pub fn send(api: &ApiClient, m: Method, path: &str, body: Value) -> Result<Value> {
    Ok(api.blocking(api.json(m, path, Some(&body)))?)
}

/// The `data` list of an answer (empty when it has none).
pub fn rows(v: &Value) -> Vec<Value> {
    v["data"].as_array().cloned().unwrap_or_default()
}

/// `/api2/json/datastore/{store}/{rest}`, the datastore's name encoded.
pub fn store_path(store: &DatastoreName, rest: &str) -> String {
    format!(
        "/api2/json/datastore/{}/{rest}",
        encode_segment(store.as_str())
    )
}

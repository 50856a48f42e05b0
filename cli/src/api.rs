//! The JSON calls most commands make on a node's API, and the shape of their answers.

use anyhow::Result;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;
use serde_json::Value;

/// `GET path`, the answer as JSON (a warning on standard error when it is [`warn_stale`]).
pub fn get(api: &ApiClient, path: &str) -> Result<Value> {
    let v: Value = api.blocking(api.get(path))?;
    warn_stale(&v);
    Ok(v)
}

/// Says on standard error when a node answered from its own replica of the metadata, out of
/// touch with the cluster's leader (no quorum): the answer may lack the newest changes.
pub fn warn_stale(v: &Value) {
    let s = &v["stale"];
    if s.is_object() {
        let age = s["leader-contact-seconds-ago"]
            .as_u64()
            .map_or("not since it started".to_string(), |a| format!("{a} s ago"));
        eprintln!(
            "warning: stale answer: the node is out of touch with the cluster's leader (last contact {age}) and answered from its own copy of the metadata (applied index {}); it may lack the newest changes",
            s["applied-index"]
        );
    }
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

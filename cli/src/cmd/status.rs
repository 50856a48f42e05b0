//! `status`: this node, the cluster, and (with `--services`) each service's health.

use anyhow::Result;
use ironcore_client::ApiClient;
use serde_json::json;

use crate::api::{get, rows};
use crate::output::{Output, object, table};

/// Runs `status`.
pub fn run(api: &ApiClient, services: bool, out: Output) -> Result<()> {
    let s = get(api, "/api2/json/status")?;
    if services && out == Output::Text {
        table(
            out,
            &rows(&json!({ "data": s["services"] })),
            &[
                ("service", "SERVICE"),
                ("state", "STATE"),
                ("detail", "DETAIL"),
            ],
        );
    } else {
        object(out, &s);
    }
    Ok(())
}

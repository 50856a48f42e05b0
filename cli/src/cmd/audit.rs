//! `audit`: the cluster's audit log.

use anyhow::Result;
use ironcore_client::ApiClient;
use serde_json::json;

use crate::api::{get, rows};
use crate::output::{Output, table};

/// Runs `audit`.
pub fn run(api: &ApiClient, out: Output) -> Result<()> {
    let mut list = rows(&get(api, "/api2/json/audit")?);
    for r in &mut list {
        r["when"] = json!(ironcore_types::format_time(
            r["at"].as_i64().unwrap_or_default()
        ));
    }
    table(
        out,
        &list,
        &[
            ("seq", "SEQ"),
            ("when", "WHEN"),
            ("actor", "WHO"),
            ("what", "WHAT"),
            ("result", "RESULT"),
        ],
    );
    Ok(())
}

//! `prune`: remove the snapshots of a group that no keep option holds.

use anyhow::Result;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_types::{BackupGroup, DatastoreName};
use serde_json::{Value, json};

use crate::api::{rows, send};
use crate::keep::KeepArgs;
use crate::output::{Output, table};

/// Which group to prune, and how.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// The group (TYPE/ID).
    group: BackupGroup,
    #[arg(long)]
    store: DatastoreName,
    #[arg(long)]
    ns: Option<String>,
    #[command(flatten)]
    keep: KeepArgs,
    /// IANA timezone of the day/week/month buckets.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// Only show what would be removed.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `prune`.
pub fn run(api: &ApiClient, a: PruneArgs, out: Output) -> Result<()> {
    let PruneArgs {
        group,
        store,
        ns,
        keep,
        timezone,
        dry_run,
    } = a;
    // Without a keep option a prune keeps everything: surely not what was meant.
    if !keep.options().keeps_something() {
        anyhow::bail!(
            "no keep option set: give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly"
        );
    }
    let mut body = json!({
        "ns": ns, "group": group.to_string(), "timezone": timezone, "dry-run": dry_run,
    });
    if let (Some(b), Value::Object(k)) =
        (body.as_object_mut(), serde_json::to_value(keep.options())?)
    {
        b.extend(k);
    }
    let v = send(
        api,
        Method::POST,
        &format!("/api2/json/datastore/{store}/prune"),
        body,
    )?;
    let mut list = rows(&v);
    for r in &mut list {
        r["action"] = json!(match &r["mark"] {
            Value::String(s) if s == "remove" =>
                if dry_run { "would remove" } else { "removed" }.to_string(),
            Value::Object(m) => format!(
                "keep ({})",
                m.get("keep").and_then(Value::as_str).unwrap_or("-")
            ),
            other => other.to_string(),
        });
    }
    table(
        out,
        &list,
        &[("snapshot", "SNAPSHOT"), ("action", "ACTION")],
    );
    Ok(())
}

//! `mirror status`: how far each mirror site of each datastore is behind.

use anyhow::Result;
use clap::Subcommand;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;

use crate::api::{get, rows};
use crate::output::{Output, table};

/// `mirror …`.
#[derive(Subcommand)]
pub enum MirrorCmd {
    /// Per datastore and mirror site: the newest snapshot complete there, what is still
    /// pending (snapshots, logical bytes), the lag in seconds, the rate the site's nodes pull
    /// at now, and chunks that failed 3 attempts with their errors.
    Status {
        /// Only this datastore.
        #[arg(long)]
        store: Option<DatastoreName>,
    },
}

/// Runs a `mirror` command.
pub fn run(api: &ApiClient, cmd: MirrorCmd, out: Output) -> Result<()> {
    match cmd {
        MirrorCmd::Status { store } => {
            let path = match &store {
                Some(s) => format!(
                    "/api2/json/mirror/status?store={}",
                    encode_segment(s.as_str())
                ),
                None => "/api2/json/mirror/status".to_string(),
            };
            let raw = rows(&get(api, &path)?);
            if out == Output::Json {
                table(out, &raw, &[]);
                return Ok(());
            }
            let list: Vec<serde_json::Value> = raw
                .into_iter()
                .map(|mut r| {
                    let rate = r["rate"].as_u64().unwrap_or(0) as f64 / (1u64 << 20) as f64;
                    r["rate-text"] = serde_json::json!(format!("{rate:.1} MiB/s"));
                    let mut problems: Vec<String> = r["errors"]
                        .as_array()
                        .map(|e| {
                            e.iter()
                                .filter_map(|x| x.as_str())
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some(silent) = r["unreachable"].as_array().filter(|s| !s.is_empty()) {
                        let names: Vec<&str> = silent.iter().filter_map(|x| x.as_str()).collect();
                        problems.push(format!("not answering: {}", names.join(", ")));
                    }
                    r["problems"] = serde_json::json!(if problems.is_empty() {
                        "-".to_string()
                    } else {
                        problems.join("; ")
                    });
                    r
                })
                .collect();
            table(
                out,
                &list,
                &[
                    ("datastore", "DATASTORE"),
                    ("site", "SITE"),
                    ("last-complete", "LAST COMPLETE"),
                    ("pending-snapshots", "PENDING"),
                    ("pending-bytes", "PENDING BYTES"),
                    ("lag-seconds", "LAG S"),
                    ("rate-text", "RATE"),
                    ("failing-chunks", "FAILING"),
                    ("problems", "ERRORS"),
                ],
            );
            Ok(())
        }
    }
}

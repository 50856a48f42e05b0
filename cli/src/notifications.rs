//! `notification target list|add|remove|test`: webhooks that receive the cluster's events.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use serde_json::{Value, json};

use crate::output::{Output, object, table};

/// `notification …`.
#[derive(Subcommand)]
pub enum NotificationCmd {
    /// Notification targets.
    #[command(subcommand)]
    Target(TargetCmd),
}

/// `notification target …`.
#[derive(Subcommand)]
pub enum TargetCmd {
    /// The targets.
    List,
    /// Add a webhook target: every event of at least `--min-severity` is POSTed to it as JSON.
    Add {
        name: String,
        /// The webhook's http:// or https:// URL (https is checked against the system's CA
        /// certificates). (Not `--url`: that one names the node this CLI talks to.)
        #[arg(long)]
        webhook: String,
        /// info, warning or error.
        #[arg(long, default_value = "warning")]
        min_severity: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Remove a target.
    Remove { name: String },
    /// Send a test event to a target now and show its answer.
    Test { name: String },
}

/// Runs a `notification` command.
pub fn run(api: &ApiClient, cmd: NotificationCmd, out: Output) -> Result<()> {
    let NotificationCmd::Target(cmd) = cmd;
    let base = "/api2/json/notification/targets";
    match cmd {
        TargetCmd::List => {
            let v: Value = api.blocking(api.get(base))?;
            table(
                out,
                v["data"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("name", "TARGET"),
                    ("url", "URL"),
                    ("min-severity", "MIN-SEVERITY"),
                    ("comment", "COMMENT"),
                ],
            );
        }
        TargetCmd::Add {
            name,
            webhook: url,
            min_severity,
            comment,
        } => {
            let body = json!({ "name": name, "url": url, "min-severity": min_severity, "comment": comment });
            let v: Value = api.blocking(api.json(Method::POST, base, Some(&body)))?;
            object(out, &v);
        }
        TargetCmd::Remove { name } => {
            let v: Value = api.blocking(api.json::<(), Value>(
                Method::DELETE,
                &format!("{base}/{}", encode_segment(&name)),
                None,
            ))?;
            object(out, &v);
        }
        TargetCmd::Test { name } => {
            let v: Value = api.blocking(api.json::<(), Value>(
                Method::POST,
                &format!("{base}/{}/test", encode_segment(&name)),
                None,
            ))?;
            object(out, &v);
        }
    }
    Ok(())
}

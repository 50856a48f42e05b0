//! `notification target list|add|remove|test`: webhooks and mail recipients of the cluster's
//! events.

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
    /// Add a target: every event of at least `--min-severity` is POSTed to a webhook as JSON,
    /// or mailed through an SMTP relay.
    Add {
        name: String,
        /// The webhook's http:// or https:// URL (https is checked against the system's CA
        /// certificates). (Not `--url`: that one names the node this CLI talks to.)
        #[arg(long, conflicts_with = "smtp_server")]
        webhook: Option<String>,
        /// HOST:PORT of an SMTP relay that takes mail without authentication (the host's MTA).
        #[arg(long, requires = "from", requires = "to")]
        smtp_server: Option<String>,
        /// Sender address of the mails.
        #[arg(long)]
        from: Option<String>,
        /// Recipient; repeat for several.
        #[arg(long)]
        to: Vec<String>,
        /// info, warning or error.
        #[arg(long, default_value = "warning")]
        min_severity: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Remove a target.
    Remove { name: String },
    /// Send a test event to a target now and show its answer.
    Test {
        name: String,
        /// Mail this address instead of the target's recipients.
        #[arg(long)]
        recipient: Option<String>,
    },
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
                    ("endpoint", "ENDPOINT"),
                    ("min-severity", "MIN-SEVERITY"),
                    ("comment", "COMMENT"),
                ],
            );
        }
        TargetCmd::Add {
            name,
            webhook,
            smtp_server,
            from,
            to,
            min_severity,
            comment,
        } => {
            let body = json!({ "name": name, "webhook": webhook, "smtp-server": smtp_server,
                "from": from, "to": to, "min-severity": min_severity, "comment": comment });
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
        TargetCmd::Test { name, recipient } => {
            let query = recipient
                .map(|r| format!("?recipient={}", encode_segment(&r)))
                .unwrap_or_default();
            let v: Value = api.blocking(api.json::<(), Value>(
                Method::POST,
                &format!("{base}/{}/test{query}", encode_segment(&name)),
                None,
            ))?;
            if v["delivered"] == false {
                anyhow::bail!(
                    "{}",
                    v["error"].as_str().unwrap_or("test notification failed")
                );
            }
            object(out, &v);
        }
    }
    Ok(())
}

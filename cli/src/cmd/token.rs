//! `token list|create|update|remove`: API tokens.

use anyhow::{Result, bail};
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use serde_json::json;

use ironcore_client::api_client::encode_segment;

use crate::api::{get, rows, send};
use crate::output::{Output, object, table};

/// `token …`.
#[derive(Subcommand)]
pub enum TokenCmd {
    /// List tokens.
    List,
    /// Create a token (USER@REALM!NAME); the secret is shown once.
    Create { tokenid: String },
    /// Enable or disable a token, or change when it expires. Takes effect on every node as
    /// soon as the change is applied there.
    Update {
        tokenid: String,
        /// Accept the token again.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Refuse the token from now on (it can be enabled again).
        #[arg(long)]
        disable: bool,
        /// When it stops working: `never`, a date (2027-01-31, UTC midnight), an RFC 3339 time,
        /// or epoch seconds.
        #[arg(long, value_name = "WHEN", value_parser = parse_expire)]
        expire: Option<i64>,
        /// A new comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Remove a token and its grants for good.
    Remove { tokenid: String },
}

/// `--expire`: `never` (0), a date, an RFC 3339 time, or epoch seconds.
pub fn parse_expire(s: &str) -> Result<i64> {
    if s.eq_ignore_ascii_case("never") {
        return Ok(0);
    }
    if let Ok(secs) = s.parse::<i64>() {
        if secs < 0 {
            bail!(
                "'{s}' is before 1970: give `never`, a date (2027-01-31), an RFC 3339 time or epoch seconds"
            );
        }
        return Ok(secs);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp());
    }
    bail!(
        "'{s}' is not a time: give `never`, a date (2027-01-31), an RFC 3339 time or epoch seconds"
    )
}

/// Runs a `token` command.
pub fn run(api: &ApiClient, cmd: TokenCmd, out: Output) -> Result<()> {
    match cmd {
        TokenCmd::List => table(
            out,
            &rows(&get(api, "/api2/json/access/tokens")?),
            &[
                ("tokenid", "TOKEN"),
                ("enabled", "ENABLED"),
                ("expires", "EXPIRES"),
                ("comment", "COMMENT"),
            ],
        ),
        TokenCmd::Create { tokenid } => {
            let t = send(
                api,
                Method::POST,
                "/api2/json/access/tokens",
                json!({ "tokenid": tokenid }),
            )?;
            if out == Output::Text {
                println!(
                    "token {} created; its secret is shown only now:",
                    t["tokenid"].as_str().unwrap_or("-")
                );
                println!(
                    "{}:{}",
                    t["tokenid"].as_str().unwrap_or("-"),
                    t["secret"].as_str().unwrap_or("-")
                );
            } else {
                object(out, &t);
            }
        }
        TokenCmd::Update {
            tokenid,
            enable,
            disable,
            expire,
            comment,
        } => {
            let enabled = match (enable, disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            if enabled.is_none() && expire.is_none() && comment.is_none() {
                bail!("nothing to change: give --enable, --disable, --expire or --comment");
            }
            object(
                out,
                &send(
                    api,
                    Method::PUT,
                    &format!("/api2/json/access/tokens/{}", encode_segment(&tokenid)),
                    json!({ "enable": enabled, "expire": expire, "comment": comment }),
                )?,
            )
        }
        TokenCmd::Remove { tokenid } => object(
            out,
            &send(
                api,
                Method::DELETE,
                &format!("/api2/json/access/tokens/{}", encode_segment(&tokenid)),
                json!({}),
            )?,
        ),
    }
    Ok(())
}

//! `token list|create`: API tokens.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use serde_json::json;

use crate::api::{get, rows, send};
use crate::output::{Output, object, table};

/// `token …`.
#[derive(Subcommand)]
pub enum TokenCmd {
    /// List tokens.
    List,
    /// Create a token (USER@REALM!NAME); the secret is shown once.
    Create { tokenid: String },
}

/// Runs a `token` command.
pub fn run(api: &ApiClient, cmd: TokenCmd, out: Output) -> Result<()> {
    match cmd {
        TokenCmd::List => table(
            out,
            &rows(&get(api, "/api2/json/access/tokens")?),
            &[
                ("tokenid", "TOKEN"),
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
    }
    Ok(())
}

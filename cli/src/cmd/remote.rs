//! `remote list|add|remove|test`: other clusters or sites that sync jobs will use.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use serde_json::{Value, json};

use crate::conn::read_password;
use crate::output::{Output, object, table};

/// `remote …`.
#[derive(Subcommand)]
pub enum RemoteCmd {
    /// Registered remotes (their secrets are never shown).
    List,
    /// Register a remote; the token secret comes from IRONCORE_REMOTE_SECRET or is asked.
    Add {
        name: String,
        /// Host name or address of one of its nodes.
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 8007)]
        port: u16,
        /// The API token to use there (user@realm!name).
        #[arg(long)]
        auth_id: String,
        /// Its certificate fingerprint (`ironcore-node fingerprint` there), verified out of band.
        /// (Not `--fingerprint`: that one pins the node this CLI talks to.)
        #[arg(long)]
        remote_fingerprint: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Remove a remote.
    Remove { name: String },
    /// Connect to a remote as registered (pinned TLS, token) and report what it answers.
    Test { name: String },
}

/// Runs a `remote` command.
pub fn run(api: &ApiClient, cmd: RemoteCmd, out: Output) -> Result<()> {
    match cmd {
        RemoteCmd::List => {
            let v: Value = api.blocking(api.get("/api2/json/remotes"))?;
            table(
                out,
                v["data"].as_array().map(Vec::as_slice).unwrap_or_default(),
                &[
                    ("name", "REMOTE"),
                    ("host", "HOST"),
                    ("port", "PORT"),
                    ("auth-id", "AUTH-ID"),
                    ("fingerprint", "FINGERPRINT"),
                ],
            );
        }
        RemoteCmd::Add {
            name,
            host,
            port,
            auth_id,
            remote_fingerprint,
            comment,
        } => {
            let secret = match std::env::var("IRONCORE_REMOTE_SECRET") {
                Ok(s) => s,
                Err(_) => read_password(&format!("secret of {auth_id} on {name}: "), false)?,
            };
            let v: Value = api.blocking(api.json(
                Method::POST,
                "/api2/json/remotes",
                Some(
                    &json!({ "name": name, "host": host, "port": port, "auth-id": auth_id,
                              "secret": secret, "fingerprint": remote_fingerprint, "comment": comment }),
                ),
            ))?;
            object(out, &v);
        }
        RemoteCmd::Remove { name } => {
            let v: Value = api.blocking(api.json::<(), Value>(
                Method::DELETE,
                &format!("/api2/json/remotes/{}", encode_segment(&name)),
                None,
            ))?;
            object(out, &v);
        }
        RemoteCmd::Test { name } => {
            let v: Value = api.blocking(api.json::<(), Value>(
                Method::POST,
                &format!("/api2/json/remotes/{}/test", encode_segment(&name)),
                None,
            ))?;
            if v["reachable"] == false {
                anyhow::bail!("{}", v["error"].as_str().unwrap_or("remote test failed"));
            }
            object(out, &v);
        }
    }
    Ok(())
}

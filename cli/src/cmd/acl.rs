//! `acl list|set|remove`: access control entries.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use serde_json::json;

use crate::api::{get, rows, send};
use crate::output::{Output, object, table};

/// `acl …`.
#[derive(Subcommand)]
pub enum AclCmd {
    /// List ACL entries.
    List,
    /// Grant ROLE on PATH to a user or token.
    Set {
        path: String,
        auth_id: String,
        role: String,
    },
    /// Take back the grant of PATH to a user or token.
    Remove { path: String, auth_id: String },
}

/// Runs an `acl` command.
pub fn run(api: &ApiClient, cmd: AclCmd, out: Output) -> Result<()> {
    match cmd {
        AclCmd::List => table(
            out,
            &rows(&get(api, "/api2/json/access/acl")?),
            &[
                ("path", "PATH"),
                ("auth_id", "USER/TOKEN"),
                ("role", "ROLE"),
            ],
        ),
        AclCmd::Set {
            path,
            auth_id,
            role,
        } => {
            let role: ironcore_types::Role = role.parse()?;
            object(
                out,
                &send(
                    api,
                    Method::PUT,
                    "/api2/json/access/acl",
                    json!({ "path": path, "auth_id": auth_id, "role": role }),
                )?,
            );
        }
        AclCmd::Remove { path, auth_id } => object(
            out,
            &send(
                api,
                Method::DELETE,
                &format!(
                    "/api2/json/access/acl?path={}&auth_id={}",
                    encode_segment(&path),
                    encode_segment(&auth_id)
                ),
                json!({}),
            )?,
        ),
    }
    Ok(())
}

//! `namespace list|create`: the namespaces of a datastore.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;
use serde_json::{Value, json};

use crate::api::{get, rows, send};
use crate::output::{Output, object, table};

/// `namespace …`.
#[derive(Subcommand)]
pub enum NamespaceCmd {
    /// List namespaces.
    List {
        #[arg(long)]
        store: DatastoreName,
    },
    /// Create a namespace (a/b; its parent must exist).
    Create {
        ns: String,
        #[arg(long)]
        store: DatastoreName,
    },
}

/// Runs a `namespace` command.
pub fn run(api: &ApiClient, cmd: NamespaceCmd, out: Output) -> Result<()> {
    match cmd {
        NamespaceCmd::List { store } => {
            let v = get(api, &format!("/api2/json/datastore/{store}/namespace"))?;
            let list: Vec<Value> = rows(&v)
                .into_iter()
                .map(|n| json!({ "namespace": n }))
                .collect();
            table(out, &list, &[("namespace", "NAMESPACE")]);
        }
        NamespaceCmd::Create { ns, store } => {
            object(
                out,
                &send(
                    api,
                    Method::POST,
                    &format!(
                        "/api2/json/datastore/{store}/namespace?ns={}",
                        encode_segment(&ns)
                    ),
                    json!({}),
                )?,
            );
        }
    }
    Ok(())
}

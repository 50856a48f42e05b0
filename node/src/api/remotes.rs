//! Remotes: other Ironcore clusters (or sites) that sync jobs will use, registered with a pinned
//! fingerprint and an API token there; `test` checks that the remote answers as pinned and
//! accepts the token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_raft::MetaCommand;
use ironcore_types::records::RemoteRecord;
use ironcore_types::{AuthId, Fingerprint, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{JsonBody, Path};
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::check;
use crate::node::Node;

fn view(r: &RemoteRecord) -> Value {
    json!({
        "name": r.name,
        "host": r.host,
        "port": r.port,
        "auth-id": r.auth_id.to_string(),
        "fingerprint": r.fingerprint.to_hex(),
        "comment": r.comment,
    })
}

fn remote(node: &Node, name: &str) -> Result<RemoteRecord, NodeError> {
    node.meta().remote(name)?.ok_or_else(|| {
        NodeError::NotFound(format!(
            "remote {name} does not exist; see `ironcore-backup remote list`"
        ))
    })
}

#[utoipa::path(
    get,
    path = "/api2/json/remotes",
    operation_id = "list_remotes",
    tag = "remotes",
    summary = "registered remotes (never their secrets)",
    responses((status = 200, description = "registered remotes, never their secrets", body = serde_json::Value))
)]
pub(crate) async fn list(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/remote", Privilege::Audit)?;
    let list: Vec<Value> = node.meta().remotes()?.iter().map(view).collect();
    Ok(Json(json!({ "data": list })))
}

/// Body of `POST /api2/json/remotes`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct AddRemote {
    #[schema(pattern = r"^[a-z0-9_-]{1,32}$")]
    name: String,
    #[schema(pattern = r"^[^/]+$")]
    host: String,
    #[serde(default = "default_port")]
    #[schema(minimum = 0, maximum = 65535)]
    port: u16,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}![A-Za-z0-9._-]{1,64}$")]
    auth_id: AuthId,
    secret: String,
    #[schema(pattern = r"^(:*[0-9a-fA-F]){64}:*$")]
    fingerprint: String,
    #[serde(default)]
    comment: String,
}

fn default_port() -> u16 {
    8007
}

#[utoipa::path(
    post,
    path = "/api2/json/remotes",
    operation_id = "add_remote",
    tag = "remotes",
    summary = "register a remote: host, port, auth-id, secret, pinned fingerprint",
    request_body = AddRemote,
    responses((status = 200, description = "the remote", body = serde_json::Value))
)]
pub(crate) async fn add(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<AddRemote>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/remote", Privilege::Manage)?;
    let fingerprint: Fingerprint = req.fingerprint.parse().map_err(|e| {
        NodeError::BadRequest(format!(
            "fingerprint: {e}; copy it from `ironcore-node fingerprint` on the remote, verified out of band"
        ))
    })?;
    if req.host.is_empty() || req.host.contains('/') {
        return Err(NodeError::BadRequest(format!(
            "host '{}' is not a host name or address",
            req.host
        ))
        .into());
    }
    let r = RemoteRecord {
        name: req.name,
        host: req.host,
        port: req.port,
        auth_id: req.auth_id,
        secret: req.secret,
        fingerprint,
        comment: req.comment,
    };
    node.propose(&caller.auth_id, MetaCommand::CreateRemote(r.clone()))
        .await?;
    Ok(Json(view(&r)))
}

#[utoipa::path(
    delete,
    path = "/api2/json/remotes/{name}",
    operation_id = "remove_remote",
    tag = "remotes",
    summary = "remove a remote",
    params(("name" = String, Path, description = "its name")),
    responses((status = 200, description = "the remote removed", body = serde_json::Value))
)]
pub(crate) async fn remove(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/remote", Privilege::Manage)?;
    remote(&node, &name)?;
    node.propose(
        &caller.auth_id,
        MetaCommand::RemoveRemote { name: name.clone() },
    )
    .await?;
    Ok(Json(json!({ "removed": name })))
}

/// Connects to the remote as registered: TLS with the pinned fingerprint, then a status call
/// with the token. Answers what the remote said, or the failure in the manuals' words.
#[utoipa::path(
    post,
    path = "/api2/json/remotes/{name}/test",
    operation_id = "test_remote",
    tag = "remotes",
    summary = "connect to a remote as registered and report what it answers",
    params(("name" = String, Path, description = "its name")),
    responses((status = 200, description = "what the remote answered: `reachable` true with its node and version, or false with the `error`", body = serde_json::Value))
)]
pub(crate) async fn test(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/remote", Privilege::Audit)?;
    let r = remote(&node, &name)?;
    let client = crate::sync::client(&r)?;
    let addr = client.addr().to_string();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.get::<Value>("/api2/json/status"),
    )
    .await;
    // The test ran whatever the remote did: its outcome is the answer, not an error of this call.
    let failed = |error: String| {
        Ok(Json(json!({
            "remote": name,
            "reachable": false,
            "error": error,
            "fingerprint": r.fingerprint.to_hex(),
        })))
    };
    let status = match answer {
        Err(_) => {
            return failed(format!(
                "remote {name}: source not reachable: no answer from {addr} within 10 s"
            ));
        }
        Ok(Err(e)) => return failed(format!("remote {name}: {e}")),
        Ok(Ok(status)) => status,
    };
    Ok(Json(json!({
        "remote": name,
        "reachable": true,
        "node": status["node"],
        "version": status["version"],
        "fingerprint": r.fingerprint.to_hex(),
    })))
}

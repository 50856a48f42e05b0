//! Reading: snapshot lists, one snapshot's manifest, chunks (pulled from a peer when this node
//! lacks them), and forgetting a snapshot.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use ironcore_raft::MetaCommand;
use ironcore_types::records::SnapshotEntry;
use ironcore_types::{BackupGroup, ChunkId, DatastoreName, OwnerScope, Privilege, SnapshotRef};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backup::parse_ns;
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::{check, check_group, datastore_path};
use crate::node::Node;
use crate::replication::fetch;

/// Which snapshot (query of `GET/DELETE …/snapshot`).
#[derive(Debug, Deserialize)]
pub struct Which {
    #[serde(default)]
    ns: Option<String>,
    group: String,
    time: i64,
}

pub(crate) fn snapshot_ref(w: &Which) -> Result<SnapshotRef, NodeError> {
    Ok(SnapshotRef {
        ns: parse_ns(w.ns.as_deref())?,
        group: w
            .group
            .parse::<BackupGroup>()
            .map_err(|e| NodeError::BadRequest(e.to_string()))?,
        time: w.time,
    })
}

fn summary(e: &SnapshotEntry) -> Value {
    json!({
        "ns": e.snapshot.ns.to_string(),
        "group": e.snapshot.group.to_string(),
        "time": e.snapshot.time,
        "time-string": e.snapshot.time_string(),
        "snapshot": e.snapshot.to_string(),
        "size": e.size,
        "key-fingerprint": e.key_fingerprint.map(|f| f.to_hex()),
        "protected": e.protected,
        "verify": e.verify,
        "owner": e.owner.to_string(),
        "nodes": e.nodes,
    })
}

pub(crate) async fn snapshots(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
) -> ApiResult<Json<Value>> {
    node.raft().linearize().await?;
    let meta = node.meta();
    let mut out = Vec::new();
    for e in meta.snapshots(&store)? {
        let path = datastore_path(&store, &e.snapshot.ns);
        match check(meta, &caller, &path, Privilege::Audit) {
            Ok(OwnerScope::Any) => out.push(summary(&e)),
            Ok(OwnerScope::Owned) if e.owner == caller.auth_id => out.push(summary(&e)),
            _ => {}
        }
    }
    if out.is_empty() {
        // Say "permission denied" rather than an empty list when nothing at all is visible.
        check(
            meta,
            &caller,
            &datastore_path(&store, &ironcore_types::Namespace::root()),
            Privilege::Audit,
        )
        .or_else(|e| {
            if meta.snapshots(&store).map(|s| s.is_empty()).unwrap_or(true) {
                Ok(OwnerScope::Any)
            } else {
                Err(e)
            }
        })?;
    }
    Ok(Json(json!({ "data": out })))
}

pub(crate) async fn snapshot(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    Query(w): Query<Which>,
) -> ApiResult<Json<Value>> {
    let s = snapshot_ref(&w)?;
    node.raft().linearize().await?;
    let meta = node.meta();
    check_group(meta, &caller, &store, &s.ns, &s.group, Privilege::Read)?;
    let e = meta
        .snapshot(&store, &s)?
        .ok_or_else(|| NodeError::NotFound(format!("snapshot {s} does not exist in {store}")))?;
    let mut v = summary(&e);
    v["manifest"] = json!(hex::encode(&e.manifest));
    Ok(Json(v))
}

pub(crate) async fn forget(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    Query(w): Query<Which>,
) -> ApiResult<Json<Value>> {
    let s = snapshot_ref(&w)?;
    check_group(
        node.meta(),
        &caller,
        &store,
        &s.ns,
        &s.group,
        Privilege::Modify,
    )?;
    node.propose(
        &caller.auth_id,
        MetaCommand::ForgetSnapshot {
            datastore: store,
            snapshot: s.clone(),
        },
    )
    .await?;
    Ok(Json(json!({ "forgotten": s.to_string() })))
}

pub(crate) async fn chunk(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path((store, id)): Path<(DatastoreName, String)>,
) -> ApiResult<impl IntoResponse> {
    let path = datastore_path(&store, &ironcore_types::Namespace::root());
    check(node.meta(), &caller, &path, Privilege::Read)
        .or_else(|_| check(node.meta(), &caller, &path, Privilege::Backup))?;
    let id: ChunkId = id
        .parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))?;
    let bytes = fetch::read(node.chunk_peers(), &store, &id).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    ))
}

//! Reading: snapshot lists, one snapshot's manifest (which opens a reader session on it, see
//! [`crate::node::readers`]), the chunks of that snapshot through its reader (pulled from a peer
//! when this node lacks them), and forgetting a snapshot.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use ironcore_raft::MetaCommand;
use ironcore_types::records::SnapshotEntry;
use ironcore_types::{
    BackupGroup, ChunkId, DatastoreName, OwnerScope, Privilege, SiteId, SnapshotRef,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backup::parse_ns;
use super::extract::{Path, Query};
use super::ready::{Stale, linearize_or_stale};
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::{check, check_group, datastore_path};
use crate::node::Node;
use crate::node::readers::ReaderId;
use crate::replication::fetch;
use crate::replication::index::snapshot_chunks;

/// Which snapshot (query of `GET/DELETE …/snapshot`).
#[derive(Debug, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct Which {
    /// The namespace (`a/b`; the root when absent).
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?$")]
    #[schema(value_type = Option<String>, pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?$")]
    ns: Option<String>,
    /// The group (`host/web01`).
    #[param(value_type = String, pattern = r"^(host|vm|ct)/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    #[schema(value_type = String, pattern = r"^(host|vm|ct)/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    group: String,
    /// The snapshot's time (epoch seconds).
    time: i64,
    /// Reading through a node of a mirror site: take a snapshot not yet complete there from
    /// this site (where it is complete) instead of refusing it.
    #[serde(default, rename = "from-site")]
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    from_site: Option<String>,
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

/// A snapshot as lists show it; `home` is its datastore's site, where it is restorable from
/// its commit on (mirror sites once it is complete there).
fn summary(e: &SnapshotEntry, home: Option<&SiteId>) -> Value {
    let sites: Vec<String> = home
        .into_iter()
        .chain(&e.complete_at)
        .map(|s| s.to_string())
        .collect();
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
        "sites": sites,
    })
}

#[utoipa::path(
    get,
    path = "/api2/json/datastore/{store}/snapshots",
    tag = "datastore",
    summary = "snapshots",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, description = "the snapshots the caller may see", body = serde_json::Value))
)]
pub(crate) async fn snapshots(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    stale: Option<Extension<Stale>>,
) -> ApiResult<Json<Value>> {
    let stale = linearize_or_stale(&node, stale).await;
    let meta = node.meta();
    let home = meta.datastore(&store)?.map(|d| d.site);
    let mut out = Vec::new();
    for e in meta.snapshots(&store)? {
        let path = datastore_path(&store, &e.snapshot.ns);
        match check(meta, &caller, &path, Privilege::Audit) {
            Ok(OwnerScope::Any) => out.push(summary(&e, home.as_ref())),
            Ok(OwnerScope::Owned) if e.owner == caller.auth_id => {
                out.push(summary(&e, home.as_ref()))
            }
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
    let mut answer = json!({ "data": out });
    if let Some(s) = stale {
        answer["stale"] = s.json();
    }
    Ok(Json(answer))
}

#[utoipa::path(
    get,
    path = "/api2/json/datastore/{store}/snapshot",
    tag = "datastore",
    summary = "one snapshot with its manifest",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), Which),
    responses((status = 200, description = "the snapshot, its manifest and a reader session on it", body = serde_json::Value))
)]
pub(crate) async fn snapshot(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    Query(w): Query<Which>,
    stale: Option<Extension<Stale>>,
) -> ApiResult<Json<Value>> {
    let s = snapshot_ref(&w)?;
    let stale = linearize_or_stale(&node, stale).await;
    let meta = node.meta();
    check_group(meta, &caller, &store, &s.ns, &s.group, Privilege::Read)?;
    let e = meta
        .snapshot(&store, &s)?
        .ok_or_else(|| NodeError::NotFound(format!("snapshot {s} does not exist in {store}")))?;
    complete_here(&node, &store, &e, w.from_site.as_deref())?;
    let (manifest, _) = ironcore_chunkstore::Manifest::decode(&e.manifest)?;
    let indexes = manifest.files.iter().map(|f| f.index).collect();
    let reader = node
        .readers()
        .open(&caller.auth_id, &store, &s, e.manifest.clone(), indexes);
    let home = meta.datastore(&store)?.map(|d| d.site);
    let mut v = summary(&e, home.as_ref());
    v["manifest"] = json!(hex::encode(&e.manifest));
    v["reader"] = json!(reader.as_str());
    if let Some(s) = stale {
        v["stale"] = s.json();
    }
    Ok(Json(v))
}

#[utoipa::path(
    delete,
    path = "/api2/json/datastore/{store}/snapshot",
    tag = "datastore",
    summary = "forget a snapshot",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), Which),
    responses((status = 200, description = "the snapshot forgotten", body = serde_json::Value))
)]
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

/// Which reader a chunk is read through (query of `GET …/chunk/{id}`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Through {
    /// The reader session `GET …/snapshot` answered.
    #[serde(default)]
    #[param(required = true, value_type = String, pattern = r"^[0-9a-fA-F]{32}$")]
    reader: Option<String>,
}

/// One chunk of the snapshot that reader `?reader=` reads; any other chunk is refused, whoever
/// holds it.
#[utoipa::path(
    get,
    path = "/api2/json/datastore/{store}/chunk/{id}",
    tag = "datastore",
    summary = "a chunk's stored bytes",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), ("id" = String, Path, description = "a chunk id (64 hex digits)", pattern = r"^[0-9a-fA-F]{64}$"), Through),
    responses((status = 200, description = "the chunk as stored", body = Vec<u8>, content_type = "application/octet-stream"))
)]
pub(crate) async fn chunk(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path((store, id)): Path<(DatastoreName, String)>,
    Query(through): Query<Through>,
) -> ApiResult<impl IntoResponse> {
    // Who may read nothing of the datastore hears so before anything about readers.
    let root = datastore_path(&store, &ironcore_types::Namespace::root());
    check(node.meta(), &caller, &root, Privilege::Read)?;
    let id: ChunkId = id
        .parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))?;
    let reader: ReaderId = through
        .reader
        .ok_or_else(|| {
            NodeError::BadRequest(format!(
                "chunks are read through a reader session: read the snapshot first (`GET /api2/json/datastore/{store}/snapshot?group=…&time=…` answers `reader`) and pass it as `?reader=`"
            ))
        })?
        .parse()?;
    let reader = node.readers().get(&reader, &caller.auth_id, &store)?;
    // Rights can be revoked while a reader is open: check them again on every call.
    let s = &reader.snapshot;
    check_group(
        node.meta(),
        &caller,
        &store,
        &s.ns,
        &s.group,
        Privilege::Read,
    )?;
    if !reader.indexes.contains(&id) {
        let (manifest, _) = ironcore_chunkstore::Manifest::decode(&reader.manifest)?;
        let peers = node.chunk_peers();
        let chunks = reader
            .chunks
            .get_or_try_init(|| snapshot_chunks(peers, &store, &manifest))
            .await?;
        if !chunks.contains(&id) {
            return Err(NodeError::PermissionDenied(format!(
                "chunk {id} is not part of snapshot {s}, the one this reader session reads"
            ))
            .into());
        }
    }
    let bytes = fetch::read(node.chunk_peers(), &store, &id).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    ))
}

/// Through a node of one of the datastore's mirror sites, a snapshot is read only once it is
/// complete there: never partly, never silently over the link between the sites, unless the
/// caller names a site where it is complete (`from_site`).
fn complete_here(
    node: &Node,
    store: &DatastoreName,
    e: &SnapshotEntry,
    from_site: Option<&str>,
) -> Result<(), NodeError> {
    let Some(config) = node.meta().datastore(store)? else {
        return Ok(());
    };
    let here = &node.config().site;
    if !config.mirrors.iter().any(|m| &m.site == here) || e.complete_at.contains(here) {
        return Ok(());
    }
    let complete: Vec<&SiteId> = std::iter::once(&config.site)
        .chain(&e.complete_at)
        .collect();
    match from_site {
        Some(site) if complete.iter().any(|c| c.as_str() == site) => Ok(()),
        Some(site) => Err(NodeError::Conflict(format!(
            "snapshot {} is not complete at site {site} either; it is complete at {}",
            e.snapshot,
            complete
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => {
            let nodes: Vec<String> = node
                .meta()
                .nodes()?
                .into_iter()
                .filter(|n| n.site == config.site)
                .map(|n| n.name)
                .collect();
            Err(NodeError::Conflict(format!(
                "snapshot {} is not complete at site {here} yet (`ironcore-backup mirror status` shows how far it is); restore it through a node of site {} ({}), or add `--from-site {}` to read it from there over the link between the sites",
                e.snapshot,
                config.site,
                nodes.join(", "),
                config.site
            )))
        }
    }
}

//! Backup sessions: start, chunk upload (with a presence check for deduplication), finish.
//!
//! Finish order (DESIGN.md "durable before referenced"): every chunk named by the snapshot's
//! indexes present here → one sync → copies on their placement nodes (verified on arrival)
//! → the manifest committed through Raft. A session cancelled or failed before the commit
//! leaves no snapshot.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use ironcore_chunkstore::envelope::{StoredCheck, decode_chunk};
use ironcore_chunkstore::{ArchiveIndex, ChunkBuf, Manifest};
use ironcore_raft::MetaCommand;
use ironcore_types::records::{MirrorMode, SnapshotEntry, TaskState, VerifyStatus};
use ironcore_types::{BackupGroup, ChunkId, DatastoreName, Namespace, Privilege, SnapshotRef};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{JsonBody, Path};
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::{check, check_group, datastore_path};
use crate::node::{BackupSession, Node};
use crate::replication::{fetch, pull, replicate, staging};

/// `POST /api2/json/backup`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StartBackup {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    store: DatastoreName,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?$")]
    ns: Option<String>,
    #[schema(value_type = String, pattern = r"^(host|vm|ct)/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    group: String,
    time: i64,
}

pub(crate) fn parse_ns(ns: Option<&str>) -> Result<Namespace, NodeError> {
    let mut out = Namespace::root();
    for part in ns.unwrap_or("").split('/').filter(|p| !p.is_empty()) {
        out = out
            .child(part)
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
    }
    Ok(out)
}

#[utoipa::path(
    post,
    path = "/api2/json/backup",
    tag = "backup",
    summary = "start a backup session",
    request_body = StartBackup,
    responses((status = 200, description = "the session (its task UPID)", body = serde_json::Value))
)]
pub(crate) async fn start(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<StartBackup>,
) -> ApiResult<Json<Value>> {
    let ns = parse_ns(req.ns.as_deref())?;
    let group: BackupGroup = req
        .group
        .parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))?;
    let meta = node.meta();
    match meta.datastore(&req.store)? {
        None => {
            return Err(NodeError::NotFound(format!(
                "datastore {} does not exist; see `ironcore-backup datastore list`",
                req.store
            ))
            .into());
        }
        Some(d) if d.quarantined => return Err(NodeError::Quarantined(req.store).into()),
        Some(_) => {}
    }
    check_group(meta, &caller, &req.store, &ns, &group, Privilege::Backup)?;
    let path = datastore_path(&req.store, &ns);
    let admin_override = check(meta, &caller, &path, Privilege::Manage).is_ok();
    let snapshot = SnapshotRef {
        ns: ns.clone(),
        group: group.clone(),
        time: req.time,
    };
    let worker_id = format!(
        "{}:{}{}",
        req.store,
        if ns.is_root() {
            String::new()
        } else {
            format!("{ns}/")
        },
        group
    );
    // A running backup of a node that lost its lease (or left) is ended here, not waited for.
    let busy = !crate::cluster::lease::live_tasks(node.proposer(), node.tasks(), |t| {
        t.kind == "backup" && t.worker_id == worker_id
    })
    .await?
    .is_empty()
        || node
            .sessions()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|s| s.datastore == req.store && s.snapshot.ns == ns && s.snapshot.group == group);
    if busy {
        return Err(NodeError::SourceBusy(format!(
            "a backup of {group} in {path} is running; wait for it or cancel it (see `ironcore-backup task list --state running`; a task of a node that is gone for good ends with `ironcore-backup cluster remove NODE`)"
        ))
        .into());
    }
    if meta.snapshot(&req.store, &snapshot)?.is_some() {
        return Err(NodeError::BadRequest(format!("snapshot {snapshot} already exists")).into());
    }
    let (task, upid) =
        crate::node::work::start_recorded(&node, "backup", &worker_id, &caller.auth_id).await?;
    let session = Arc::new(BackupSession {
        task,
        datastore: req.store,
        snapshot,
        owner: caller.auth_id.clone(),
        admin_override,
        last_seen: std::sync::Mutex::new(std::time::Instant::now()),
    });
    node.sessions()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(upid.clone(), session);
    Ok(Json(json!({ "upid": upid })))
}

fn session(
    node: &Node,
    caller: &crate::auth::Caller,
    upid: &str,
) -> Result<Arc<BackupSession>, NodeError> {
    let s = node
        .sessions()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(upid)
        .cloned()
        .ok_or_else(|| NodeError::NotFound(format!("no backup session {upid} on this node")))?;
    if s.owner != caller.auth_id {
        return Err(NodeError::PermissionDenied(format!(
            "session {upid} belongs to {}",
            s.owner
        )));
    }
    if s.task.check().is_err() {
        // Cancelled: the client hears `task cancelled` once, then the session is gone.
        node.sessions()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(upid);
        return Err(NodeError::Cancelled);
    }
    *s.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
    Ok(s)
}

fn chunk_id(id: &str) -> Result<ChunkId, NodeError> {
    id.parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))
}

#[utoipa::path(
    head,
    path = "/api2/json/backup/{upid}/chunk/{id}",
    tag = "backup",
    summary = "whether the datastore holds a chunk",
    params(("upid" = String, Path, description = "the task (a UPID)"), ("id" = String, Path, description = "a chunk id (64 hex digits)", pattern = r"^[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "the datastore holds the chunk"))
)]
pub(crate) async fn has_chunk(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path((upid, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let s = session(&node, &caller, &upid)?;
    let id = chunk_id(&id)?;
    Ok(if node.stores().has(&s.datastore, &id)? {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

/// `POST /api2/json/backup/{upid}/known`: which of these chunks the datastore holds here.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Known {
    ids: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api2/json/backup/{upid}/known",
    tag = "backup",
    summary = "which of these chunks the datastore holds",
    params(("upid" = String, Path, description = "the task (a UPID)")),
    request_body = Known,
    responses((status = 200, description = "which of the chunks the datastore holds", body = serde_json::Value))
)]
pub(crate) async fn known(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(upid): Path<String>,
    JsonBody(req): JsonBody<Known>,
) -> ApiResult<Json<Value>> {
    let s = session(&node, &caller, &upid)?;
    let ids = req
        .ids
        .iter()
        .map(|i| chunk_id(i))
        .collect::<Result<Vec<_>, _>>()?;
    let (stores, ds) = (node.stores().clone(), s.datastore.clone());
    let asked = ids.clone();
    // A node that does not store this datastore answers for the storage nodes only: what it
    // staged for another backup may be gone by this one's commit (see replication::staging).
    let mut present = if staging::stores_here(node.chunk_peers(), &s.datastore)? {
        tokio::task::spawn_blocking(move || stores.has_many(&ds, &asked))
            .await
            .map_err(NodeError::join("a chunk store call"))??
    } else {
        vec![false; ids.len()]
    };
    // The node that receives a backup is not special: chunks other storage nodes hold count
    // too (the commit pulls them here before it replicates).
    let absent: Vec<usize> = (0..ids.len()).filter(|i| !present[*i]).collect();
    let absent_ids: Vec<ChunkId> = absent.iter().map(|i| ids[*i]).collect();
    let elsewhere = fetch::held_elsewhere(node.chunk_peers(), &s.datastore, &absent_ids).await?;
    for (i, held) in absent.into_iter().zip(elsewhere) {
        present[i] = held;
    }
    Ok(Json(json!({ "present": present })))
}

#[utoipa::path(
    put,
    path = "/api2/json/backup/{upid}/chunk/{id}",
    tag = "backup",
    summary = "upload a chunk (201: stored; 200: already held)",
    params(("upid" = String, Path, description = "the task (a UPID)"), ("id" = String, Path, description = "a chunk id (64 hex digits)", pattern = r"^[0-9a-fA-F]{64}$")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the chunk's envelope, as stored"),
    responses((status = 200, description = "the datastore held it already"), (status = 201, description = "stored"))
)]
pub(crate) async fn upload(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path((upid, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let s = session(&node, &caller, &upid)?;
    let id = chunk_id(&id)?;
    let (check, buf) = receive_chunk(&headers, body).await?;
    let stores = node.stores().clone();
    let ds = s.datastore.clone();
    let inserted = tokio::task::spawn_blocking(move || stores.put_received(&ds, &id, check, buf))
        .await
        .map_err(NodeError::join("a chunk store call"))??;
    // 201: stored now; 200: the node held it already (a client that uploads without asking
    // first counts it as reused).
    Ok(match inserted {
        ironcore_chunkstore::Inserted::New(_) => StatusCode::CREATED,
        ironcore_chunkstore::Inserted::Existing => StatusCode::OK,
    })
}

/// The largest chunk upload taken: a chunk's envelope is at most the largest plaintext plus
/// zstd's worst case and the header (well under this).
const MAX_UPLOAD: usize = 32 << 20;

/// Reads a chunk upload as it arrives: each piece is hashed for the chunk's check while it is
/// still in the cache, and kept where the chunk directory can write it without another copy.
async fn receive_chunk(headers: &HeaderMap, mut body: Body) -> ApiResult<(StoredCheck, ChunkBuf)> {
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    let mut check = StoredCheck::new();
    let mut buf = ChunkBuf::with_capacity(announced.min(MAX_UPLOAD));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            NodeError::BadRequest(format!(
                "the chunk upload broke off before its end: {e}; run the backup again"
            ))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > MAX_UPLOAD {
            return Err(NodeError::BadRequest(format!(
                "chunk upload larger than {MAX_UPLOAD} bytes: not a chunk envelope"
            ))
            .into());
        }
        check.update(&data);
        buf.extend_from_slice(&data);
    }
    Ok((check, buf))
}

/// `POST /api2/json/backup/{upid}/finish`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Finish {
    /// The encoded manifest (hex).
    manifest: String,
}

#[utoipa::path(
    post,
    path = "/api2/json/backup/{upid}/finish",
    tag = "backup",
    summary = "commit the snapshot",
    params(("upid" = String, Path, description = "the task (a UPID)")),
    request_body = Finish,
    responses((status = 200, description = "the snapshot committed", body = serde_json::Value))
)]
pub(crate) async fn finish(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(upid): Path<String>,
    JsonBody(req): JsonBody<Finish>,
) -> ApiResult<Json<Value>> {
    let s = session(&node, &caller, &upid)?;
    // From here the session is committing: out of the idle reaper's reach (a large commit
    // may replicate for long); cancel still reaches it through its task.
    node.sessions()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&upid);
    let result = commit(&node, &s, &req.manifest).await;
    let state = match &result {
        Ok(_) => TaskState::Ok,
        Err(NodeError::Cancelled) => TaskState::Error("task cancelled".into()),
        Err(e) => TaskState::Error(e.to_string()),
    };
    let record = node.tasks().finish(&s.task, state);
    node.record_task(record).await;
    let entry = result?;
    Ok(Json(json!({
        "snapshot": entry.snapshot.to_string(),
        "time": entry.snapshot.time,
        "size": entry.size,
        "nodes": entry.nodes,
    })))
}

async fn commit(
    node: &Arc<Node>,
    s: &BackupSession,
    manifest_hex: &str,
) -> Result<SnapshotEntry, NodeError> {
    let bytes =
        hex::decode(manifest_hex).map_err(|e| NodeError::BadRequest(format!("manifest: {e}")))?;
    let (manifest, _) = Manifest::decode(&bytes).map_err(|e| {
        NodeError::BadRequest(format!(
            "the manifest sent is not valid ({e}); nothing was committed"
        ))
    })?;
    if manifest.snapshot != s.snapshot {
        return Err(NodeError::BadRequest(format!(
            "manifest is for {}, the session for {}",
            manifest.snapshot, s.snapshot
        )));
    }
    s.task.check()?;
    // Staged chunks this commit relies on stay until its replication ends (replication::staging).
    let staged = node.chunk_peers().staging().read().await;
    let (n, ds) = (node.clone(), s.datastore.clone());
    let files = manifest.files.clone();
    let (ids, absent) = tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
        let (mut ids, mut absent) = (Vec::new(), Vec::new());
        for f in &files {
            let raw = n.stores().get(&ds, &f.index)?;
            let index = ArchiveIndex::decode(f.kind, &decode_chunk(&raw, &f.index, None)?)?;
            ids.push(f.index);
            let chunks: Vec<ChunkId> = index.chunk_ids().collect();
            let held = n.stores().has_many(&ds, &chunks)?;
            absent.extend(
                chunks
                    .iter()
                    .zip(held)
                    .filter(|(_, h)| !h)
                    .map(|(id, _)| *id),
            );
            ids.extend(chunks);
        }
        ids.sort();
        ids.dedup();
        absent.sort();
        absent.dedup();
        Ok((ids, absent))
    })
    .await
    .map_err(NodeError::join("a chunk store call"))??;
    if !absent.is_empty() {
        s.task.log(&format!(
            "{} chunks are held by other nodes; pulling them here",
            absent.len()
        ));
        if let Some(id) = pull::pull(node.chunk_peers(), &s.datastore, &absent)
            .await?
            .first()
        {
            return Err(NodeError::ChunkNotFound(format!(
                "{id} was never uploaded and no other node holds it; the backup is incomplete — run it again"
            )));
        }
    }
    let (n, ds) = (node.clone(), s.datastore.clone());
    tokio::task::spawn_blocking(move || n.stores().sync(&ds))
        .await
        .map_err(NodeError::join("a chunk store call"))??;
    s.task
        .log(&format!("{} chunks referenced; replicating", ids.len()));
    s.task.check()?;
    let nodes = replicate::replicate(node.chunk_peers(), &s.datastore, &ids).await?;
    // A datastore mirrored synchronously acknowledges only once its mirror sites hold their
    // copies too: the snapshot is complete there as it commits.
    let complete_at = match node.meta().datastore(&s.datastore)? {
        Some(c) if c.mirror == MirrorMode::Sync => {
            s.task
                .log("mirroring synchronously: giving the mirror sites their copies");
            replicate::replicate_to_mirrors(node.chunk_peers(), &s.datastore, &ids).await?
        }
        _ => Vec::new(),
    };
    drop(staged);
    staging::drop_staged(node.chunk_peers(), &s.datastore, &ids).await?;
    s.task.check()?;
    let entry = SnapshotEntry {
        datastore: s.datastore.clone(),
        snapshot: s.snapshot.clone(),
        manifest: bytes,
        size: manifest.size(),
        key_fingerprint: manifest.key_fingerprint,
        protected: false,
        verify: VerifyStatus::None,
        verified_at: None,
        owner: s.owner.clone(),
        nodes,
        complete_at,
    };
    let upid = s
        .task
        .record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .upid
        .clone();
    node.propose(
        &s.owner,
        MetaCommand::CommitBackup {
            entry: entry.clone(),
            admin_override: s.admin_override,
            upid,
        },
    )
    .await?;
    s.task.log(&format!("committed {}", entry.snapshot));
    Ok(entry)
}

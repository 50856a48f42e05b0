//! Datastore operations: garbage collection, verification and its status, probe, stats and
//! quarantine. GC and verify run as background tasks; the call returns their UPID.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use futures_util::future::join_all;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{DatastoreConfig, TaskState, VerifyStatus};
use ironcore_types::{DatastoreName, Namespace, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{JsonBody, Path, Query};
use super::{ApiResult, Auth};
use crate::auth::{Caller, check, datastore_path};
use crate::maintenance::Upkeep;
use crate::maintenance::jobs::run_on;
use crate::node::Node;
use crate::node::work;
use crate::notify::NotifyMode;
use crate::protocol::{JobOutput, LocalJob};
use crate::{NodeError, maintenance::gc, maintenance::verify};

fn datastore(node: &Node, store: &DatastoreName) -> Result<DatastoreConfig, NodeError> {
    node.meta().datastore(store)?.ok_or_else(|| {
        NodeError::NotFound(format!(
            "datastore {store} does not exist; see `ironcore-backup datastore list`"
        ))
    })
}

/// Checks `p` on the whole datastore for `caller`, catches up with the cluster, and returns the
/// datastore's settings.
async fn admit(
    node: &Node,
    caller: &Caller,
    store: &DatastoreName,
    p: Privilege,
) -> Result<DatastoreConfig, NodeError> {
    check(
        node.meta(),
        caller,
        &datastore_path(store, &Namespace::root()),
        p,
    )?;
    node.raft().linearize().await?;
    datastore(node, store)
}

/// Refuses a second task of `kind` on `store` while one runs.
fn not_running(
    node: &Node,
    kind: &str,
    store: &DatastoreName,
    what: &str,
) -> Result<(), NodeError> {
    let worker = store.to_string();
    if let Some(t) = node
        .meta()
        .tasks()?
        .into_iter()
        .find(|t| t.kind == kind && t.worker_id == worker && t.state == TaskState::Running)
    {
        return Err(NodeError::SourceBusy(format!(
            "{what} of {store} is already running ({}); wait for it or cancel it",
            t.upid
        )));
    }
    Ok(())
}

/// Body of `POST …/gc`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct GcRequest {
    #[serde(default)]
    #[schema(minimum = 0)]
    grace_secs: Option<i64>,
    /// `always`, `error` (the targets' rules, default) or `never`.
    #[serde(default)]
    #[schema(pattern = r"^(always|error|never)$")]
    notification_mode: Option<String>,
}

/// `?notification-mode=` of a task start.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct ModeQuery {
    #[serde(default)]
    #[param(pattern = r"^(always|error|never)$")]
    notification_mode: Option<String>,
}

fn notify_mode(mode: Option<&str>) -> Result<NotifyMode, NodeError> {
    mode.map_or(Ok(NotifyMode::Rules), |m| {
        m.parse().map_err(NodeError::BadRequest)
    })
}

/// The task's own upid, for the notifier.
fn upid_of(task: &crate::tasks::RunningTask) -> String {
    task.record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .upid
        .clone()
}

#[utoipa::path(
    post,
    path = "/api2/json/datastore/{store}/gc",
    tag = "maintenance",
    summary = "start garbage collection on every storage node (returns the task's UPID)",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    request_body = GcRequest,
    responses((status = 200, description = "the GC task (UPID)", body = serde_json::Value))
)]
pub(crate) async fn gc_start(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    JsonBody(req): JsonBody<GcRequest>,
) -> ApiResult<Json<Value>> {
    if admit(&node, &caller, &store, Privilege::Manage)
        .await?
        .quarantined
    {
        return Err(NodeError::Quarantined(store).into());
    }
    let grace = req.grace_secs.unwrap_or(gc::DEFAULT_GRACE_SECS);
    if grace < 0 {
        return Err(NodeError::BadRequest(format!(
            "grace period {grace} s is negative; give 0 or more seconds"
        ))
        .into());
    }
    let mode = notify_mode(req.notification_mode.as_deref())?;
    not_running(&node, "garbage_collection", &store, "garbage collection")?;
    let ds = store.clone();
    let upid = work::spawn(
        &node,
        "garbage_collection",
        store.as_str(),
        &caller.auth_id,
        move |node, task| async move {
            node.notifier().set_mode(&upid_of(&task), mode);
            gc::run(&Upkeep::of(&node), &task, &ds, grace).await
        },
    )
    .await?;
    Ok(Json(json!({ "upid": upid })))
}

#[utoipa::path(
    post,
    path = "/api2/json/datastore/{store}/verify",
    tag = "maintenance",
    summary = "start verification with repair of short copies (returns the task's UPID)",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), ModeQuery),
    responses((status = 200, description = "the verify task (UPID)", body = serde_json::Value))
)]
pub(crate) async fn verify_start(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    Query(q): Query<ModeQuery>,
) -> ApiResult<Json<Value>> {
    admit(&node, &caller, &store, Privilege::Manage).await?;
    let mode = notify_mode(q.notification_mode.as_deref())?;
    not_running(&node, "verify", &store, "verification")?;
    let (ds, actor) = (store.clone(), caller.auth_id.clone());
    let upid = work::spawn(
        &node,
        "verify",
        store.as_str(),
        &caller.auth_id,
        move |node, task| async move {
            node.notifier().set_mode(&upid_of(&task), mode);
            verify::run(&Upkeep::of(&node), &task, &ds, &actor).await
        },
    )
    .await?;
    Ok(Json(json!({ "upid": upid })))
}

/// `?window-days=` of the verify status.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct Window {
    #[serde(default)]
    window_days: Option<i64>,
}

/// Snapshots not verified within this many days make the status `STALE`.
const DEFAULT_WINDOW_DAYS: i64 = 30;

#[utoipa::path(
    get,
    path = "/api2/json/datastore/{store}/verify",
    tag = "maintenance",
    summary = "verification status (?window-days=30)",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), Window),
    responses((status = 200, description = "verification status", body = serde_json::Value))
)]
pub(crate) async fn verify_status(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    Query(w): Query<Window>,
) -> ApiResult<Json<Value>> {
    admit(&node, &caller, &store, Privilege::Audit).await?;
    let window = w.window_days.unwrap_or(DEFAULT_WINDOW_DAYS);
    let now = chrono::Utc::now().timestamp();
    let snapshots = node.meta().snapshots(&store)?;
    let count = |v: VerifyStatus| snapshots.iter().filter(|s| s.verify == v).count();
    let (ok, failed, never) = (
        count(VerifyStatus::Ok),
        count(VerifyStatus::Failed),
        count(VerifyStatus::None),
    );
    let times: Vec<i64> = snapshots.iter().filter_map(|s| s.verified_at).collect();
    let oldest = times.iter().min().copied();
    let stale = snapshots
        .iter()
        .filter(|s| s.verified_at.is_none_or(|t| now - t > window * 86_400))
        .count();
    let state = if failed > 0 {
        "CORRUPT"
    } else if stale > 0 {
        "STALE"
    } else {
        "OK"
    };
    let last = node
        .meta()
        .tasks()?
        .into_iter()
        .filter(|t| t.kind == "verify" && t.worker_id == store.as_str())
        .max_by_key(|t| t.start);
    Ok(Json(json!({
        "datastore": store,
        "state": state,
        "snapshots": snapshots.len(),
        "ok": ok,
        "failed": failed,
        "unverified": never,
        "stale": stale,
        "window-days": window,
        "oldest-verified": oldest.map(gc::time),
        "last-task": last.map(|t| json!({ "upid": t.upid, "state": t.state, "end": t.end.map(gc::time) })),
    })))
}

async fn inspect(
    node: &Arc<Node>,
    store: &DatastoreName,
    usage: bool,
) -> Result<Vec<Value>, NodeError> {
    let (nodes, _) = node.storage_nodes(store)?;
    let up = Upkeep::of(node);
    let jobs = nodes.iter().map(|n| {
        run_on(
            &up,
            n,
            LocalJob::Inspect {
                datastore: store.clone(),
                usage,
            },
        )
    });
    let mut out = Vec::new();
    for (n, r) in nodes.iter().zip(join_all(jobs).await) {
        out.push(match r {
            Ok(JobOutput::Inspected(info)) => json!({
                "node": n.name,
                "path": info.path,
                "online": info.online,
                "error": info.error,
                "usage": info.usage,
            }),
            Ok(other) => json!({ "node": n.name, "online": false, "error": format!("unexpected answer {other:?}") }),
            Err(e) => json!({ "node": n.name, "online": false, "error": format!("node not reachable: {e}") }),
        });
    }
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/api2/json/datastore/{store}/probe",
    tag = "datastore",
    summary = "probe the datastore's directory on every storage node",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, description = "each storage node's view of the directory", body = serde_json::Value))
)]
pub(crate) async fn probe(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
) -> ApiResult<Json<Value>> {
    let config = admit(&node, &caller, &store, Privilege::Audit).await?;
    let nodes = inspect(&node, &store, false).await?;
    let online = nodes.iter().all(|n| n["online"] == json!(true));
    Ok(Json(json!({
        "datastore": store,
        "online": online,
        "quarantined": config.quarantined,
        "nodes": nodes,
    })))
}

#[utoipa::path(
    get,
    path = "/api2/json/datastore/{store}/stats",
    tag = "datastore",
    summary = "snapshots, sizes, and each node's chunks and free space",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, description = "snapshots, sizes, chunks and free space per node", body = serde_json::Value))
)]
pub(crate) async fn stats(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
) -> ApiResult<Json<Value>> {
    let config = admit(&node, &caller, &store, Privilege::Audit).await?;
    let snapshots = node.meta().snapshots(&store)?;
    let logical: u64 = snapshots.iter().map(|s| s.size).sum();
    let mut groups: Vec<String> = snapshots
        .iter()
        .map(|s| format!("{}/{}", s.snapshot.ns, s.snapshot.group))
        .collect();
    groups.sort();
    groups.dedup();
    let nodes = inspect(&node, &store, true).await?;
    let stored: u64 = nodes
        .iter()
        .filter_map(|n| n["usage"]["stored_bytes"].as_u64())
        .sum();
    Ok(Json(json!({
        "datastore": store,
        "copies": config.copies,
        "quarantined": config.quarantined,
        "snapshots": snapshots.len(),
        "groups": groups.len(),
        "logical-bytes": logical,
        "stored-bytes": stored,
        "nodes": nodes,
    })))
}

/// Body of `PUT …/quarantine`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Quarantine {
    quarantined: bool,
}

#[utoipa::path(
    put,
    path = "/api2/json/datastore/{store}/quarantine",
    tag = "datastore",
    summary = "quarantine a datastore (or lift it): no new backups, no GC",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    request_body = Quarantine,
    responses((status = 200, description = "the datastore's new state", body = serde_json::Value))
)]
pub(crate) async fn quarantine(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    JsonBody(req): JsonBody<Quarantine>,
) -> ApiResult<Json<Value>> {
    admit(&node, &caller, &store, Privilege::Manage).await?;
    node.propose(
        &caller.auth_id,
        MetaCommand::SetQuarantine {
            datastore: store.clone(),
            quarantined: req.quarantined,
        },
    )
    .await?;
    Ok(Json(
        json!({ "datastore": store, "quarantined": req.quarantined }),
    ))
}

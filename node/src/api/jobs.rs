//! Scheduled jobs (verify, GC, prune) kept in Raft and run by the leader's scheduler.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_chunkstore::prune::KeepOptions;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{JobKind, JobRecord};
use ironcore_types::{DatastoreName, Namespace, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backup::parse_ns;
use super::extract::{JsonBody, Path, Query};
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::{check, datastore_path};
use crate::maintenance::gc::time;
use crate::node::Node;
use crate::scheduler::schedule::Schedule;

fn view(job: &JobRecord) -> Value {
    let next = job
        .schedule
        .parse::<Schedule>()
        .ok()
        .filter(|_| job.enabled)
        .map(|s| {
            time(
                s.next_after(
                    job.last_run
                        .unwrap_or(job.created)
                        .max(chrono::Utc::now().timestamp()),
                ),
            )
        });
    json!({
        "id": job.id,
        "store": job.datastore,
        "kind": job.kind,
        "schedule": job.schedule,
        "enabled": job.enabled,
        "owner": job.owner.to_string(),
        "last-run": job.last_run.map(time),
        "next-run": next,
        "comment": job.comment,
    })
}

#[utoipa::path(
    get,
    path = "/api2/json/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    summary = "scheduled jobs with their last and next runs",
    responses((status = 200, description = "scheduled jobs with their last and next runs", body = serde_json::Value))
)]
pub(crate) async fn list(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    let jobs: Vec<Value> = node
        .meta()
        .jobs()?
        .iter()
        .filter(|j| {
            check(
                node.meta(),
                &caller,
                &datastore_path(&j.datastore, &Namespace::root()),
                Privilege::Audit,
            )
            .is_ok()
        })
        .map(view)
        .collect();
    Ok(Json(json!({ "data": jobs })))
}

/// Body of `POST /api2/json/jobs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CreateJob {
    id: String,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    store: DatastoreName,
    kind: String,
    schedule: String,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?$")]
    ns: Option<String>,
    #[serde(default)]
    #[schema(value_type = crate::api::doc::Keep)]
    keep: KeepOptions,
    /// Sync: the remote, its datastore, include filters, bandwidth limit (MiB/s).
    #[serde(default)]
    remote: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    remote_store: Option<DatastoreName>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    bwlimit: u64,
    /// Sync: `pull` (default) or `push`.
    #[serde(default)]
    direction: Option<String>,
    /// Push sync: encrypt unencrypted snapshots with the answering node's project key.
    #[serde(default)]
    encrypt: bool,
    #[serde(default)]
    comment: String,
}

#[utoipa::path(
    post,
    path = "/api2/json/jobs",
    operation_id = "create_job",
    tag = "jobs",
    summary = "schedule a verify, gc or prune job",
    request_body = CreateJob,
    responses((status = 200, description = "the job", body = serde_json::Value))
)]
pub(crate) async fn create(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<CreateJob>,
) -> ApiResult<Json<Value>> {
    let ns = parse_ns(req.ns.as_deref())?;
    check(
        node.meta(),
        &caller,
        &datastore_path(&req.store, &ns),
        Privilege::Manage,
    )?;
    req.schedule
        .parse::<Schedule>()
        .map_err(|e| NodeError::BadRequest(format!("schedule: {e}")))?;
    let kind = match req.kind.as_str() {
        "verify" => JobKind::Verify,
        "gc" => JobKind::Gc,
        "prune" if req.keep.keeps_something() => JobKind::Prune { ns, keep: req.keep },
        "prune" => {
            return Err(NodeError::BadRequest(
                "a prune job needs at least one --keep-* option".into(),
            )
            .into());
        }
        "sync" => {
            let remote = req
                .remote
                .ok_or_else(|| NodeError::BadRequest("a sync job needs --remote".into()))?;
            node.meta().remote(&remote)?.ok_or_else(|| {
                NodeError::NotFound(format!(
                    "remote {remote} does not exist; add it with `ironcore-backup remote add`"
                ))
            })?;
            let remote_store = req.remote_store.ok_or_else(|| {
                NodeError::BadRequest("a sync job needs --remote-repository".into())
            })?;
            for f in &req.include {
                f.parse::<crate::sync::Filter>()
                    .map_err(NodeError::BadRequest)?;
            }
            let push = match req.direction.as_deref().unwrap_or("pull") {
                "pull" => false,
                "push" => true,
                other => {
                    return Err(NodeError::BadRequest(format!(
                        "sync direction '{other}' is not pull or push"
                    ))
                    .into());
                }
            };
            let encrypt = match (req.encrypt, push) {
                (false, _) => None,
                (true, false) => {
                    return Err(NodeError::BadRequest(
                        "--encrypt applies to push jobs only: a pull job stores what the remote holds".into(),
                    )
                    .into());
                }
                (true, true) => Some(crate::sync::project_key_fingerprint(
                    &crate::sync::syncer::Syncer::of(&node),
                )?),
            };
            JobKind::Sync {
                push,
                remote,
                remote_store,
                include: req.include,
                limit_mib: req.bwlimit,
                encrypt,
            }
        }
        other => {
            return Err(NodeError::BadRequest(format!(
                "job kind '{other}' is not verify, gc, prune or sync"
            ))
            .into());
        }
    };
    let job = JobRecord {
        id: req.id,
        datastore: req.store,
        kind,
        schedule: req.schedule,
        enabled: true,
        comment: req.comment,
        owner: caller.auth_id.clone(),
        created: chrono::Utc::now().timestamp(),
        last_run: None,
    };
    node.propose(&caller.auth_id, MetaCommand::CreateJob(job.clone()))
        .await?;
    Ok(Json(view(&job)))
}

/// Job `id`, if the caller may manage it.
fn managed_job(
    node: &Node,
    caller: &crate::auth::Caller,
    id: &str,
) -> Result<JobRecord, NodeError> {
    let job = node.meta().job(id)?.ok_or_else(|| {
        NodeError::NotFound(format!(
            "job {id} does not exist; see `ironcore-backup job list`"
        ))
    })?;
    check(
        node.meta(),
        caller,
        &datastore_path(&job.datastore, &Namespace::root()),
        Privilege::Manage,
    )?;
    Ok(job)
}

#[utoipa::path(
    delete,
    path = "/api2/json/jobs/{id}",
    operation_id = "remove_job",
    tag = "jobs",
    summary = "remove a scheduled job",
    params(("id" = String, Path, description = "the job")),
    responses((status = 200, description = "the job removed", body = serde_json::Value))
)]
pub(crate) async fn remove(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    managed_job(&node, &caller, &id)?;
    node.propose(&caller.auth_id, MetaCommand::RemoveJob { id: id.clone() })
        .await?;
    Ok(Json(json!({ "removed": id })))
}

/// Starts a run of job `id` now (as the scheduler would), answering its task's UPID.
#[utoipa::path(
    post,
    path = "/api2/json/jobs/{id}/run",
    operation_id = "run_job",
    tag = "jobs",
    summary = "run a job now (as its scheduled run would)",
    params(("id" = String, Path, description = "the job")),
    responses((status = 200, description = "the run's task (UPID)", body = serde_json::Value))
)]
pub(crate) async fn run_now(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = managed_job(&node, &caller, &id)?;
    let upid = crate::scheduler::start(&node, &job).await?;
    Ok(Json(json!({ "upid": upid })))
}

/// Query of `GET /api2/json/sync/diff`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    #[param(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    store: DatastoreName,
    remote: String,
    #[param(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    remote_store: DatastoreName,
    #[serde(default)]
    include: Option<String>,
}

/// The snapshots only on the remote's datastore and only on the local one.
#[utoipa::path(
    get,
    path = "/api2/json/sync/diff",
    tag = "jobs",
    summary = "snapshots only on a remote's datastore or only on a local one",
    params(DiffQuery),
    responses((status = 200, description = "snapshots only on one side", body = serde_json::Value))
)]
pub(crate) async fn sync_diff(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<Value>> {
    check(
        node.meta(),
        &caller,
        &datastore_path(&q.store, &Namespace::root()),
        Privilege::Audit,
    )?;
    let filters = q
        .include
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|f| f.parse::<crate::sync::Filter>())
        .collect::<Result<Vec<_>, String>>()
        .map_err(NodeError::BadRequest)?;
    let remote = node.meta().remote(&q.remote)?.ok_or_else(|| {
        NodeError::NotFound(format!(
            "remote {} does not exist; see `ironcore-backup remote list`",
            q.remote
        ))
    })?;
    let api = crate::sync::client(&remote)?;
    node.raft().linearize().await?;
    let theirs = crate::sync::remote_snapshots(&api, &q.remote, &q.remote_store).await?;
    let ours = crate::sync::local_snapshots(node.meta(), &q.store)?;
    let d = crate::sync::diff(&theirs, &ours, &filters);
    let names = |v: &[ironcore_types::SnapshotRef]| -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    };
    Ok(Json(json!({
        "only-remote": names(&d.only_remote),
        "only-local": names(&d.only_local),
    })))
}

//! Scheduled jobs (verify, GC, prune) kept in Raft and run by the leader's scheduler.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{JobKind, JobRecord};
use ironcore_types::{DatastoreName, Namespace, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backup::parse_ns;
use super::extract::{JsonBody, Path, Query};
use super::job_body::{Asked, CreateJob, NewJob};
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

#[utoipa::path(
    post,
    path = "/api2/json/jobs",
    operation_id = "create_job",
    tag = "jobs",
    summary = "schedule a verify, gc or prune job",
    request_body = NewJob,
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
    let kind = match req.kind()? {
        Asked::Verify => JobKind::Verify,
        Asked::Gc => JobKind::Gc,
        Asked::Prune(keep) => JobKind::Prune { ns, keep },
        Asked::Sync(s) => {
            node.meta().remote(&s.remote)?.ok_or_else(|| {
                NodeError::NotFound(format!(
                    "remote {} does not exist; add it with `ironcore-backup remote add`",
                    s.remote
                ))
            })?;
            let encrypt = if s.encrypt {
                Some(crate::sync::project_key_fingerprint(
                    &crate::sync::syncer::Syncer::of(&node),
                )?)
            } else {
                None
            };
            JobKind::Sync {
                push: s.push,
                remote: s.remote,
                remote_store: s.remote_store,
                include: s.include,
                limit_mib: s.limit_mib,
                encrypt,
            }
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
    #[param(
        pattern = r"^((backup-id:(host|vm|ct)/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}|namespace:([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?|keep-(last|hourly|daily|weekly|monthly|yearly)=(0*[1-9][0-9]{0,8}|\*)))?(,((backup-id:(host|vm|ct)/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}|namespace:([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?|keep-(last|hourly|daily|weekly|monthly|yearly)=(0*[1-9][0-9]{0,8}|\*)))?)*$"
    )]
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

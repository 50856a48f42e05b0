//! Scheduled jobs (verify, GC, prune) kept in Raft and run by the leader's scheduler.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use ironcore_chunkstore::prune::KeepOptions;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{JobKind, JobRecord};
use ironcore_types::{DatastoreName, Namespace, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backup::parse_ns;
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::{check, datastore_path};
use crate::core::Node;
use crate::gc::time;
use crate::schedule::Schedule;

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
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CreateJob {
    id: String,
    store: DatastoreName,
    kind: String,
    schedule: String,
    #[serde(default)]
    ns: Option<String>,
    #[serde(default)]
    keep: KeepOptions,
    #[serde(default)]
    comment: String,
}

pub(crate) async fn create(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Json(req): Json<CreateJob>,
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
        other => {
            return Err(NodeError::BadRequest(format!(
                "job kind '{other}' is not verify, gc or prune"
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

pub(crate) async fn remove(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = node.meta().job(&id)?.ok_or_else(|| {
        NodeError::NotFound(format!(
            "job {id} does not exist; see `ironcore-backup job list`"
        ))
    })?;
    check(
        node.meta(),
        &caller,
        &datastore_path(&job.datastore, &Namespace::root()),
        Privilege::Manage,
    )?;
    node.propose(&caller.auth_id, MetaCommand::RemoveJob { id: id.clone() })
        .await?;
    Ok(Json(json!({ "removed": id })))
}

//! Cluster, datastore, ACL, key, task and audit routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use ironcore_raft::MetaCommand;
use ironcore_types::records::{AclEntry, DatastoreConfig, JoinTokenRecord, KeyRecord, TaskState};
use ironcore_types::{AuthId, DatastoreName, Fingerprint, Privilege, Role, SiteId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::{Caller, check, hash_secret, new_secret};
use crate::node::Node;
use crate::protocol::PeerRequest;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn admin(node: &Node, caller: &Caller) -> Result<(), NodeError> {
    check(node.meta(), caller, "/", Privilege::Manage).map(|_| ())
}

/// The services this daemon runs, for `status --services`.
const SERVICES: &[&str] = &[
    "api",
    "scheduler",
    "worker",
    "verifier",
    "gc",
    "sync",
    "notify",
];

pub(crate) async fn status(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/", Privilege::Audit)?;
    let m = node.raft().metrics();
    let raft_ok = m.current_leader.is_some();
    let services: Vec<Value> = SERVICES
        .iter()
        .map(|s| {
            // Services that do not exist yet say so rather than pretend to run.
            let (state, detail) = match *s {
                "api" => ("active (running)", "serving HTTPS".to_string()),
                "worker" if raft_ok => (
                    "active (running)",
                    format!("{} tasks running", node.tasks().running_count()),
                ),
                "worker" => (
                    "degraded",
                    "no Raft leader known: backups cannot commit".to_string(),
                ),
                "scheduler" => {
                    let jobs = node.meta().jobs().map(|j| j.len()).unwrap_or(0);
                    if m.current_leader == Some(node.raft().id()) {
                        ("active (running)", format!("{jobs} jobs; this node (the Raft leader) runs them"))
                    } else if raft_ok {
                        ("active (standby)", format!("{jobs} jobs; the Raft leader runs them"))
                    } else {
                        ("degraded", "no Raft leader known: no job runs".to_string())
                    }
                }
                "gc" | "verifier" => {
                    let (kind, command) = match *s {
                        "gc" => ("garbage_collection", "gc start"),
                        _ => ("verify", "verify start"),
                    };
                    (
                        "active (on demand)",
                        format!(
                            "{} running here; runs on `ironcore-backup {command} STORE` or a scheduled job",
                            node.tasks().running_of(kind)
                        ),
                    )
                }
                "sync" => {
                    let jobs = node
                        .meta()
                        .jobs()
                        .map(|j| {
                            j.iter()
                                .filter(|j| matches!(j.kind, ironcore_types::records::JobKind::Sync { .. }))
                                .count()
                        })
                        .unwrap_or(0);
                    (
                        "active (on demand)",
                        format!(
                            "{jobs} sync jobs; {} running here (`ironcore-backup sync create`)",
                            node.tasks().running_of("sync")
                        ),
                    )
                }
                "notify" => {
                    let targets = node.meta().notification_targets().map(|t| t.len()).unwrap_or(0);
                    if targets == 0 {
                        (
                            "active (idle)",
                            "no targets: add one with `ironcore-backup notification target add`".to_string(),
                        )
                    } else {
                        (
                            "active (running)",
                            format!(
                                "{targets} targets; last delivery: {}",
                                node.notifier().last().unwrap_or_else(|| "none yet".into())
                            ),
                        )
                    }
                }
                _ => (
                    "inactive (not built)",
                    "not part of this release yet".to_string(),
                ),
            };
            json!({ "service": format!("ironcore-backup-{s}"), "state": state, "detail": detail })
        })
        .collect();
    Ok(Json(json!({
        "node": node.config().name.to_string(),
        "site": node.config().site.to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "fingerprint": node.fingerprint().to_hex(),
        "uptime-secs": node.started().elapsed().as_secs(),
        "raft": { "id": node.raft().id(), "state": format!("{:?}", m.state), "term": m.current_term,
                  "leader": m.current_leader, "applied": m.last_applied.map(|l| l.index) },
        "services": services,
    })))
}

pub(crate) async fn cluster_status(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/", Privilege::Audit)?;
    let m = node.raft().metrics();
    let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
    let info = node.meta().cluster()?;
    let nodes: Vec<Value> = node
        .meta()
        .nodes()?
        .into_iter()
        .map(|n| {
            json!({
                "id": n.id, "name": n.name, "site": n.site.to_string(), "role": n.role,
                "voter": voters.contains(&n.id), "leader": m.current_leader == Some(n.id),
                "address": n.address, "api-address": n.api_address,
                "fingerprint": n.fingerprints.first().map(|f| f.to_hex()),
            })
        })
        .collect();
    Ok(Json(json!({
        "cluster-id": info.as_ref().map(|i| i.cluster_id.clone()),
        "epoch": info.as_ref().map(|i| i.epoch),
        "term": m.current_term, "leader": m.current_leader, "nodes": nodes,
    })))
}

/// `POST /api2/json/cluster/join-token`.
#[derive(Debug, Deserialize)]
pub struct JoinTokenRequest {
    #[serde(default = "default_ttl")]
    ttl_secs: i64,
}

fn default_ttl() -> i64 {
    3600
}

pub(crate) async fn join_token(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Json(req): Json<JoinTokenRequest>,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    let secret = new_secret();
    node.propose(
        &caller.auth_id,
        MetaCommand::CreateJoinToken(JoinTokenRecord {
            secret_hash: hash_secret(&secret),
            expires: now() + req.ttl_secs.clamp(60, 7 * 86400),
            used_by: None,
            created_by: caller.auth_id.clone(),
        }),
    )
    .await?;
    let token = format!(
        "{secret}@{}/{}",
        node.config().api_advertise,
        node.fingerprint().to_hex()
    );
    Ok(Json(json!({ "token": token })))
}

pub use crate::cluster::join::JoinRequest;

pub(crate) async fn join(
    State(node): State<Arc<Node>>,
    Json(req): Json<JoinRequest>,
) -> ApiResult<Json<Value>> {
    if node.raft().metrics().current_leader != Some(node.raft().id()) {
        return Err(NodeError::BadRequest(
            "this node is not the Raft leader; join through the leader (see `ironcore-backup cluster status`)".into(),
        )
        .into());
    }
    let joiner = req.node.clone();
    if joiner.fingerprints.is_empty() {
        return Err(
            NodeError::BadRequest("the joining node must present its fingerprint".into()).into(),
        );
    }
    // The audit log names the joining node (authenticated by the token, not a user).
    let actor: AuthId = format!("{}@join-token", joiner.name)
        .parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))?;
    node.propose(
        &actor,
        MetaCommand::Join {
            secret_hash: hash_secret(&req.secret),
            node: joiner.clone(),
        },
    )
    .await?;
    // The new node starts its Raft only after this answer: the leader's membership
    // reconciler (cluster::reconcile) adds it as a learner once it answers, then makes it a
    // voter if its record says so; a leader that dies meanwhile leaves the record to the next.
    crate::failpoint::hit("membership-after-record");
    let info = node.meta().cluster()?.ok_or_else(|| {
        NodeError::Unavailable(
            "cluster not bootstrapped yet; try again once `ironcore-node init` has finished".into(),
        )
    })?;
    Ok(Json(
        json!({ "cluster-id": info.cluster_id, "epoch": info.epoch, "nodes": node.meta().nodes()? }),
    ))
}

pub(crate) async fn datastores(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    let meta = node.meta();
    let visible: Vec<DatastoreConfig> = meta
        .datastores()?
        .into_iter()
        .filter(|d| {
            check(
                meta,
                &caller,
                &format!("/datastore/{}", d.name),
                Privilege::Audit,
            )
            .is_ok()
        })
        .collect();
    Ok(Json(json!({ "data": visible })))
}

/// `POST /api2/json/datastore`.
#[derive(Debug, Deserialize)]
pub struct CreateDatastore {
    name: DatastoreName,
    path: String,
    site: Option<SiteId>,
    #[serde(default = "default_copies")]
    copies: u8,
    #[serde(default)]
    comment: String,
}

fn default_copies() -> u8 {
    2
}

pub(crate) async fn create_datastore(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Json(req): Json<CreateDatastore>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/datastore", Privilege::Manage)?;
    let config = DatastoreConfig {
        name: req.name,
        site: req.site.unwrap_or_else(|| node.config().site.clone()),
        path: req.path,
        copies: req.copies,
        comment: req.comment,
        created: now(),
        quarantined: false,
    };
    node.propose(
        &caller.auth_id,
        MetaCommand::CreateDatastore(config.clone()),
    )
    .await?;
    // Create the directory here now so a bad path fails loudly at once.
    node.stores().dir(&config.name)?;
    Ok(Json(json!(config)))
}

/// `GET /api2/json/tasks?state=running`.
#[derive(Debug, Deserialize)]
pub struct TaskFilter {
    state: Option<String>,
}

pub(crate) async fn tasks(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Query(f): Query<TaskFilter>,
) -> ApiResult<Json<Value>> {
    let all = check(node.meta(), &caller, "/", Privilege::Audit).is_ok();
    let list: Vec<Value> = node
        .meta()
        .tasks()?
        .into_iter()
        .filter(|t| all || t.auth_id == caller.auth_id)
        .filter(|t| match f.state.as_deref() {
            Some("running") => t.state == TaskState::Running,
            Some("ok") => t.state == TaskState::Ok,
            Some("error") => matches!(t.state, TaskState::Error(_)),
            _ => true,
        })
        .map(|t| json!(t))
        .collect();
    Ok(Json(json!({ "data": list })))
}

pub(crate) async fn task_log(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(upid): Path<String>,
) -> ApiResult<String> {
    let record = node
        .meta()
        .task(&upid)?
        .ok_or_else(|| NodeError::NotFound(format!("no task {upid}")))?;
    if record.auth_id != caller.auth_id {
        check(node.meta(), &caller, "/", Privilege::Audit)?;
    }
    if record.node != node.config().name.as_str() {
        let ask = PeerRequest::TaskLog { upid: upid.clone() };
        return Ok(node.ask_task_node(&record.node, &ask).await?);
    }
    Ok(crate::tasks::read_log(&node.tasks().log_path(&upid))?)
}

pub(crate) async fn cancel_task(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(upid): Path<String>,
) -> ApiResult<Json<Value>> {
    // Any node answers: the task's record (in Raft) says who may cancel it and where it runs.
    let record = node
        .meta()
        .task(&upid)?
        .ok_or_else(|| NodeError::NotFound(format!("no task {upid}")))?;
    if record.auth_id != caller.auth_id {
        admin(&node, &caller)?;
    }
    if record.state != TaskState::Running {
        return Err(NodeError::BadRequest(format!("task {upid} is not running")).into());
    }
    if record.node == node.config().name.as_str() {
        if !node.cancel_local(&upid, &caller.auth_id).await {
            return Err(
                NodeError::NotFound(format!("task {upid} is not running on this node")).into(),
            );
        }
    } else {
        let ask = PeerRequest::CancelTask {
            upid: upid.clone(),
            credential: caller.credential.clone(),
        };
        node.ask_task_node(&record.node, &ask).await?;
    }
    Ok(Json(json!({ "cancelled": upid })))
}

pub(crate) async fn acls(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    Ok(Json(json!({ "data": node.meta().acls()? })))
}

pub(crate) async fn set_acl(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Json(entry): Json<AclEntry>,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    let _: Role = entry.role;
    node.propose(&caller.auth_id, MetaCommand::SetAcl(entry.clone()))
        .await?;
    Ok(Json(json!(entry)))
}

/// Which grant `DELETE /api2/json/access/acl` takes back.
#[derive(Debug, Deserialize)]
pub struct Grant {
    path: String,
    auth_id: AuthId,
}

/// Takes a grant back (admin only); the grantee's next call, and its open readers, are refused.
pub(crate) async fn remove_acl(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Query(g): Query<Grant>,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    node.propose(
        &caller.auth_id,
        MetaCommand::RemoveAcl {
            path: g.path.clone(),
            auth_id: g.auth_id.clone(),
        },
    )
    .await?;
    Ok(Json(
        json!({ "removed": { "path": g.path, "auth_id": g.auth_id.to_string() } }),
    ))
}

pub(crate) async fn keys(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/datastore", Privilege::Audit)?;
    Ok(Json(json!({ "data": node.meta().keys()? })))
}

/// `POST /api2/json/keys`.
#[derive(Debug, Deserialize)]
pub struct RegisterKey {
    fingerprint: Fingerprint,
    #[serde(default)]
    comment: String,
}

pub(crate) async fn register_key(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Json(req): Json<RegisterKey>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/datastore", Privilege::Backup)?;
    let record = KeyRecord {
        fingerprint: req.fingerprint,
        comment: req.comment,
        added: now(),
    };
    node.propose(&caller.auth_id, MetaCommand::RegisterKey(record.clone()))
        .await?;
    Ok(Json(json!(record)))
}

pub(crate) async fn audit(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    Ok(Json(json!({ "data": node.meta().audit()? })))
}

/// Body of `POST /api2/json/cluster/membership`.
#[derive(Debug, Deserialize)]
pub struct MembershipRequest {
    op: crate::protocol::MembershipOp,
    node: String,
}

pub(crate) async fn membership(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Json(req): Json<MembershipRequest>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/", Privilege::Manage)?;
    node.raft().linearize().await?;
    let members = crate::cluster::members::Members::of(&node);
    let target = crate::cluster::membership::member(&members, &req.node)?;
    let what = crate::cluster::membership::change(&members, &caller, req.op, target.id).await?;
    Ok(Json(
        json!({ "node": target.name, "op": req.op, "result": what }),
    ))
}

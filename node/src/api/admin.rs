//! Cluster, datastore, ACL, key, task and audit routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{
    AclEntry, DatastoreConfig, JoinTokenRecord, KeyRecord, MirrorMode, NodeRole, SiteCopies,
    SiteRole, TaskState,
};
use ironcore_types::{AuthId, DatastoreName, Fingerprint, Privilege, Role, SiteId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{JsonBody, Path, Query};
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

#[utoipa::path(
    get,
    path = "/api2/json/status",
    tag = "cluster",
    summary = "this node, the cluster and its services",
    responses((status = 200, description = "this node, the cluster and its services", body = serde_json::Value))
)]
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

#[utoipa::path(
    get,
    path = "/api2/json/cluster/status",
    tag = "cluster",
    summary = "members by site: roles, leader, term; on the leader each node's match index, lag and last contact",
    responses((status = 200, description = "members, roles, leader, term", body = serde_json::Value))
)]
pub(crate) async fn cluster_status(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    stale: Option<axum::Extension<super::ready::Stale>>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/", Privilege::Audit)?;
    let m = node.raft().metrics();
    let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
    let info = node.meta().cluster()?;
    // Only the leader knows how far each node is; a follower says who to ask.
    let followers = node.raft().followers();
    let last_index = m.last_log_index.unwrap_or(0);
    let mut records = node.meta().nodes()?;
    records.sort_by(|a, b| (&a.site, &a.name).cmp(&(&b.site, &b.name)));
    let nodes: Vec<Value> = records
        .iter()
        .map(|n| {
            let mut v = json!({
                "id": n.id, "name": n.name, "site": n.site.to_string(), "role": n.role,
                "voter": voters.contains(&n.id), "leader": m.current_leader == Some(n.id),
                "address": n.address, "api-address": n.api_address,
                "fingerprint": n.fingerprints.first().map(|f| f.to_hex()),
            });
            let progress = match &followers {
                _ if n.id == m.id && m.current_leader == Some(m.id) => {
                    Some((Some(last_index), Some(Duration::ZERO)))
                }
                Some(f) => Some(
                    f.get(&n.id)
                        .map_or((None, None), |p| (p.matched, p.last_contact)),
                ),
                None => None,
            };
            if let Some((matched, contact)) = progress {
                v["match-index"] = json!(matched);
                v["lag"] = json!(matched.map(|i| last_index.saturating_sub(i)));
                v["last-contact-ms"] = json!(contact.map(|d| d.as_millis() as u64));
                v["health"] = json!(health(contact));
            }
            v
        })
        .collect();
    let roles: std::collections::BTreeMap<String, String> = node
        .meta()
        .sites()?
        .into_iter()
        .map(|s| (s.name.to_string(), s.role.to_string()))
        .collect();
    let mut sites: Vec<Value> = Vec::new();
    for n in &records {
        let name = n.site.to_string();
        if sites.last().is_none_or(|s| s["name"] != name.as_str()) {
            sites.push(json!({ "name": name, "role": roles.get(&name), "nodes": [] }));
        }
        if let Some(list) = sites.last_mut().and_then(|s| s["nodes"].as_array_mut()) {
            list.push(json!(n.name));
        }
    }
    let progress_from = match m.current_leader {
        Some(l) if l == m.id => json!("this node (the leader)"),
        Some(l) => json!(format!(
            "the leader only: ask node {}",
            records
                .iter()
                .find(|n| n.id == l)
                .map_or(l.to_string(), |n| format!("{} ({})", n.name, n.api_address))
        )),
        None => json!("no leader known"),
    };
    Ok(Json(json!({
        "cluster-id": info.as_ref().map(|i| i.cluster_id.clone()),
        "epoch": info.as_ref().map(|i| i.epoch),
        "term": m.current_term, "leader": m.current_leader, "answered-by": node.config().name,
        "last-log-index": last_index, "progress-from": progress_from,
        "sites": sites, "nodes": nodes,
        "stale": stale.map(|axum::Extension(s)| s.json()),
    })))
}

/// A node's health as its leader sees it: in touch within the last 5 s, or silent.
fn health(contact: Option<Duration>) -> &'static str {
    match contact {
        Some(d) if d < Duration::from_secs(5) => "ok",
        Some(_) => "silent",
        None => "never seen",
    }
}

/// `POST /api2/json/cluster/join-token`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct JoinTokenRequest {
    #[serde(default = "default_ttl")]
    ttl_secs: i64,
}

fn default_ttl() -> i64 {
    3600
}

#[utoipa::path(
    post,
    path = "/api2/json/cluster/join-token",
    tag = "cluster",
    summary = "a one-time join token (Admin)",
    request_body = JoinTokenRequest,
    responses((status = 200, description = "a one-time join token", body = serde_json::Value))
)]
pub(crate) async fn join_token(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<JoinTokenRequest>,
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

#[utoipa::path(
    post,
    path = "/api2/json/cluster/join",
    tag = "cluster",
    summary = "join with a token (authenticated by the token)",
    request_body = JoinRequest,
    responses((status = 200, description = "the cluster the node joined", body = serde_json::Value))
)]
pub(crate) async fn join(
    State(node): State<Arc<Node>>,
    JsonBody(req): JsonBody<JoinRequest>,
) -> ApiResult<Json<Value>> {
    if node.raft().metrics().current_leader != Some(node.raft().id()) {
        return Err(NodeError::BadRequest(
            "this node is not the Raft leader; join through the leader (see `ironcore-backup cluster status`)".into(),
        )
        .into());
    }
    let mut joiner = req.node.clone();
    // A node of a witness site joins as a witness: it votes and holds no data.
    if joiner.role == NodeRole::Voter
        && node
            .meta()
            .site(&joiner.site)?
            .is_some_and(|s| s.role == SiteRole::Witness)
    {
        joiner.role = NodeRole::Witness;
    }
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

#[utoipa::path(
    get,
    path = "/api2/json/datastore",
    tag = "datastore",
    summary = "datastores",
    responses((status = 200, description = "the datastores the caller may see", body = serde_json::Value))
)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateDatastore {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: DatastoreName,
    #[schema(pattern = r"^/.*$")]
    path: String,
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    site: Option<SiteId>,
    /// Copies at the datastore's own site.
    #[serde(default = "default_copies")]
    #[schema(minimum = 1, maximum = 255)]
    copies: u8,
    /// Other (backup) sites that keep copies, filled by continuous mirroring: site name to
    /// copies there.
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, MirrorCopies>)]
    mirrors: std::collections::BTreeMap<String, u8>,
    /// When a backup is acknowledged: `async` (the default: once this site holds its copies;
    /// the mirror sites follow) or `sync` (once every mirror site holds its copies too; see
    /// [`SyncDatastore`], which needs a mirror site).
    #[serde(default)]
    #[schema(pattern = r"^async$")]
    mirror: Option<String>,
    #[serde(default)]
    comment: String,
}

/// How `POST /api2/json/datastore` is described: mirrored asynchronously (the default, any
/// mirror sites), or synchronously, which needs a mirror site. [`CreateDatastore`] reads both
/// and refuses `sync` without a mirror site, naming the fix.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum NewDatastore {
    /// Acknowledged once the datastore's own site holds its copies.
    Async(CreateDatastore),
    /// Acknowledged once every mirror site holds its copies too.
    Sync(SyncDatastore),
}

/// A datastore mirrored synchronously.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SyncDatastore {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: DatastoreName,
    #[schema(pattern = r"^/.*$")]
    path: String,
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    site: Option<SiteId>,
    /// Copies at the datastore's own site.
    #[serde(default = "default_copies")]
    #[schema(minimum = 1, maximum = 255)]
    copies: u8,
    /// The mirror sites, at least one: site name to copies there.
    #[schema(schema_with = some_mirror_sites)]
    mirrors: std::collections::BTreeMap<String, u8>,
    /// `sync`.
    #[schema(pattern = r"^sync$")]
    mirror: String,
    #[serde(default)]
    comment: String,
}

/// At least one mirror site, each with its copies.
fn some_mirror_sites() -> utoipa::openapi::schema::Object {
    use utoipa::PartialSchema;
    utoipa::openapi::ObjectBuilder::new()
        .min_properties(Some(1))
        .additional_properties(Some(MirrorCopies::schema()))
        .build()
}

/// How many copies a mirror site keeps: 1 to 255.
#[derive(Debug)]
pub struct MirrorCopies;

impl utoipa::PartialSchema for MirrorCopies {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(255))
            .into()
    }
}

impl utoipa::ToSchema for MirrorCopies {}

/// The mirror sites of a new datastore as its record keeps them; a name that cannot be a site
/// names none the cluster knows.
fn mirror_sites(
    asked: std::collections::BTreeMap<String, u8>,
) -> Result<Vec<SiteCopies>, NodeError> {
    asked
        .into_iter()
        .map(|(site, copies)| {
            let site: SiteId = site.parse().map_err(|_| {
                NodeError::NotFound(format!(
                    "site '{site}' is not known to this cluster; see `ironcore-backup cluster site list`"
                ))
            })?;
            Ok(SiteCopies { site, copies })
        })
        .collect()
}

fn default_copies() -> u8 {
    2
}

#[utoipa::path(
    post,
    path = "/api2/json/datastore",
    tag = "datastore",
    summary = "create a datastore",
    request_body = NewDatastore,
    responses((status = 200, description = "the datastore created", body = serde_json::Value))
)]
pub(crate) async fn create_datastore(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<CreateDatastore>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/datastore", Privilege::Manage)?;
    let mirror: MirrorMode = match &req.mirror {
        Some(m) => m.parse().map_err(NodeError::BadRequest)?,
        None => MirrorMode::Async,
    };
    if mirror == MirrorMode::Sync && req.mirrors.is_empty() {
        return Err(NodeError::BadRequest(format!(
            "datastore {} has no mirror site, so --mirror sync has nothing to wait for; give copies at another site too (--copies primary=2,backup=1)",
            req.name
        ))
        .into());
    }
    let config = DatastoreConfig {
        name: req.name,
        site: req.site.unwrap_or_else(|| node.config().site.clone()),
        path: req.path,
        copies: req.copies,
        comment: req.comment,
        created: now(),
        quarantined: false,
        mirrors: mirror_sites(req.mirrors)?,
        mirror,
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskFilter {
    state: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api2/json/tasks",
    tag = "tasks",
    summary = "tasks of the cluster",
    params(TaskFilter),
    responses((status = 200, description = "the tasks the caller may see", body = serde_json::Value))
)]
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

#[utoipa::path(
    get,
    path = "/api2/json/tasks/{upid}/log",
    tag = "tasks",
    summary = "a task's log (on the node that ran it)",
    params(("upid" = String, Path, description = "the task (a UPID)")),
    responses((status = 200, description = "the task log", body = String, content_type = "text/plain"))
)]
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

#[utoipa::path(
    delete,
    path = "/api2/json/tasks/{upid}",
    tag = "tasks",
    summary = "cancel a running task",
    params(("upid" = String, Path, description = "the task (a UPID)")),
    responses((status = 200, description = "the cancel was asked for", body = serde_json::Value))
)]
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

#[utoipa::path(
    get,
    path = "/api2/json/access/acl",
    tag = "access",
    summary = "ACL entries",
    responses((status = 200, description = "every grant", body = serde_json::Value))
)]
pub(crate) async fn acls(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    Ok(Json(json!({ "data": node.meta().acls()? })))
}

/// Body of `PUT /api2/json/access/acl`: grant `role` on `path` to a user or token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SetAcl {
    /// `/`, `/datastore`, `/datastore/STORE` or `/datastore/STORE/NAMESPACE…`.
    #[schema(
        pattern = r"^/(datastore(/[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,7})?)?$"
    )]
    path: String,
    /// The user or token.
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}(![A-Za-z0-9._-]{1,64})?$")]
    auth_id: AuthId,
    /// The role (docs/security.md).
    #[schema(value_type = String, pattern = r"^(Admin|Datastore\.(Admin|PowerUser|Backup|Reader|Audit))$")]
    role: Role,
}

#[utoipa::path(
    put,
    path = "/api2/json/access/acl",
    tag = "access",
    summary = "grant a role",
    request_body = SetAcl,
    responses((status = 200, description = "the grant", body = serde_json::Value))
)]
pub(crate) async fn set_acl(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<SetAcl>,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    let entry = AclEntry {
        path: req.path,
        auth_id: req.auth_id,
        role: req.role,
    };
    node.propose(&caller.auth_id, MetaCommand::SetAcl(entry.clone()))
        .await?;
    Ok(Json(json!(entry)))
}

/// Which grant `DELETE /api2/json/access/acl` takes back.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Grant {
    path: String,
    #[param(value_type = String, pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}(![A-Za-z0-9._-]{1,64})?$")]
    auth_id: AuthId,
}

/// Takes a grant back (admin only); the grantee's next call, and its open readers, are refused.
#[utoipa::path(
    delete,
    path = "/api2/json/access/acl",
    tag = "access",
    summary = "take a grant back (?path=&auth_id=)",
    params(Grant),
    responses((status = 200, description = "the grant taken back", body = serde_json::Value))
)]
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

#[utoipa::path(
    get,
    path = "/api2/json/keys",
    tag = "keys",
    summary = "registered encryption keys",
    responses((status = 200, description = "registered encryption key fingerprints", body = serde_json::Value))
)]
pub(crate) async fn keys(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/datastore", Privilege::Audit)?;
    Ok(Json(json!({ "data": node.meta().keys()? })))
}

/// `POST /api2/json/keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterKey {
    #[schema(value_type = String, pattern = r"^[0-9a-fA-F]{64}$")]
    fingerprint: Fingerprint,
    #[serde(default)]
    comment: String,
}

#[utoipa::path(
    post,
    path = "/api2/json/keys",
    tag = "keys",
    summary = "register a key fingerprint",
    request_body = RegisterKey,
    responses((status = 200, description = "the key registered", body = serde_json::Value))
)]
pub(crate) async fn register_key(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<RegisterKey>,
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

#[utoipa::path(
    get,
    path = "/api2/json/audit",
    tag = "cluster",
    summary = "the audit log",
    responses((status = 200, description = "the audit log", body = serde_json::Value))
)]
pub(crate) async fn audit(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    Ok(Json(json!({ "data": node.meta().audit()? })))
}

/// Body of `POST /api2/json/cluster/membership`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MembershipRequest {
    op: crate::protocol::MembershipOp,
    node: String,
}

#[utoipa::path(
    post,
    path = "/api2/json/cluster/membership",
    tag = "cluster",
    summary = "promote, demote, remove a member, or transfer leadership to it (Admin)",
    request_body = MembershipRequest,
    responses((status = 200, description = "what changed", body = serde_json::Value))
)]
pub(crate) async fn membership(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<MembershipRequest>,
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

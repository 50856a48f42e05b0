//! Pruning a group (with a dry run; see [`crate::maintenance::prune`]), protecting snapshots, and
//! namespaces.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_chunkstore::prune::KeepOptions;
use ironcore_raft::MetaCommand;
use ironcore_types::{BackupGroup, DatastoreName, Namespace, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backup::parse_ns;
use super::extract::{JsonBody, Path, Query};
use super::reader::{Which, snapshot_ref};
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::{check, check_group, datastore_path};
use crate::node::Node;

/// `POST /api2/json/datastore/{store}/prune`: the group, what to keep (none set keeps
/// everything; the CLI asks for one), the timezone of the buckets, and whether only to say.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PruneRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?$")]
    ns: Option<String>,
    #[schema(value_type = String, pattern = r"^(host|vm|ct)/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    group: String,
    /// The N newest snapshots.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_last: u32,
    /// The newest of each of the last N hours that have one.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_hourly: u32,
    /// The newest of each of the last N days that have one.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_daily: u32,
    /// The newest of each of the last N weeks that have one.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_weekly: u32,
    /// The newest of each of the last N months that have one.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_monthly: u32,
    /// The newest of each of the last N years that have one.
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_yearly: u32,
    /// An IANA name (default UTC): the buckets' days, weeks and months are this zone's.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = String)]
    timezone: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

impl PruneRequest {
    fn keep(&self) -> KeepOptions {
        KeepOptions {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api2/json/datastore/{store}/prune",
    tag = "maintenance",
    summary = "prune a group (dry-run: only say what would go)",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    request_body = PruneRequest,
    responses((status = 200, description = "what was kept and removed (or would be)", body = serde_json::Value))
)]
pub(crate) async fn prune(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    JsonBody(req): JsonBody<PruneRequest>,
) -> ApiResult<Json<Value>> {
    let ns = parse_ns(req.ns.as_deref())?;
    let group: BackupGroup = req
        .group
        .parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))?;
    node.raft().linearize().await?;
    check_group(node.meta(), &caller, &store, &ns, &group, Privilege::Modify)?;
    let plan = crate::maintenance::prune::prune_group(
        &crate::maintenance::Upkeep::of(&node),
        &caller.auth_id,
        &store,
        &ns,
        &group,
        &req.keep(),
        req.timezone.as_deref().unwrap_or("UTC"),
        req.dry_run,
    )
    .await?;
    let out: Vec<Value> = plan
        .iter()
        .map(
            |d| json!({ "snapshot": d.snapshot.to_string(), "mark": d.mark, "removed": d.removed }),
        )
        .collect();
    Ok(Json(json!({ "dry-run": req.dry_run, "data": out })))
}

/// `PUT /api2/json/datastore/{store}/protect`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Protect {
    #[serde(flatten)]
    which: Which,
    protected: bool,
}

#[utoipa::path(
    put,
    path = "/api2/json/datastore/{store}/protect",
    tag = "maintenance",
    summary = "protect or unprotect a snapshot",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    request_body = Protect,
    responses((status = 200, description = "the snapshot's protection", body = serde_json::Value))
)]
pub(crate) async fn protect(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    JsonBody(req): JsonBody<Protect>,
) -> ApiResult<Json<Value>> {
    let s = snapshot_ref(&req.which)?;
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
        MetaCommand::SetProtected {
            datastore: store,
            snapshot: s.clone(),
            protected: req.protected,
        },
    )
    .await?;
    Ok(Json(
        json!({ "snapshot": s.to_string(), "protected": req.protected }),
    ))
}

/// `?ns=` of namespace routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NsQuery {
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?$")]
    ns: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api2/json/datastore/{store}/namespace",
    tag = "datastore",
    summary = "namespaces",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, description = "the namespaces", body = serde_json::Value))
)]
pub(crate) async fn namespaces(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
) -> ApiResult<Json<Value>> {
    check(
        node.meta(),
        &caller,
        &datastore_path(&store, &Namespace::root()),
        Privilege::Audit,
    )?;
    let list: Vec<String> = node
        .meta()
        .namespaces(&store)?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Json(json!({ "data": list })))
}

#[utoipa::path(
    post,
    path = "/api2/json/datastore/{store}/namespace",
    tag = "datastore",
    summary = "create a namespace (?ns=a/b)",
    params(("store" = String, Path, description = "the datastore", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), NsQuery),
    responses((status = 200, description = "the namespace created", body = serde_json::Value))
)]
pub(crate) async fn create_namespace(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(store): Path<DatastoreName>,
    Query(q): Query<NsQuery>,
) -> ApiResult<Json<Value>> {
    let ns = parse_ns(q.ns.as_deref())?;
    let parent = ns.parent().unwrap_or_else(Namespace::root);
    check(
        node.meta(),
        &caller,
        &datastore_path(&store, &parent),
        Privilege::Manage,
    )?;
    node.propose(
        &caller.auth_id,
        MetaCommand::CreateNamespace {
            datastore: store,
            ns: ns.clone(),
        },
    )
    .await?;
    Ok(Json(json!({ "namespace": ns.to_string() })))
}

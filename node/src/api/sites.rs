//! The cluster's sites and their roles (`ironcore-backup cluster site list|set`): what each site
//! is for is cluster state agreed through Raft; nodes name their site in their configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{SiteRecord, SiteRole};
use ironcore_types::{Privilege, SiteId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::admin;
use super::extract::{JsonBody, Path};
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::check;
use crate::node::Node;

/// Every site: the recorded ones with their role, and any site a node names that has no record
/// (a cluster from before sites were recorded), with no role; each with its nodes.
#[utoipa::path(
    get,
    path = "/api2/json/cluster/sites",
    tag = "cluster",
    summary = "sites, their roles and their nodes",
    responses((status = 200, description = "the sites", body = serde_json::Value))
)]
pub(crate) async fn list(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, "/", Privilege::Audit)?;
    let mut sites: BTreeMap<String, Value> = node
        .meta()
        .sites()?
        .into_iter()
        .map(|s| {
            let v = json!({ "name": s.name.to_string(), "role": s.role, "changed": s.changed,
                "nodes": [] });
            (s.name.to_string(), v)
        })
        .collect();
    let mut nodes = node.meta().nodes()?;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    for n in nodes {
        let site = sites.entry(n.site.to_string()).or_insert_with(
            || json!({ "name": n.site.to_string(), "role": null, "changed": null, "nodes": [] }),
        );
        if let Some(list) = site["nodes"].as_array_mut() {
            list.push(json!(n.name));
        }
    }
    Ok(Json(
        json!({ "data": sites.into_values().collect::<Vec<_>>() }),
    ))
}

/// Body of `PUT /api2/json/cluster/sites/{site}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSite {
    /// `primary` (at most one site), `backup` or `witness` (votes only, holds no data).
    #[schema(pattern = r"^(primary|backup|witness)$")]
    role: String,
}

/// Records a site or changes its role (Admin).
#[utoipa::path(
    put,
    path = "/api2/json/cluster/sites/{site}",
    tag = "cluster",
    summary = "set a site's role: primary, backup or witness (Admin)",
    params(("site" = String, Path, description = "the site's name", pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    request_body = SetSite,
    responses((status = 200, description = "the site", body = serde_json::Value))
)]
pub(crate) async fn set(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(site): Path<String>,
    JsonBody(req): JsonBody<SetSite>,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    let name: SiteId = site
        .parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))?;
    let role: SiteRole = req.role.parse().map_err(NodeError::BadRequest)?;
    let record = SiteRecord {
        name,
        role,
        changed: chrono::Utc::now().timestamp(),
    };
    node.propose(&caller.auth_id, MetaCommand::SetSite(record.clone()))
        .await?;
    Ok(Json(
        json!({ "name": record.name.to_string(), "role": record.role, "changed": record.changed }),
    ))
}

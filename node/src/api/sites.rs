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
                "bwlimit": s.bwlimit, "nodes": [] });
            (s.name.to_string(), v)
        })
        .collect();
    let mut nodes = node.meta().nodes()?;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    for n in nodes {
        let site = sites.entry(n.site.to_string()).or_insert_with(
            || json!({ "name": n.site.to_string(), "role": null, "changed": null, "bwlimit": 0, "nodes": [] }),
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
    /// `primary` (at most one site), `backup` or `witness` (votes only, holds no data);
    /// needed for a site not recorded yet, else the role stays.
    #[serde(default)]
    #[schema(pattern = r"^(primary|backup|witness)$")]
    role: Option<String>,
    /// The most mirroring into this site may use of the link from the other sites, in MiB/s
    /// (0 = unlimited; the site's storage nodes share it); unchanged when left out.
    #[serde(default)]
    #[schema(maximum = 1048576)]
    bwlimit: Option<u64>,
}

/// Records a site or changes its role or link limit (Admin).
#[utoipa::path(
    put,
    path = "/api2/json/cluster/sites/{site}",
    tag = "cluster",
    summary = "set a site's role (primary, backup or witness) or the bandwidth mirroring into it may use (Admin)",
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
    let known = node.meta().site(&name)?;
    let role: SiteRole = match (&req.role, &known) {
        (Some(r), _) => r.parse().map_err(NodeError::BadRequest)?,
        (None, Some(k)) => k.role,
        (None, None) => {
            // Nothing to change: the site does not exist until it is given a role.
            return Err(NodeError::NotFound(format!(
                "site {name} is not recorded yet: give its role to record it (--role primary|backup|witness)"
            ))
            .into());
        }
    };
    let bwlimit = req
        .bwlimit
        .unwrap_or_else(|| known.as_ref().map_or(0, |k| k.bwlimit));
    if bwlimit > super::job_body::MAX_BWLIMIT_MIB {
        return Err(NodeError::BadRequest(format!(
            "bwlimit {bwlimit} MiB/s is more than {} MiB/s (1 TiB/s); give 0 for no limit",
            super::job_body::MAX_BWLIMIT_MIB
        ))
        .into());
    }
    let record = SiteRecord {
        name,
        role,
        changed: chrono::Utc::now().timestamp(),
        bwlimit,
    };
    node.propose(&caller.auth_id, MetaCommand::SetSite(record.clone()))
        .await?;
    Ok(Json(
        json!({ "name": record.name.to_string(), "role": record.role,
        "changed": record.changed, "bwlimit": record.bwlimit }),
    ))
}

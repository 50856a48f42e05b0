//! `GET /api2/json/mirror/status`: how far each mirror site of each datastore is behind.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use ironcore_types::records::DatastoreConfig;
use ironcore_types::{DatastoreName, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Query;
use super::ready::Stale;
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::check;
use crate::mirror::status::{SiteLag, lag};
use crate::node::Node;

/// Query of `GET /api2/json/mirror/status`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Only this datastore.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    store: Option<DatastoreName>,
}

/// Every mirror site of every datastore the caller may audit: the newest snapshot complete
/// there, the snapshots and logical bytes still pending, and the lag in seconds.
pub(crate) fn lags(
    node: &Node,
    caller: &crate::auth::Caller,
    only: Option<&DatastoreName>,
) -> Result<Vec<SiteLag>, NodeError> {
    let meta = node.meta();
    let now = chrono::Utc::now().timestamp();
    let mut out = Vec::new();
    let stores: Vec<DatastoreConfig> = meta
        .datastores()?
        .into_iter()
        .filter(|d| only.is_none_or(|s| *s == d.name))
        .filter(|d| {
            check(
                meta,
                caller,
                &format!("/datastore/{}", d.name),
                Privilege::Audit,
            )
            .is_ok()
        })
        .collect();
    for d in stores {
        out.extend(lag(&d, &meta.snapshots(&d.name)?, now));
    }
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/api2/json/mirror/status",
    tag = "datastore",
    summary = "per datastore and mirror site: newest complete snapshot, pending snapshots and bytes, lag",
    params(StatusQuery),
    responses((status = 200, description = "the mirror sites' lag", body = serde_json::Value))
)]
pub(crate) async fn status(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Query(q): Query<StatusQuery>,
    stale: Option<Extension<Stale>>,
) -> ApiResult<Json<Value>> {
    if let Some(s) = &q.store {
        node.meta().datastore(s)?.ok_or_else(|| {
            NodeError::NotFound(format!(
                "datastore {s} does not exist; see `ironcore-backup datastore list`"
            ))
        })?;
        check(
            node.meta(),
            &caller,
            &format!("/datastore/{s}"),
            Privilege::Audit,
        )?;
    }
    let data = lags(&node, &caller, q.store.as_ref())?;
    let mut answer = json!({ "data": data });
    if let Some(Extension(s)) = stale {
        answer["stale"] = s.json();
    }
    Ok(Json(answer))
}

//! `GET /api2/json/mirror/status`: how far each mirror site of each datastore is behind.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::{Extension, Json};
use ironcore_types::records::{DatastoreConfig, NodeRecord, NodeRole};
use ironcore_types::{DatastoreName, Privilege, SiteId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Query;
use super::ready::Stale;
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::check;
use crate::mirror::status::{SiteLag, lag};
use crate::node::Node;
use crate::protocol::{self, PeerRequest, PeerResponse};

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
    let data = with_progress(&node, data).await?;
    let mut answer = json!({ "data": data });
    if let Some(Extension(s)) = stale {
        answer["stale"] = s.json();
    }
    Ok(Json(answer))
}

/// How long a mirror site's node may take to report its progress.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Each lag with what the mirror site's storage nodes report of their pulls: the rate now,
/// the bytes pulled since they started, the chunks failing and their errors, and the nodes
/// that did not answer.
async fn with_progress(node: &Arc<Node>, lags: Vec<SiteLag>) -> Result<Vec<Value>, NodeError> {
    let sites: BTreeSet<&SiteId> = lags.iter().map(|l| &l.site).collect();
    let members: Vec<NodeRecord> = node
        .meta()
        .nodes()?
        .into_iter()
        .filter(|n| sites.contains(&n.site) && n.role != NodeRole::Witness)
        .collect();
    let me = node.raft().id();
    let asks = members.iter().map(|n| async move {
        if n.id == me {
            let local = node
                .chunk_peers()
                .progress()
                .reports(&n.name, Instant::now());
            return (n, Some(local));
        }
        let ask = protocol::encode(&PeerRequest::MirrorProgress).ok();
        let call = async {
            let answer = node.raft().call_service(n.id, ask.as_deref()?).await.ok()?;
            match protocol::decode::<PeerResponse>(&answer).ok()? {
                PeerResponse::Mirror(r) => Some(r),
                _ => None,
            }
        };
        (
            n,
            tokio::time::timeout(REPORT_TIMEOUT, call)
                .await
                .ok()
                .flatten(),
        )
    });
    let answers = futures_util::future::join_all(asks).await;
    Ok(lags
        .into_iter()
        .map(|l| {
            let mut v = json!(l);
            let (mut rate, mut pulled, mut failing) = (0u64, 0u64, 0usize);
            let (mut errors, mut silent) = (Vec::new(), Vec::new());
            for (n, reports) in answers.iter().filter(|(n, _)| n.site == l.site) {
                let Some(reports) = reports else {
                    silent.push(n.name.clone());
                    continue;
                };
                for r in reports.iter().filter(|r| r.datastore == l.datastore) {
                    rate += r.rate;
                    pulled += r.pulled_bytes;
                    failing += r.failing_chunks;
                    if let Some(e) = &r.error {
                        errors.push(format!("{}: {e}", r.node));
                    }
                }
            }
            v["rate"] = json!(rate);
            v["pulled-bytes"] = json!(pulled);
            v["failing-chunks"] = json!(failing);
            v["errors"] = json!(errors);
            v["unreachable"] = json!(silent);
            v
        })
        .collect())
}

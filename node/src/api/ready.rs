//! A node that is out of touch with the cluster's leader says so at once, and names the nodes
//! to use instead, rather than letting each request run into the Raft timeout (10 s).
//!
//! Requests that need the cluster (all but health, status, metrics and the OpenAPI document)
//! wait a moment for contact (a restarted node hears from the leader within a heartbeat or
//! two; an election takes up to the election timeout), then get `503` with the reason.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::NodeError;
use crate::node::Node;

/// Paths served from this node alone.
const LOCAL: &[&str] = &[
    "/api2/json/health",
    "/api2/json/status",
    "/api2/json/openapi.json",
    "/metrics",
];

/// Lets a request through once this node is in touch with a leader (waiting at most twice the
/// longest election timeout after a start, a second otherwise); else answers `503`, naming the
/// other nodes.
pub(crate) async fn require_leader(
    State(node): State<Arc<Node>>,
    request: Request,
    next: Next,
) -> Response {
    if LOCAL.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    // Contact counts as current while no election could have started without this node
    // noticing. A node that just started waits that long for its first contact; one that has
    // been out of touch for longer only waits a second (an election may just be ending).
    let fresh = node.config().election_timeout.1 * 2;
    let wait = fresh
        .saturating_sub(node.started().elapsed())
        .max(Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let contact = node.raft().leader_contact();
        if contact.is_some_and(|ago| ago <= fresh) {
            return next.run(request).await;
        }
        if tokio::time::Instant::now() >= deadline {
            return ApiError(NodeError::Unavailable(out_of_touch(&node, contact))).into_response();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Why this node cannot serve, and which nodes to use instead.
fn out_of_touch(node: &Node, contact: Option<Duration>) -> String {
    let me = node.config().name.to_string();
    let since = match contact {
        Some(ago) => format!("for {:.1} s", ago.as_secs_f64()),
        None => format!(
            "since it started {:.1} s ago",
            node.started().elapsed().as_secs_f64()
        ),
    };
    let others: Vec<String> = node
        .meta()
        .nodes()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.name != me)
        .map(|n| format!("{} ({})", n.name, n.api_address))
        .collect();
    format!(
        "node {me} has not heard from the cluster's leader {since}: it cannot reach a quorum of the cluster (its peers may be down or cut off from it) and cannot serve this now; use another node{}, or see `ironcore-backup cluster status` there",
        if others.is_empty() {
            String::new()
        } else {
            format!(": {}", others.join(", "))
        }
    )
}

//! A node that is out of touch with the cluster's leader says so at once, and names the nodes
//! to use instead, rather than letting each request run into the Raft timeout (10 s).
//!
//! Requests that need the cluster (all but health, status, metrics and the OpenAPI document)
//! wait a moment for contact (a restarted node hears from the leader within a heartbeat or
//! two; an election takes up to the election timeout), then get `503` with the reason.
//!
//! A few reads are answered from this node's own replica of the metadata instead, flagged
//! [`Stale`]: listing snapshots, reading one with its chunks (a restore), `mirror status` and
//! `cluster status`. A Backup site cut off from the rest (no quorum) still lists and restores
//! what it holds; the answer says how old its knowledge may be.

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

/// Set on a request served without contact with a leader: what this node's replica of the
/// metadata holds may lack the newest changes.
#[derive(Clone, Copy, Debug)]
pub struct Stale {
    /// The index of the last entry this node applied.
    pub applied_index: u64,
    /// Since when it last heard from a leader (`None`: not since it started).
    pub contact_age: Option<Duration>,
}

impl Stale {
    /// How an answer shows it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "applied-index": self.applied_index,
            "leader-contact-seconds-ago": self.contact_age.map(|d| d.as_secs()),
        })
    }
}

/// For a read that may be served stale: `None` once this node has seen every acknowledged
/// write (a linearizable read), else what its replica holds and how old it may be. A node
/// still hearing from a leader that lost its quorum learns it here, when the read fails.
pub(crate) async fn linearize_or_stale(
    node: &Node,
    stale: Option<axum::Extension<Stale>>,
) -> Option<Stale> {
    if let Some(axum::Extension(s)) = stale {
        return Some(s);
    }
    match node.raft().linearize().await {
        Ok(()) => None,
        Err(e) => {
            tracing::info!(error = %e, "a read served from this node's replica");
            Some(Stale {
                applied_index: node.raft().metrics().last_applied.map_or(0, |l| l.index),
                contact_age: node.raft().leader_contact(),
            })
        }
    }
}

/// The reads served from this node's replica when it is out of touch (GET only).
fn readable_stale(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::GET
        && (path == "/api2/json/cluster/status"
            || path == "/api2/json/mirror/status"
            || (path.starts_with("/api2/json/datastore/")
                && (path.ends_with("/snapshots")
                    || path.ends_with("/snapshot")
                    || path.contains("/chunk/"))))
}

/// Lets a request through once this node is in touch with a leader (waiting at most twice the
/// longest election timeout after a start, a second otherwise); else serves the reads that can
/// be served from this node's replica, marked [`Stale`], and answers the rest `503`, naming the
/// other nodes.
pub(crate) async fn require_leader(
    State(node): State<Arc<Node>>,
    mut request: Request,
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
    // A read that can be served stale does not wait once this node has long been out of
    // touch (a restore asks for thousands of chunks).
    let stale_ok = readable_stale(&request);
    let deadline = if stale_ok && node.started().elapsed() > fresh {
        tokio::time::Instant::now()
    } else {
        tokio::time::Instant::now() + wait
    };
    loop {
        let contact = node.raft().leader_contact();
        if contact.is_some_and(|ago| ago <= fresh) {
            return next.run(request).await;
        }
        if tokio::time::Instant::now() >= deadline {
            if stale_ok {
                let applied_index = node.raft().metrics().last_applied.map_or(0, |l| l.index);
                request.extensions_mut().insert(Stale {
                    applied_index,
                    contact_age: contact,
                });
                return next.run(request).await;
            }
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

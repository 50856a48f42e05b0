//! `/metrics` in Prometheus' text format: this node's Raft state, tasks, sessions and the
//! cluster's datastores and snapshots as this node sees them.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use ironcore_types::Privilege;

use super::{ApiResult, Auth};
use crate::auth::check;
use crate::node::Node;
use crate::replication::progress::Totals;

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn counter(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "cluster",
    summary = "Prometheus metrics (token with Audit on /)",
    responses((status = 200, description = "Prometheus metrics", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<impl IntoResponse> {
    check(node.meta(), &caller, "/", Privilege::Audit)?;
    let m = node.raft().metrics();
    let labels = format!(
        "{{node=\"{}\",site=\"{}\"}}",
        node.config().name,
        node.config().site
    );
    let one = |v: f64| vec![(labels.clone(), v)];
    let mut out = String::new();
    gauge(
        &mut out,
        "ironcore_up",
        "1 while the node serves its API",
        &one(1.0),
    );
    gauge(
        &mut out,
        "ironcore_uptime_seconds",
        "Seconds since the node started",
        &one(node.started().elapsed().as_secs_f64()),
    );
    gauge(
        &mut out,
        "ironcore_raft_term",
        "Current Raft term",
        &one(m.current_term as f64),
    );
    gauge(
        &mut out,
        "ironcore_raft_is_leader",
        "1 if this node leads",
        &one(f64::from(u8::from(
            m.current_leader == Some(node.raft().id()),
        ))),
    );
    gauge(
        &mut out,
        "ironcore_raft_leader_known",
        "1 if this node knows a leader",
        &one(f64::from(u8::from(m.current_leader.is_some()))),
    );
    gauge(
        &mut out,
        "ironcore_raft_last_applied_index",
        "Index of the last applied log entry",
        &one(m.last_applied.map_or(0, |l| l.index) as f64),
    );
    gauge(
        &mut out,
        "ironcore_tasks_running",
        "Tasks running on this node",
        &one(node.tasks().running_count() as f64),
    );
    let sessions = node
        .sessions()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    gauge(
        &mut out,
        "ironcore_backup_sessions",
        "Backup sessions open on this node",
        &one(sessions as f64),
    );
    let meta = node.meta();
    gauge(
        &mut out,
        "ironcore_cluster_nodes",
        "Members of the cluster",
        &one(meta.nodes()?.len() as f64),
    );
    let mut snaps = Vec::new();
    let mut bytes = Vec::new();
    for d in meta.datastores()? {
        let list = meta.snapshots(&d.name)?;
        let l = format!("{{datastore=\"{}\",site=\"{}\"}}", d.name, d.site);
        snaps.push((l.clone(), list.len() as f64));
        bytes.push((l, list.iter().map(|s| s.size as f64).sum()));
    }
    gauge(
        &mut out,
        "ironcore_datastore_snapshots",
        "Committed snapshots per datastore",
        &snaps,
    );
    gauge(
        &mut out,
        "ironcore_datastore_logical_bytes",
        "Logical size of all snapshots per datastore",
        &bytes,
    );
    counter(
        &mut out,
        "ironcore_transport_chunk_bytes_sent_total",
        "Chunk bytes this node wrote to other nodes since it started, resends and cut-off transfers included",
        &one(node.raft().transport().chunk_bytes_sent() as f64),
    );
    mirror_metrics(&mut out, &node, &caller)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    ))
}

/// Mirroring: what this node pulled and served, chunks failing, and each mirror site's lag.
fn mirror_metrics(
    out: &mut String,
    node: &Node,
    caller: &crate::auth::Caller,
) -> Result<(), crate::NodeError> {
    let totals = node.chunk_peers().progress().totals();
    let per_store = |f: &dyn Fn(&Totals) -> f64| -> Vec<(String, f64)> {
        totals
            .iter()
            .map(|t| {
                let l = format!(
                    "{{datastore=\"{}\",node=\"{}\"}}",
                    t.datastore,
                    node.config().name
                );
                (l, f(t))
            })
            .collect()
    };
    counter(
        out,
        "ironcore_mirror_pulled_bytes_total",
        "Chunk bytes this node pulled by mirroring since it started",
        &per_store(&|t| t.pulled as f64),
    );
    counter(
        out,
        "ironcore_chunk_served_bytes_total",
        "Chunk bytes this node sent on other nodes' request (reads, pulls, mirroring) since it started",
        &per_store(&|t| t.served as f64),
    );
    gauge(
        out,
        "ironcore_mirror_failing_chunks",
        "Chunks this node failed to mirror 3 times or more and still lacks",
        &per_store(&|t| t.failing as f64),
    );
    let lags = super::mirror::lags(node, caller, None)?;
    let per_site = |f: &dyn Fn(&crate::mirror::status::SiteLag) -> f64| -> Vec<(String, f64)> {
        lags.iter()
            .map(|l| {
                (
                    format!("{{datastore=\"{}\",site=\"{}\"}}", l.datastore, l.site),
                    f(l),
                )
            })
            .collect()
    };
    gauge(
        out,
        "ironcore_mirror_lag_seconds",
        "Seconds since the oldest snapshot not yet complete at the mirror site was taken",
        &per_site(&|l| l.lag_seconds as f64),
    );
    gauge(
        out,
        "ironcore_mirror_lag_bytes",
        "Logical bytes of the snapshots not yet complete at the mirror site",
        &per_site(&|l| l.pending_bytes as f64),
    );
    gauge(
        out,
        "ironcore_mirror_lag_snapshots",
        "Snapshots not yet complete at the mirror site",
        &per_site(&|l| l.pending_snapshots as f64),
    );
    Ok(())
}

//! Running work as a task of this node: recorded in Raft when it starts and when it ends.

use std::sync::Arc;

use ironcore_types::AuthId;
use ironcore_types::records::TaskState;

use crate::node::Node;
use crate::tasks::RunningTask;
use crate::{NodeError, Result};

/// Starts a task on this node and records it in Raft; returns it with its UPID.
pub async fn start_recorded(
    node: &Node,
    kind: &str,
    worker_id: &str,
    auth: &AuthId,
) -> Result<(Arc<RunningTask>, String)> {
    let task = node.tasks().start(kind, worker_id, auth)?;
    let record = task
        .record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let upid = record.upid.clone();
    node.record_task(record).await;
    Ok((task, upid))
}

/// Starts a task of `kind` on `worker_id` for `auth` that runs `body` in the background;
/// records it in Raft when it starts and when it ends. Returns its UPID at once.
pub async fn spawn<F, Fut>(
    node: &Arc<Node>,
    kind: &str,
    worker_id: &str,
    auth: &AuthId,
    body: F,
) -> Result<String>
where
    F: FnOnce(Arc<Node>, Arc<RunningTask>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<TaskState>> + Send + 'static,
{
    let (task, upid) = start_recorded(node, kind, worker_id, auth).await?;
    let node = node.clone();
    tokio::spawn(async move {
        let state = match body(node.clone(), task.clone()).await {
            Ok(state) => state,
            Err(NodeError::Cancelled) => TaskState::Error("task cancelled".into()),
            Err(e) => {
                task.log(&format!("error: {e}"));
                TaskState::Error(e.to_string())
            }
        };
        let record = node.tasks().finish(&task, state);
        node.record_task(record).await;
    });
    Ok(upid)
}

//! Task leases: a node that stops renewing its lease is presumed gone, and its running tasks
//! are fenced off so they hold nothing up.
//!
//! Every node renews its lease in Raft every third of [`NodeConfig::task_lease`]
//! ([`MetaCommand::RenewLease`]). A running task of a node whose lease has expired (or that
//! is no longer a member) is *abandoned*: before anything relies on that — another backup of
//! the same group, a GC cutoff that ignores its start — the task is ended in Raft with the
//! reason. A backup commits only while its task still runs ([`MetaCommand::CommitBackup`]), so
//! a node that was only cut off, not dead, cannot commit a snapshot whose chunks a GC might
//! have swept meanwhile: its commit is refused and the client is told to run it again.
//!
//! [`NodeConfig::task_lease`]: crate::config::NodeConfig::task_lease

use std::sync::Arc;
use std::time::Duration;

use ironcore_raft::MetaCommand;
use ironcore_types::AuthId;
use ironcore_types::records::{TaskRecord, TaskState};

use crate::Result;
use crate::node::proposer::Proposer;
use crate::tasks::Tasks;

/// Who renewals and fencing are recorded as.
fn system() -> AuthId {
    "root@pam".parse().expect("a valid auth id")
}

/// Why a task of a node without a valid lease was ended (`None`: it is alive).
pub fn abandoned(
    task: &TaskRecord,
    members: &[String],
    lease: Option<i64>,
    now: i64,
) -> Option<String> {
    if !members.contains(&task.node) {
        return Some(format!(
            "abandoned: node {} was removed from the cluster; nothing it was doing was committed",
            task.node
        ));
    }
    match lease {
        Some(until) if until >= now => None,
        Some(until) => Some(format!(
            "abandoned: node {} stopped renewing its task lease (expired at {}); nothing it was doing was committed",
            task.node,
            chrono::DateTime::from_timestamp(until, 0)
                .map_or_else(|| until.to_string(), |t| t.to_rfc3339())
        )),
        None => Some(format!(
            "abandoned: node {} holds no task lease; nothing it was doing was committed",
            task.node
        )),
    }
}

/// The running tasks that `keep` selects and that are alive; those of nodes without a valid
/// lease are ended in Raft first (an error if that fails: nothing may rely on them being gone
/// before they are). Tasks running on this node (in `local`) are always alive.
pub async fn live_tasks(
    proposer: &Proposer,
    local: &Tasks,
    keep: impl Fn(&TaskRecord) -> bool,
) -> Result<Vec<TaskRecord>> {
    let meta = proposer.meta();
    let members: Vec<String> = meta.nodes()?.into_iter().map(|n| n.name).collect();
    let now = chrono::Utc::now().timestamp();
    let mut live = Vec::new();
    for mut task in meta.tasks()? {
        if task.state != TaskState::Running || !keep(&task) {
            continue;
        }
        let reason = if local.get(&task.upid).is_some() {
            None
        } else {
            abandoned(&task, &members, meta.lease(&task.node)?, now)
        };
        match reason {
            None => live.push(task),
            Some(reason) => {
                tracing::warn!(upid = %task.upid, "{reason}");
                task.state = TaskState::Error(reason);
                task.end = Some(now);
                match proposer.end_task(&system(), task).await {
                    // Ended meanwhile (committed or closed by its node): look again next time.
                    Err(e) if e.to_string().contains("already ended") => {}
                    other => other?,
                }
            }
        }
    }
    Ok(live)
}

/// Renews this node's lease every third of `lease`, for as long as the node runs; on the
/// leader, also ends abandoned tasks of other nodes, so `task list` shows them as ended.
/// `name` is this node's; `local` its running tasks.
pub async fn run(proposer: Proposer, local: Arc<Tasks>, name: String, lease: Duration) {
    let every = lease / 3;
    loop {
        let until = chrono::Utc::now().timestamp() + lease.as_secs() as i64;
        let renew = MetaCommand::RenewLease {
            node: name.clone(),
            until,
        };
        if let Err(e) = proposer.propose(&system(), renew).await {
            tracing::warn!(error = %e, "could not renew this node's task lease");
        }
        let raft = proposer.raft();
        if raft.metrics().current_leader == Some(raft.id())
            && let Err(e) = live_tasks(&proposer, &local, |_| true).await
        {
            tracing::warn!(error = %e, "could not end abandoned tasks");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(node: &str) -> TaskRecord {
        TaskRecord {
            upid: "UPID:x".into(),
            node: node.into(),
            kind: "backup".into(),
            worker_id: "s:host/a".into(),
            auth_id: "root@pam".parse().unwrap(),
            start: 0,
            end: None,
            state: TaskState::Running,
        }
    }

    #[test]
    fn a_task_is_alive_only_while_its_member_node_holds_a_lease() {
        let members = vec!["n1".to_string(), "n2".to_string()];
        assert_eq!(abandoned(&task("n1"), &members, Some(100), 100), None);
        let expired = abandoned(&task("n1"), &members, Some(99), 100).unwrap();
        assert!(
            expired.contains("stopped renewing its task lease"),
            "{expired}"
        );
        let none = abandoned(&task("n2"), &members, None, 100).unwrap();
        assert!(none.contains("holds no task lease"), "{none}");
        let gone = abandoned(&task("n3"), &members, Some(1000), 100).unwrap();
        assert!(gone.contains("removed from the cluster"), "{gone}");
    }
}

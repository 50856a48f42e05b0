//! Validators of task and job commands: task records, node leases, scheduled jobs and their runs.

use ironcore_types::records::{JobRecord, TaskRecord, TaskState};

use super::{Changes, Staged, refuse, valid_name};
use crate::meta::keys;
use crate::meta::view::MetaView;

/// [`MetaCommand::RecordTask`](crate::MetaCommand::RecordTask): a task that ended stays ended (the
/// same end again is accepted and changes nothing).
pub(crate) fn record_task(view: &MetaView, ch: &mut Changes<'_>, t: &TaskRecord) -> Staged {
    if let Some(old) = view.task(&t.upid)?
        && old.state != TaskState::Running
    {
        if old.state == t.state {
            return Ok(Ok(())); // ended the same way already (a commit ends its task)
        }
        return refuse(format!("task {} already ended", t.upid));
    }
    ch.put("task", &keys::task(&t.upid), t)?;
    Ok(Ok(()))
}

/// [`MetaCommand::RenewLease`](crate::MetaCommand::RenewLease): members only; a lease never
/// shrinks.
pub(crate) fn renew_lease(view: &MetaView, ch: &mut Changes<'_>, node: &str, until: i64) -> Staged {
    if !view.nodes()?.iter().any(|n| n.name == node) {
        return refuse(format!("node {node} is not a member of the cluster"));
    }
    let current = view.lease(node)?.unwrap_or(i64::MIN);
    ch.put("lease", &keys::lease(node), &current.max(until))?;
    Ok(Ok(()))
}

/// [`MetaCommand::CreateJob`](crate::MetaCommand::CreateJob): a valid new id on an existing
/// datastore.
pub(crate) fn create_job(view: &MetaView, ch: &mut Changes<'_>, j: &JobRecord) -> Staged {
    if !valid_name(&j.id) {
        return refuse(format!(
            "job id '{}' must be 1 to 32 of a-z, 0-9, - and _",
            j.id
        ));
    }
    if view.job(&j.id)?.is_some() {
        return refuse(format!("job {} already exists", j.id));
    }
    if view.datastore(&j.datastore)?.is_none() {
        return refuse(format!("datastore {} does not exist", j.datastore));
    }
    ch.put("job", &keys::job(&j.id), j)?;
    Ok(Ok(()))
}

/// [`MetaCommand::RemoveJob`](crate::MetaCommand::RemoveJob).
pub(crate) fn remove_job(view: &MetaView, ch: &mut Changes<'_>, id: &str) -> Staged {
    if view.job(id)?.is_none() {
        return refuse(format!("job {id} does not exist"));
    }
    ch.delete(&keys::job(id));
    Ok(Ok(()))
}

/// [`MetaCommand::JobStarted`](crate::MetaCommand::JobStarted): each scheduled run once.
pub(crate) fn job_started(
    view: &MetaView,
    ch: &mut Changes<'_>,
    id: &str,
    scheduled: i64,
) -> Staged {
    let Some(mut j) = view.job(id)? else {
        return refuse(format!("job {id} does not exist"));
    };
    if j.last_run.is_some_and(|l| l >= scheduled) {
        return refuse(format!(
            "the run of job {id} at {scheduled} was started already"
        ));
    }
    j.last_run = Some(scheduled);
    ch.put("job", &keys::job(id), &j)?;
    Ok(Ok(()))
}

//! Validators of snapshot commands: commits (of a backup task or not), forget, protection and
//! verification results.

use ironcore_types::records::{SnapshotEntry, TaskState, VerifyStatus};
use ironcore_types::{DatastoreName, SnapshotRef};

use super::{Changes, Staged, refuse};
use crate::meta::keys;
use crate::meta::view::MetaView;

/// The refusal of writes to a quarantined datastore (the chunkstore's words).
pub fn quarantined_message(ds: &ironcore_types::DatastoreName) -> String {
    format!(
        "datastore '{ds}' is quarantined: new writes and garbage collection are disabled until \
         the root cause is established; lift it with `ironcore-backup datastore quarantine {ds} --clear`"
    )
}

/// [`MetaCommand::CommitSnapshot`](crate::MetaCommand::CommitSnapshot).
pub(crate) fn commit(
    view: &MetaView,
    ch: &mut Changes<'_>,
    entry: &SnapshotEntry,
    admin_override: bool,
) -> Staged {
    if let Err(refused) = commit_snapshot(view, ch, entry, admin_override)? {
        return Ok(Err(refused));
    }
    Ok(Ok(()))
}

/// [`MetaCommand::CommitBackup`](crate::MetaCommand::CommitBackup): as [`commit`], while backup
/// task `upid` still runs; the task ends `OK` at `at`.
pub(crate) fn commit_backup(
    view: &MetaView,
    ch: &mut Changes<'_>,
    at: i64,
    entry: &SnapshotEntry,
    admin_override: bool,
    upid: &str,
) -> Staged {
    let Some(mut task) = view.task(upid)? else {
        return refuse(format!(
            "backup task {upid} is not recorded; nothing was committed"
        ));
    };
    if task.state != TaskState::Running {
        return refuse(format!(
            "backup task {upid} is no longer running ({:?}); nothing was committed — start the backup again",
            task.state
        ));
    }
    if let Err(refused) = commit_snapshot(view, ch, entry, admin_override)? {
        return Ok(Err(refused));
    }
    task.state = TaskState::Ok;
    task.end = Some(at);
    ch.put("task", &keys::task(upid), &task)?;
    Ok(Ok(()))
}

/// [`MetaCommand::ForgetSnapshot`](crate::MetaCommand::ForgetSnapshot): never a protected one.
pub(crate) fn forget_snapshot(
    view: &MetaView,
    ch: &mut Changes<'_>,
    datastore: &DatastoreName,
    snapshot: &SnapshotRef,
) -> Staged {
    let Some(entry) = view.snapshot(datastore, snapshot)? else {
        return refuse(format!("snapshot {snapshot} does not exist in {datastore}"));
    };
    if entry.protected {
        return refuse(format!(
            "snapshot {snapshot} is protected; remove the protection first"
        ));
    }
    ch.delete(&keys::snapshot(datastore, snapshot));
    Ok(Ok(()))
}

/// [`MetaCommand::SetProtected`](crate::MetaCommand::SetProtected).
pub(crate) fn set_protected(
    view: &MetaView,
    ch: &mut Changes<'_>,
    datastore: &DatastoreName,
    snapshot: &SnapshotRef,
    protected: bool,
) -> Staged {
    let Some(mut entry) = view.snapshot(datastore, snapshot)? else {
        return refuse(format!("snapshot {snapshot} does not exist in {datastore}"));
    };
    entry.protected = protected;
    ch.put("snapshot", &keys::snapshot(datastore, snapshot), &entry)?;
    Ok(Ok(()))
}

/// [`MetaCommand::SetVerify`](crate::MetaCommand::SetVerify): the result, verified at `at`.
pub(crate) fn set_verify(
    view: &MetaView,
    ch: &mut Changes<'_>,
    at: i64,
    datastore: &DatastoreName,
    snapshot: &SnapshotRef,
    verify: VerifyStatus,
) -> Staged {
    let Some(mut entry) = view.snapshot(datastore, snapshot)? else {
        return refuse(format!("snapshot {snapshot} does not exist in {datastore}"));
    };
    entry.verify = verify;
    entry.verified_at = Some(at);
    ch.put("snapshot", &keys::snapshot(datastore, snapshot), &entry)?;
    Ok(Ok(()))
}

/// Validates and stages the commit of `entry` (see
/// [`MetaCommand::CommitSnapshot`](crate::MetaCommand::CommitSnapshot)).
fn commit_snapshot(
    view: &MetaView,
    ch: &mut Changes<'_>,
    entry: &SnapshotEntry,
    admin_override: bool,
) -> Staged {
    let ds = &entry.datastore;
    let s = &entry.snapshot;
    match view.datastore(ds)? {
        None => return refuse(format!("datastore {ds} does not exist")),
        Some(d) if d.quarantined => return refuse(quarantined_message(ds)),
        Some(_) => {}
    }
    if !view.namespace_exists(ds, &s.ns)? {
        return refuse(format!("namespace '{}' does not exist in {ds}", s.ns));
    }
    if view.snapshot(ds, s)?.is_some() {
        return refuse(format!("snapshot {s} already exists in {ds}"));
    }
    let owner = entry.owner.clone();
    match view.group_owner(ds, &s.ns, &s.group)? {
        Some(o) if o != owner && !admin_override => {
            return refuse(format!(
                "permission denied: group {} belongs to {o}, not {owner}",
                s.group
            ));
        }
        Some(_) => {}
        None => ch.put("group owner", &keys::group(ds, &s.ns, &s.group), &owner)?,
    }
    ch.put("snapshot", &keys::snapshot(ds, s), entry)?;
    Ok(Ok(()))
}

//! Applying a [`MetaRequest`]: validate against the current state, then write every change of
//! the command into one batch — or nothing but the audit record if it is refused. The
//! validators, one module per command family, are in [`super::validate`].

use ironcore_types::records::AuditRecord;
use rocksdb::WriteBatch;

use super::command::{MetaCommand, MetaRequest};
use super::keys;
use super::validate::{
    Changes, Refused, Staged, access, cluster, datastores, encryption, refuse, remotes, sites,
    snapshots, tasks,
};
use super::view::MetaView;
use crate::Error;
use crate::codec::encode;

/// Applies `req` into `batch`; `Ok(Err(reason))` when the state refuses it.
pub(crate) fn apply(
    view: &MetaView,
    batch: &mut WriteBatch,
    req: &MetaRequest,
) -> Result<Result<(), Refused>, Error> {
    let mut staged = WriteBatch::default();
    let outcome = validate_and_stage(view, &mut Changes { batch: &mut staged }, req)?;
    if outcome.is_ok() {
        batch_append(batch, staged);
    }
    // Task records and lease renewals are bookkeeping, not operator actions.
    if !matches!(
        req.command,
        MetaCommand::RecordTask(_) | MetaCommand::RenewLease { .. }
    ) {
        let seq = view
            .get::<u64>("audit sequence", keys::AUDIT_SEQ)?
            .unwrap_or(0)
            + 1;
        let record = AuditRecord {
            seq,
            at: req.at,
            actor: req.actor.clone(),
            what: req.command.to_string(),
            result: match &outcome {
                Ok(()) => "ok".into(),
                Err(e) => format!("refused: {e}"),
            },
        };
        batch.put(keys::AUDIT_SEQ, encode("audit sequence", &seq)?);
        batch.put(keys::audit(seq), encode("audit record", &record)?);
    }
    Ok(outcome)
}

/// Appends the writes of `from` to `into`.
fn batch_append(into: &mut WriteBatch, from: WriteBatch) {
    // WriteBatch has no append in this binding: replay through an iterator.
    struct Replay<'a>(&'a mut WriteBatch);
    impl rocksdb::WriteBatchIterator for Replay<'_> {
        fn put(&mut self, key: Box<[u8]>, value: Box<[u8]>) {
            self.0.put(key, value);
        }
        fn delete(&mut self, key: Box<[u8]>) {
            self.0.delete(key);
        }
    }
    from.iterate(&mut Replay(into));
}

/// Validates `req` against the state in `view` and stages its writes in `ch`: refuses every
/// command but `Bootstrap` before the cluster is bootstrapped, then hands the command's fields
/// to its family's validator.
fn validate_and_stage(view: &MetaView, ch: &mut Changes<'_>, req: &MetaRequest) -> Staged {
    use MetaCommand as C;
    let bootstrapped = view.cluster()?.is_some();
    if !bootstrapped && !matches!(req.command, C::Bootstrap { .. }) {
        return refuse("the cluster is not bootstrapped yet");
    }
    let at = req.at;
    match &req.command {
        // The cluster, join tokens and nodes.
        C::Bootstrap {
            info,
            node,
            admin,
            token,
        } => cluster::bootstrap(ch, bootstrapped, at, info, node, admin, token),
        C::CreateJoinToken(t) => cluster::create_join_token(view, ch, t),
        C::Join { secret_hash, node } => cluster::join(view, ch, at, secret_hash, node),
        C::SetNodeRole { id, role } => cluster::set_node_role(view, ch, *id, *role),
        C::RemoveNode { id } => cluster::remove_node(view, ch, *id),
        C::BumpEpoch => cluster::bump_epoch(view, ch),
        C::SetSite(site) => sites::set_site(view, ch, site),
        C::MarkComplete {
            datastore,
            snapshot,
            site,
        } => sites::mark_complete(view, ch, datastore, snapshot, site),
        // Datastores and namespaces.
        C::CreateDatastore(d) => datastores::create_datastore(view, ch, d),
        C::RemoveDatastore { name } => datastores::remove_datastore(view, ch, name),
        C::CreateNamespace { datastore, ns } => {
            datastores::create_namespace(view, ch, datastore, ns)
        }
        C::SetQuarantine {
            datastore,
            quarantined,
        } => datastores::set_quarantine(view, ch, datastore, *quarantined),
        // Snapshots.
        C::CommitSnapshot {
            entry,
            admin_override,
        } => snapshots::commit(view, ch, entry, *admin_override),
        C::CommitBackup {
            entry,
            admin_override,
            upid,
        } => snapshots::commit_backup(view, ch, at, entry, *admin_override, upid),
        C::ForgetSnapshot {
            datastore,
            snapshot,
        } => snapshots::forget_snapshot(view, ch, datastore, snapshot),
        C::SetProtected {
            datastore,
            snapshot,
            protected,
        } => snapshots::set_protected(view, ch, datastore, snapshot, *protected),
        C::SetVerify {
            datastore,
            snapshot,
            verify,
        } => snapshots::set_verify(view, ch, at, datastore, snapshot, *verify),
        // Users, passwords, tokens and ACLs.
        C::CreateUser(u) => access::create_user(view, ch, u),
        C::UpdateUser {
            userid,
            enabled,
            comment,
        } => access::update_user(view, ch, userid, *enabled, comment),
        C::UpdateToken {
            tokenid,
            enabled,
            expires,
            comment,
        } => access::update_token(view, ch, tokenid, *enabled, *expires, comment),
        C::SetPassword {
            userid,
            password_hash,
        } => access::set_password(view, ch, userid, password_hash),
        C::RemoveUser { userid } => access::remove_user(view, ch, userid),
        C::CreateToken(t) => access::create_token(view, ch, t),
        C::RemoveToken { tokenid } => access::remove_token(view, ch, tokenid),
        C::SetAcl(a) => access::set_acl(view, ch, a),
        C::RemoveAcl { path, auth_id } => access::remove_acl(view, ch, path, auth_id),
        // Encryption keys.
        C::RegisterKey(k) => encryption::register_key(ch, k),
        // Tasks, leases and jobs.
        C::RecordTask(t) => tasks::record_task(view, ch, t),
        C::RenewLease { node, until } => tasks::renew_lease(view, ch, node, *until),
        C::CreateJob(j) => tasks::create_job(view, ch, j),
        C::RemoveJob { id } => tasks::remove_job(view, ch, id),
        C::JobStarted { id, scheduled } => tasks::job_started(view, ch, id, *scheduled),
        // Remotes and notification targets.
        C::CreateRemote(r) => remotes::create_remote(view, ch, r),
        C::RemoveRemote { name } => remotes::remove_remote(view, ch, name),
        C::CreateNotificationTarget(t) => remotes::create_notification_target(view, ch, t),
        C::RemoveNotificationTarget { name } => remotes::remove_notification_target(view, ch, name),
    }
}

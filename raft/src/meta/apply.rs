//! Applying a [`MetaRequest`]: validate against the current state, then write every change of
//! the command into one batch — or nothing but the audit record if it is refused.

use ironcore_types::records::{AclEntry, AuditRecord, NodeRole, NotifyEndpoint, TaskState};
use rocksdb::WriteBatch;
use serde::Serialize;

use super::command::{MetaCommand, MetaRequest};
use super::keys;
use super::view::MetaView;
use crate::Error;
use crate::codec::encode;

/// Why a command was refused (shown to the caller as is).
type Refused = String;

struct Changes<'a> {
    batch: &'a mut WriteBatch,
}

impl Changes<'_> {
    fn put<T: Serialize>(&mut self, what: &'static str, key: &[u8], v: &T) -> Result<(), Error> {
        self.batch.put(key, encode(what, v)?);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) {
        self.batch.delete(key);
    }
}

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

/// Whether `name` is a valid job or remote name: 1 to 32 of `a-z`, `0-9`, `-`, `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The refusal of writes to a quarantined datastore (the chunkstore's words).
pub fn quarantined_message(ds: &ironcore_types::DatastoreName) -> String {
    format!(
        "datastore '{ds}' is quarantined: new writes and garbage collection are disabled until \
         the root cause is established; lift it with `ironcore-backup datastore quarantine {ds} --clear`"
    )
}

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

fn refuse<T>(msg: impl Into<String>) -> Result<Result<T, Refused>, Error> {
    Ok(Err(msg.into()))
}

fn validate_and_stage(
    view: &MetaView,
    ch: &mut Changes<'_>,
    req: &MetaRequest,
) -> Result<Result<(), Refused>, Error> {
    use MetaCommand as C;
    let bootstrapped = view.cluster()?.is_some();
    if !bootstrapped && !matches!(req.command, C::Bootstrap { .. }) {
        return refuse("the cluster is not bootstrapped yet");
    }
    match &req.command {
        C::Bootstrap {
            info,
            node,
            admin,
            token,
        } => {
            if bootstrapped {
                return refuse("the cluster is already bootstrapped");
            }
            if token.tokenid.user() != admin.userid {
                return refuse("the first token must belong to the first user");
            }
            ch.put("cluster info", keys::CLUSTER, info)?;
            ch.put("node", &keys::node(node.id), node)?;
            ch.put("user", &keys::user(&admin.userid), admin)?;
            ch.put("token", &keys::token(&token.tokenid), token)?;
            // The first user and its token both get Admin on `/` (a token's rights are its
            // own grants intersected with its user's).
            for id in [&admin.userid, &token.tokenid] {
                let acl = AclEntry {
                    path: "/".into(),
                    auth_id: id.clone(),
                    role: ironcore_types::Role::Admin,
                };
                ch.put("acl entry", &keys::acl("/", id), &acl)?;
            }
        }
        C::CreateJoinToken(t) => {
            if view.join_token(&t.secret_hash)?.is_some() {
                return refuse("a join token with this secret exists");
            }
            ch.put("join token", &keys::join_token(&t.secret_hash), t)?;
        }
        C::Join { secret_hash, node } => {
            let Some(mut token) = view.join_token(secret_hash)? else {
                return refuse(
                    "join token not valid: create one with `ironcore-backup cluster join-token`",
                );
            };
            if let Some(by) = &token.used_by {
                return refuse(format!(
                    "join token already used (by node {by}); create a new one with `ironcore-backup cluster join-token`"
                ));
            }
            if token.expires < req.at {
                return refuse(
                    "join token expired; create a new one with `ironcore-backup cluster join-token`",
                );
            }
            let nodes = view.nodes()?;
            if nodes.iter().any(|n| n.id == node.id || n.name == node.name) {
                return refuse(format!(
                    "a node named {} or with id {} is already a member",
                    node.name, node.id
                ));
            }
            token.used_by = Some(node.name.clone());
            ch.put("join token", &keys::join_token(secret_hash), &token)?;
            ch.put("node", &keys::node(node.id), node)?;
        }
        C::SetNodeRole { id, role } => {
            let Some(mut n) = view.node(*id)? else {
                return refuse(format!("node {id} is not a member"));
            };
            n.role = *role;
            ch.put("node", &keys::node(*id), &n)?;
        }
        C::RemoveNode { id } => {
            let nodes = view.nodes()?;
            if !nodes.iter().any(|n| n.id == *id) {
                return refuse(format!("node {id} is not a member"));
            }
            let voters = nodes
                .iter()
                .filter(|n| n.id != *id && n.role != NodeRole::Learner)
                .count();
            if voters == 0 {
                return refuse("the last voter cannot be removed");
            }
            ch.delete(&keys::node(*id));
        }
        C::BumpEpoch => {
            let Some(mut info) = view.cluster()? else {
                return refuse("the cluster is not bootstrapped yet");
            };
            info.epoch += 1;
            ch.put("cluster info", keys::CLUSTER, &info)?;
        }
        C::CreateDatastore(d) => {
            if view.datastore(&d.name)?.is_some() {
                return refuse(format!("datastore {} already exists", d.name));
            }
            if d.copies == 0 {
                return refuse("copies must be at least 1");
            }
            if !d.path.starts_with('/') {
                return refuse(format!("datastore path '{}' must be absolute", d.path));
            }
            ch.put("datastore", &keys::datastore(&d.name), d)?;
        }
        C::RemoveDatastore { name } => {
            if view.datastore(name)?.is_none() {
                return refuse(format!("datastore {name} does not exist"));
            }
            if !view.snapshots(name)?.is_empty() {
                return refuse(format!(
                    "datastore {name} still holds snapshots; forget or prune them first"
                ));
            }
            ch.delete(&keys::datastore(name));
        }
        C::CreateNamespace { datastore, ns } => {
            if view.datastore(datastore)?.is_none() {
                return refuse(format!("datastore {datastore} does not exist"));
            }
            if ns.is_root() || view.namespace_exists(datastore, ns)? {
                return refuse(format!("namespace '{ns}' already exists in {datastore}"));
            }
            let parent = ns.parent().unwrap_or_else(ironcore_types::Namespace::root);
            if !view.namespace_exists(datastore, &parent)? {
                return refuse(format!(
                    "parent namespace '{parent}' does not exist in {datastore}; create it first"
                ));
            }
            ch.put("namespace", &keys::namespace(datastore, ns), ns)?;
        }
        C::CommitSnapshot {
            entry,
            admin_override,
        } => {
            if let Err(refused) = commit_snapshot(view, ch, entry, *admin_override)? {
                return Ok(Err(refused));
            }
        }
        C::CommitBackup {
            entry,
            admin_override,
            upid,
        } => {
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
            if let Err(refused) = commit_snapshot(view, ch, entry, *admin_override)? {
                return Ok(Err(refused));
            }
            task.state = TaskState::Ok;
            task.end = Some(req.at);
            ch.put("task", &keys::task(upid), &task)?;
        }
        C::ForgetSnapshot {
            datastore,
            snapshot,
        } => {
            let Some(entry) = view.snapshot(datastore, snapshot)? else {
                return refuse(format!("snapshot {snapshot} does not exist in {datastore}"));
            };
            if entry.protected {
                return refuse(format!(
                    "snapshot {snapshot} is protected; remove the protection first"
                ));
            }
            ch.delete(&keys::snapshot(datastore, snapshot));
        }
        C::SetProtected {
            datastore,
            snapshot,
            protected,
        } => {
            let Some(mut entry) = view.snapshot(datastore, snapshot)? else {
                return refuse(format!("snapshot {snapshot} does not exist in {datastore}"));
            };
            entry.protected = *protected;
            ch.put("snapshot", &keys::snapshot(datastore, snapshot), &entry)?;
        }
        C::SetQuarantine {
            datastore,
            quarantined,
        } => {
            let Some(mut d) = view.datastore(datastore)? else {
                return refuse(format!("datastore {datastore} does not exist"));
            };
            d.quarantined = *quarantined;
            ch.put("datastore", &keys::datastore(datastore), &d)?;
        }
        C::SetVerify {
            datastore,
            snapshot,
            verify,
        } => {
            let Some(mut entry) = view.snapshot(datastore, snapshot)? else {
                return refuse(format!("snapshot {snapshot} does not exist in {datastore}"));
            };
            entry.verify = *verify;
            entry.verified_at = Some(req.at);
            ch.put("snapshot", &keys::snapshot(datastore, snapshot), &entry)?;
        }
        C::CreateUser(u) => {
            if u.userid.is_token() {
                return refuse(format!("{} names a token, not a user", u.userid));
            }
            if view.user(&u.userid)?.is_some() {
                return refuse(format!("user {} already exists", u.userid));
            }
            ch.put("user", &keys::user(&u.userid), u)?;
        }
        C::CreateRemote(r) => {
            if !valid_name(&r.name) {
                return refuse(format!(
                    "remote name '{}' must be 1 to 32 of a-z, 0-9, - and _",
                    r.name
                ));
            }
            if !r.auth_id.is_token() {
                return refuse(format!(
                    "{} is not an API token (user@realm!name) of the remote",
                    r.auth_id
                ));
            }
            if view.remote(&r.name)?.is_some() {
                return refuse(format!("remote {} already exists", r.name));
            }
            ch.put("remote", &keys::remote(&r.name), r)?;
        }
        C::CreateNotificationTarget(t) => {
            if !valid_name(&t.name) {
                return refuse(format!(
                    "notification target name '{}' must be 1 to 32 of a-z, 0-9, - and _",
                    t.name
                ));
            }
            match &t.endpoint {
                NotifyEndpoint::Webhook { url } => {
                    if !(url.starts_with("http://") || url.starts_with("https://"))
                        || url.contains(char::is_whitespace)
                    {
                        return refuse(format!(
                            "webhook URL '{url}' must start with http:// or https://"
                        ));
                    }
                }
                NotifyEndpoint::Smtp { server, from, to } => {
                    if server
                        .rsplit_once(':')
                        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                    {
                        return refuse(format!("SMTP server '{server}' must be HOST:PORT"));
                    }
                    let bad = |a: &String| {
                        !a.contains('@')
                            || a.contains(|c: char| c.is_whitespace() || "<>\r\n".contains(c))
                    };
                    if to.is_empty() {
                        return refuse("an SMTP target needs at least one recipient");
                    }
                    if let Some(a) = std::iter::once(from).chain(to).find(|a| bad(a)) {
                        return refuse(format!("'{a}' is not a mail address"));
                    }
                }
            }
            if view.notification_target(&t.name)?.is_some() {
                return refuse(format!("notification target {} already exists", t.name));
            }
            ch.put(
                "notification target",
                &keys::notification_target(&t.name),
                t,
            )?;
        }
        C::RemoveNotificationTarget { name } => {
            if view.notification_target(name)?.is_none() {
                return refuse(format!("notification target {name} does not exist"));
            }
            ch.delete(&keys::notification_target(name));
        }
        C::RemoveRemote { name } => {
            if view.remote(name)?.is_none() {
                return refuse(format!("remote {name} does not exist"));
            }
            ch.delete(&keys::remote(name));
        }
        C::CreateJob(j) => {
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
        }
        C::RemoveJob { id } => {
            if view.job(id)?.is_none() {
                return refuse(format!("job {id} does not exist"));
            }
            ch.delete(&keys::job(id));
        }
        C::JobStarted { id, scheduled } => {
            let Some(mut j) = view.job(id)? else {
                return refuse(format!("job {id} does not exist"));
            };
            if j.last_run.is_some_and(|l| l >= *scheduled) {
                return refuse(format!(
                    "the run of job {id} at {scheduled} was started already"
                ));
            }
            j.last_run = Some(*scheduled);
            ch.put("job", &keys::job(id), &j)?;
        }
        C::SetPassword {
            userid,
            password_hash,
        } => {
            let Some(mut u) = view.user(userid)? else {
                return refuse(format!("user {userid} does not exist"));
            };
            u.password_hash = password_hash.clone();
            ch.put("user", &keys::user(userid), &u)?;
        }
        C::RemoveUser { userid } => {
            if view.user(userid)?.is_none() {
                return refuse(format!("user {userid} does not exist"));
            }
            ch.delete(&keys::user(userid));
            for t in view.tokens()? {
                if t.tokenid.user() == *userid {
                    ch.delete(&keys::token(&t.tokenid));
                }
            }
            for a in view.acls()? {
                if a.auth_id.user() == *userid {
                    ch.delete(&keys::acl(&a.path, &a.auth_id));
                }
            }
        }
        C::CreateToken(t) => {
            if !t.tokenid.is_token() {
                return refuse(format!("{} is not a token id (USER@REALM!NAME)", t.tokenid));
            }
            if view.user(&t.tokenid.user())?.is_none() {
                return refuse(format!("user {} does not exist", t.tokenid.user()));
            }
            if view.token(&t.tokenid)?.is_some() {
                return refuse(format!("token {} already exists", t.tokenid));
            }
            ch.put("token", &keys::token(&t.tokenid), t)?;
        }
        C::RemoveToken { tokenid } => {
            if view.token(tokenid)?.is_none() {
                return refuse(format!("token {tokenid} does not exist"));
            }
            ch.delete(&keys::token(tokenid));
            for a in view.acls()? {
                if a.auth_id == *tokenid {
                    ch.delete(&keys::acl(&a.path, &a.auth_id));
                }
            }
        }
        C::SetAcl(a) => {
            if let Err(e) = check_acl_path(view, &a.path)? {
                return refuse(e);
            }
            let exists = if a.auth_id.is_token() {
                view.token(&a.auth_id)?.is_some()
            } else {
                view.user(&a.auth_id)?.is_some()
            };
            if !exists {
                return refuse(format!("{} does not exist", a.auth_id));
            }
            if a.role == ironcore_types::Role::Admin && a.path != "/" {
                return refuse("the Admin role is granted on / only");
            }
            ch.put("acl entry", &keys::acl(&a.path, &a.auth_id), a)?;
        }
        C::RemoveAcl { path, auth_id } => {
            if view
                .get::<AclEntry>("acl entry", &keys::acl(path, auth_id))?
                .is_none()
            {
                return refuse(format!("{auth_id} has no grant on {path}"));
            }
            ch.delete(&keys::acl(path, auth_id));
        }
        C::RegisterKey(k) => {
            ch.put("key", &keys::key(&k.fingerprint), k)?;
        }
        C::RecordTask(t) => {
            if let Some(old) = view.task(&t.upid)?
                && old.state != TaskState::Running
            {
                if old.state == t.state {
                    return Ok(Ok(())); // ended the same way already (a commit ends its task)
                }
                return refuse(format!("task {} already ended", t.upid));
            }
            ch.put("task", &keys::task(&t.upid), t)?;
        }
        C::RenewLease { node, until } => {
            if !view.nodes()?.iter().any(|n| &n.name == node) {
                return refuse(format!("node {node} is not a member of the cluster"));
            }
            let current = view.lease(node)?.unwrap_or(i64::MIN);
            ch.put("lease", &keys::lease(node), &current.max(*until))?;
        }
    }
    Ok(Ok(()))
}

/// Validates and stages the commit of `entry` (see [`MetaCommand::CommitSnapshot`]).
fn commit_snapshot(
    view: &MetaView,
    ch: &mut Changes<'_>,
    entry: &ironcore_types::records::SnapshotEntry,
    admin_override: bool,
) -> Result<Result<(), Refused>, Error> {
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

/// ACL paths: `/`, `/datastore`, `/datastore/{store}` or `/datastore/{store}/{ns…}`.
fn check_acl_path(view: &MetaView, path: &str) -> Result<Result<(), Refused>, Error> {
    if path == "/" || path == "/datastore" {
        return Ok(Ok(()));
    }
    let Some(rest) = path.strip_prefix("/datastore/") else {
        return Ok(Err(format!(
            "ACL path '{path}' is not valid: use /, /datastore or /datastore/STORE[/NAMESPACE...]"
        )));
    };
    let store = rest.split('/').next().unwrap_or_default();
    let Ok(name) = store.parse() else {
        return Ok(Err(format!("ACL path '{path}' names no valid datastore")));
    };
    if view.datastore(&name)?.is_none() {
        return Ok(Err(format!(
            "datastore {store} of ACL path '{path}' does not exist"
        )));
    }
    Ok(Ok(()))
}

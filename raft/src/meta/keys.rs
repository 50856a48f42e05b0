//! Where each metadata record lives in the state machine's key space (all under `d/`, so
//! snapshots carry them).

use ironcore_types::{AuthId, BackupGroup, DatastoreName, Namespace, SiteId, SnapshotRef};

pub(crate) const CLUSTER: &[u8] = b"d/cl/info";
pub(crate) const AUDIT_SEQ: &[u8] = b"d/cl/audit-seq";
pub(crate) const NODE: &str = "d/node/";
pub(crate) const JOIN: &str = "d/join/";
pub(crate) const DATASTORE: &str = "d/ds/";
pub(crate) const NAMESPACE: &str = "d/ns/";
pub(crate) const GROUP: &str = "d/grp/";
pub(crate) const SNAPSHOT: &str = "d/snap/";
pub(crate) const USER: &str = "d/user/";
pub(crate) const TOKEN: &str = "d/tok/";
pub(crate) const ACL: &str = "d/acl/";
pub(crate) const KEY: &str = "d/key/";
pub(crate) const TASK: &str = "d/task/";
pub(crate) const LEASE: &str = "d/lease/";
pub(crate) const AUDIT: &str = "d/audit/";
pub(crate) const JOB: &str = "d/job/";
pub(crate) const REMOTE: &str = "d/remote/";
pub(crate) const NOTIFY: &str = "d/notify/";
pub(crate) const SITE: &str = "d/site/";
/// Per user: the generation its tickets must carry (set at creation and on disable).
pub(crate) const USER_TICKETS: &str = "d/user-tickets/";
/// Per token: present while the token is disabled.
pub(crate) const TOKEN_OFF: &str = "d/tok-off/";

fn join(parts: &[&str]) -> Vec<u8> {
    parts.concat().into_bytes()
}

pub(crate) fn node(id: u64) -> Vec<u8> {
    join(&[NODE, &format!("{id:016x}")])
}

pub(crate) fn site(name: &SiteId) -> Vec<u8> {
    join(&[SITE, name.as_str()])
}

pub(crate) fn join_token(hash: &str) -> Vec<u8> {
    join(&[JOIN, hash])
}

pub(crate) fn datastore(name: &DatastoreName) -> Vec<u8> {
    join(&[DATASTORE, name.as_str()])
}

pub(crate) fn namespace(ds: &DatastoreName, ns: &Namespace) -> Vec<u8> {
    join(&[NAMESPACE, ds.as_str(), "\0", &ns.to_string()])
}

pub(crate) fn group(ds: &DatastoreName, ns: &Namespace, g: &BackupGroup) -> Vec<u8> {
    join(&[
        GROUP,
        ds.as_str(),
        "\0",
        &ns.to_string(),
        "\0",
        &g.to_string(),
    ])
}

/// All snapshots of a datastore share this prefix.
pub(crate) fn snapshots_of(ds: &DatastoreName) -> Vec<u8> {
    join(&[SNAPSHOT, ds.as_str(), "\0"])
}

/// All snapshots of one group share this prefix.
pub(crate) fn snapshots_of_group(ds: &DatastoreName, ns: &Namespace, g: &BackupGroup) -> Vec<u8> {
    join(&[
        SNAPSHOT,
        ds.as_str(),
        "\0",
        &ns.to_string(),
        "\0",
        &g.to_string(),
        "\0",
    ])
}

pub(crate) fn snapshot(ds: &DatastoreName, s: &SnapshotRef) -> Vec<u8> {
    let mut k = snapshots_of_group(ds, &s.ns, &s.group);
    // Offset so that times sort as unsigned hex (times before 1970 stay ordered).
    k.extend_from_slice(format!("{:016x}", (s.time as u64) ^ (1 << 63)).as_bytes());
    k
}

pub(crate) fn user(id: &AuthId) -> Vec<u8> {
    join(&[USER, &id.to_string()])
}

pub(crate) fn token(id: &AuthId) -> Vec<u8> {
    join(&[TOKEN, &id.to_string()])
}

pub(crate) fn user_tickets(id: &AuthId) -> Vec<u8> {
    join(&[USER_TICKETS, &id.user().to_string()])
}

pub(crate) fn token_off(id: &AuthId) -> Vec<u8> {
    join(&[TOKEN_OFF, &id.to_string()])
}

pub(crate) fn acl(path: &str, id: &AuthId) -> Vec<u8> {
    join(&[ACL, path, "\0", &id.to_string()])
}

pub(crate) fn key(fp: &ironcore_types::Fingerprint) -> Vec<u8> {
    join(&[KEY, &fp.to_hex()])
}

pub(crate) fn lease(node: &str) -> Vec<u8> {
    join(&[LEASE, node])
}

pub(crate) fn task(upid: &str) -> Vec<u8> {
    join(&[TASK, upid])
}

pub(crate) fn audit(seq: u64) -> Vec<u8> {
    join(&[AUDIT, &format!("{seq:016x}")])
}

pub(crate) fn job(id: &str) -> Vec<u8> {
    join(&[JOB, id])
}

pub(crate) fn notification_target(name: &str) -> Vec<u8> {
    join(&[NOTIFY, name])
}

pub(crate) fn remote(name: &str) -> Vec<u8> {
    join(&[REMOTE, name])
}

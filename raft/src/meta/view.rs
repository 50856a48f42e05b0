//! Reading typed metadata from a node's state machine.

use ironcore_types::records::{
    AclEntry, AuditRecord, ClusterInfo, DatastoreConfig, JobRecord, JoinTokenRecord, KeyRecord,
    NodeRecord, NotificationTarget, RemoteRecord, SiteRecord, SnapshotEntry, TaskRecord,
    TokenRecord, UserRecord,
};
use ironcore_types::{AuthId, BackupGroup, DatastoreName, Namespace, SiteId, SnapshotRef};
use rocksdb::{Direction, IteratorMode};
use serde::de::DeserializeOwned;

use super::keys;
use crate::Error;
use crate::codec::decode;
use crate::rocks::Rocks;

/// A read handle on this node's copy of the metadata. Reads are local: they see what this node
/// has applied. For a read that must see every acknowledged write, call
/// [`crate::RaftNode::linearize`] first.
#[derive(Clone, Debug)]
pub struct MetaView {
    pub(crate) rocks: Rocks,
}

impl MetaView {
    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        what: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, Error> {
        self.rocks.get(key)?.map(|b| decode(what, &b)).transpose()
    }

    pub(crate) fn scan<T: DeserializeOwned>(
        &self,
        what: &'static str,
        prefix: &[u8],
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        for item in self
            .rocks
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.rocks.err(e))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(decode(what, &v)?);
        }
        Ok(out)
    }

    /// The cluster's identity and epoch, once bootstrapped.
    pub fn cluster(&self) -> Result<Option<ClusterInfo>, Error> {
        self.get("cluster info", keys::CLUSTER)
    }

    /// Every member.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, Error> {
        self.scan("node", keys::NODE.as_bytes())
    }

    /// One member.
    pub fn node(&self, id: u64) -> Result<Option<NodeRecord>, Error> {
        self.get("node", &keys::node(id))
    }

    /// Every recorded site with its role.
    pub fn sites(&self) -> Result<Vec<SiteRecord>, Error> {
        self.scan("site", keys::SITE.as_bytes())
    }

    /// One site's record.
    pub fn site(&self, name: &SiteId) -> Result<Option<SiteRecord>, Error> {
        self.get("site", &keys::site(name))
    }

    /// A join token by the hash of its secret.
    pub fn join_token(&self, secret_hash: &str) -> Result<Option<JoinTokenRecord>, Error> {
        self.get("join token", &keys::join_token(secret_hash))
    }

    /// Every datastore.
    pub fn datastores(&self) -> Result<Vec<DatastoreConfig>, Error> {
        self.scan("datastore", keys::DATASTORE.as_bytes())
    }

    /// One datastore.
    pub fn datastore(&self, name: &DatastoreName) -> Result<Option<DatastoreConfig>, Error> {
        self.get("datastore", &keys::datastore(name))
    }

    /// Whether a namespace exists (the root always does, once the datastore does).
    pub fn namespace_exists(&self, ds: &DatastoreName, ns: &Namespace) -> Result<bool, Error> {
        if ns.is_root() {
            return Ok(self.datastore(ds)?.is_some());
        }
        Ok(self.rocks.get(&keys::namespace(ds, ns))?.is_some())
    }

    /// The namespaces of a datastore (root not included).
    pub fn namespaces(&self, ds: &DatastoreName) -> Result<Vec<Namespace>, Error> {
        let mut prefix = keys::NAMESPACE.as_bytes().to_vec();
        prefix.extend_from_slice(ds.as_str().as_bytes());
        prefix.push(0);
        self.scan("namespace", &prefix)
    }

    /// The owner of a group, if it has one.
    pub fn group_owner(
        &self,
        ds: &DatastoreName,
        ns: &Namespace,
        g: &BackupGroup,
    ) -> Result<Option<AuthId>, Error> {
        self.get("group owner", &keys::group(ds, ns, g))
    }

    /// Every snapshot of a datastore, ordered by namespace, group and time.
    pub fn snapshots(&self, ds: &DatastoreName) -> Result<Vec<SnapshotEntry>, Error> {
        self.scan("snapshot", &keys::snapshots_of(ds))
    }

    /// The snapshots of one group, oldest first.
    pub fn group_snapshots(
        &self,
        ds: &DatastoreName,
        ns: &Namespace,
        g: &BackupGroup,
    ) -> Result<Vec<SnapshotEntry>, Error> {
        self.scan("snapshot", &keys::snapshots_of_group(ds, ns, g))
    }

    /// One snapshot.
    pub fn snapshot(
        &self,
        ds: &DatastoreName,
        s: &SnapshotRef,
    ) -> Result<Option<SnapshotEntry>, Error> {
        self.get("snapshot", &keys::snapshot(ds, s))
    }

    /// Every user.
    pub fn users(&self) -> Result<Vec<UserRecord>, Error> {
        self.scan("user", keys::USER.as_bytes())
    }

    /// One user.
    pub fn user(&self, id: &AuthId) -> Result<Option<UserRecord>, Error> {
        self.get("user", &keys::user(&id.user()))
    }

    /// Every token.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, Error> {
        self.scan("token", keys::TOKEN.as_bytes())
    }

    /// One token.
    pub fn token(&self, id: &AuthId) -> Result<Option<TokenRecord>, Error> {
        self.get("token", &keys::token(id))
    }

    /// The generation user `id`'s tickets must carry: a new one each time the user is created
    /// or disabled, so no ticket from before works again (0 for the bootstrap admin).
    pub fn ticket_generation(&self, id: &AuthId) -> Result<u64, Error> {
        Ok(self
            .get("user ticket generation", &keys::user_tickets(id))?
            .unwrap_or(0))
    }

    /// The sequence number the audit record of the command being applied gets: unique and
    /// increasing across the cluster's life.
    pub(crate) fn next_audit_seq(&self) -> Result<u64, Error> {
        Ok(self
            .get::<u64>("audit sequence", keys::AUDIT_SEQ)?
            .unwrap_or(0)
            + 1)
    }

    /// Whether token `id` is disabled (`token update --disable`).
    pub fn token_disabled(&self, id: &AuthId) -> Result<bool, Error> {
        Ok(self
            .get::<i64>("token disabled mark", &keys::token_off(id))?
            .is_some())
    }

    /// Every ACL entry, ordered by path.
    pub fn acls(&self) -> Result<Vec<AclEntry>, Error> {
        self.scan("acl entry", keys::ACL.as_bytes())
    }

    /// Every registered key.
    pub fn keys(&self) -> Result<Vec<KeyRecord>, Error> {
        self.scan("key", keys::KEY.as_bytes())
    }

    /// Every recorded task, ordered by UPID.
    pub fn tasks(&self) -> Result<Vec<TaskRecord>, Error> {
        self.scan("task", keys::TASK.as_bytes())
    }

    /// Every registered remote, by name.
    pub fn remotes(&self) -> Result<Vec<RemoteRecord>, Error> {
        self.scan("remote", keys::REMOTE.as_bytes())
    }

    /// One remote.
    pub fn remote(&self, name: &str) -> Result<Option<RemoteRecord>, Error> {
        self.get("remote", &keys::remote(name))
    }

    /// Every notification target, by name.
    pub fn notification_targets(&self) -> Result<Vec<NotificationTarget>, Error> {
        self.scan("notification target", keys::NOTIFY.as_bytes())
    }

    /// One notification target.
    pub fn notification_target(&self, name: &str) -> Result<Option<NotificationTarget>, Error> {
        self.get("notification target", &keys::notification_target(name))
    }

    /// Every scheduled job, by id.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, Error> {
        self.scan("job", keys::JOB.as_bytes())
    }

    /// One scheduled job.
    pub fn job(&self, id: &str) -> Result<Option<JobRecord>, Error> {
        self.get("job", &keys::job(id))
    }

    /// The groups of `ns` in `ds` that have snapshots.
    pub fn groups(&self, ds: &DatastoreName, ns: &Namespace) -> Result<Vec<BackupGroup>, Error> {
        let mut groups: Vec<BackupGroup> = self
            .snapshots(ds)?
            .into_iter()
            .filter(|s| s.snapshot.ns == *ns)
            .map(|s| s.snapshot.group)
            .collect();
        groups.sort_by_key(|g| g.to_string());
        groups.dedup();
        Ok(groups)
    }

    /// A task.
    pub fn task(&self, upid: &str) -> Result<Option<TaskRecord>, Error> {
        self.get("task", &keys::task(upid))
    }

    /// Until when node `node`'s running tasks count as alive (Unix seconds), if it ever
    /// renewed its lease.
    pub fn lease(&self, node: &str) -> Result<Option<i64>, Error> {
        self.get("lease", &keys::lease(node))
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> Result<Vec<AuditRecord>, Error> {
        self.scan("audit record", keys::AUDIT.as_bytes())
    }
}

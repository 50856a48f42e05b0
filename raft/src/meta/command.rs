//! The metadata commands the cluster agrees on (inside [`crate::Command::Meta`]).

use std::fmt;

use ironcore_types::records::{
    AclEntry, ClusterInfo, DatastoreConfig, JobRecord, JoinTokenRecord, KeyRecord, NodeRecord,
    NodeRole, NotificationTarget, RemoteRecord, SiteRecord, SnapshotEntry, TaskRecord, TokenRecord,
    UserRecord, VerifyStatus,
};
use ironcore_types::{AuthId, DatastoreName, Namespace, SiteId, SnapshotRef};
use serde::{Deserialize, Serialize};

/// A metadata command with who proposed it and when. `at` is the proposer's clock, so every
/// node applies the same value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRequest {
    /// Who asked (recorded in the audit log).
    pub actor: AuthId,
    /// When it was proposed (epoch seconds).
    pub at: i64,
    /// What to do.
    pub command: MetaCommand,
}

/// One change to typed cluster metadata. Validated when applied: a command that does not fit
/// the state is refused as a whole and changes nothing but the audit log.
///
/// Same encoding rule as [`crate::Command`]: variants and their fields are only appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Creates the cluster: its identity, the first node, the first admin and its token.
    Bootstrap {
        /// Cluster id and epoch.
        info: ClusterInfo,
        /// The first node.
        node: NodeRecord,
        /// The first user (gets `Admin` on `/`).
        admin: UserRecord,
        /// The first user's API token.
        token: TokenRecord,
    },
    /// Stores a new one-time join token.
    CreateJoinToken(JoinTokenRecord),
    /// Uses a join token (once, before it expires) and records the joining node.
    Join {
        /// SHA-256 of the presented secret (hex).
        secret_hash: String,
        /// The node that joins.
        node: NodeRecord,
    },
    /// Changes a node's role.
    SetNodeRole {
        /// Its Raft id.
        id: u64,
        /// The new role.
        role: NodeRole,
    },
    /// Removes a node and its pins.
    RemoveNode {
        /// Its Raft id.
        id: u64,
    },
    /// Bumps the cluster epoch (forced failover); older-epoch nodes are refused afterwards.
    BumpEpoch,
    /// Creates a datastore.
    CreateDatastore(DatastoreConfig),
    /// Removes a datastore that holds no snapshot.
    RemoveDatastore {
        /// Its name.
        name: DatastoreName,
    },
    /// Creates a namespace (its parent must exist).
    CreateNamespace {
        /// The datastore.
        datastore: DatastoreName,
        /// The new namespace.
        ns: Namespace,
    },
    /// Commits a snapshot: the point where it exists. The group gets the actor's user as
    /// owner if it is new; otherwise the actor must own it (unless `admin_override`).
    CommitSnapshot {
        /// The snapshot and its manifest.
        entry: SnapshotEntry,
        /// The caller may write to groups of any owner (Datastore.Admin).
        admin_override: bool,
    },
    /// Forgets a snapshot (refused if protected).
    ForgetSnapshot {
        /// The datastore.
        datastore: DatastoreName,
        /// The snapshot.
        snapshot: SnapshotRef,
    },
    /// Sets or clears a snapshot's protection.
    SetProtected {
        /// The datastore.
        datastore: DatastoreName,
        /// The snapshot.
        snapshot: SnapshotRef,
        /// Protected or not.
        protected: bool,
    },
    /// Quarantines a datastore (or lifts it).
    SetQuarantine {
        /// The datastore.
        datastore: DatastoreName,
        /// Quarantined or not.
        quarantined: bool,
    },
    /// Records a verification result.
    SetVerify {
        /// The datastore.
        datastore: DatastoreName,
        /// The snapshot.
        snapshot: SnapshotRef,
        /// The result.
        verify: VerifyStatus,
    },
    /// Creates a user.
    CreateUser(UserRecord),
    /// Registers a remote.
    CreateRemote(RemoteRecord),
    /// Removes a remote.
    RemoveRemote {
        /// Its name.
        name: String,
    },
    /// Stores a new scheduled job.
    CreateJob(JobRecord),
    /// Removes a scheduled job.
    RemoveJob {
        /// Its id.
        id: String,
    },
    /// The scheduler claims the run of job `id` scheduled at `scheduled`; refused if that run
    /// (or a later one) was claimed already, so no run happens twice.
    JobStarted {
        /// The job.
        id: String,
        /// The run's scheduled time (epoch seconds).
        scheduled: i64,
    },
    /// Sets (or, with `None`, clears) a user's password hash.
    SetPassword {
        /// The user.
        userid: AuthId,
        /// Argon2id PHC string.
        password_hash: Option<String>,
    },
    /// Removes a user with its tokens and ACL entries.
    RemoveUser {
        /// `name@realm`.
        userid: AuthId,
    },
    /// Creates an API token of an existing user.
    CreateToken(TokenRecord),
    /// Removes a token.
    RemoveToken {
        /// `user@realm!name`.
        tokenid: AuthId,
    },
    /// Grants a role on a path (replacing the grant of the same path and id).
    SetAcl(AclEntry),
    /// Removes a grant.
    RemoveAcl {
        /// The path.
        path: String,
        /// The user or token.
        auth_id: AuthId,
    },
    /// Registers an encryption key fingerprint.
    RegisterKey(KeyRecord),
    /// Records a task's start or end (upsert by UPID).
    RecordTask(TaskRecord),
    /// Renews the lease of a node's running tasks: they count as alive until `until` (Unix
    /// seconds). Every node renews its own lease periodically; a running task of a node whose
    /// lease has expired is presumed abandoned and may be fenced off (ended) by another node.
    RenewLease {
        /// The node's name.
        node: String,
        /// The new end of its lease.
        until: i64,
    },
    /// Commits a snapshot as the end of backup task `upid`: as [`Self::CommitSnapshot`], but
    /// only while that task is still running — a task fenced off after its node's lease
    /// expired commits nothing — and the task ends `OK` in the same step.
    CommitBackup {
        /// The snapshot and its manifest.
        entry: SnapshotEntry,
        /// The caller may write to groups of any owner (Datastore.Admin).
        admin_override: bool,
        /// The backup task.
        upid: String,
    },
    /// Adds a notification target.
    CreateNotificationTarget(NotificationTarget),
    /// Removes a notification target.
    RemoveNotificationTarget {
        /// Its name.
        name: String,
    },
    /// Enables or disables a user, or changes its comment. Disabling refuses its tokens and
    /// every ticket issued before it, even once enabled again.
    UpdateUser {
        /// `name@realm`.
        userid: AuthId,
        /// Enable or disable (unchanged if `None`).
        enabled: Option<bool>,
        /// New comment (unchanged if `None`).
        comment: Option<String>,
    },
    /// Enables or disables a token, or changes its expiry or comment.
    UpdateToken {
        /// `user@realm!name`.
        tokenid: AuthId,
        /// Enable or disable (unchanged if `None`).
        enabled: Option<bool>,
        /// New expiry, epoch seconds, 0 for never (unchanged if `None`).
        expires: Option<i64>,
        /// New comment (unchanged if `None`).
        comment: Option<String>,
    },
    /// Records a site or changes its role: at most one primary; a witness site holds no
    /// datastore and only witness nodes.
    SetSite(SiteRecord),
    /// Every chunk of `snapshot` is present on its placement nodes at mirror site `site`: a
    /// restore there needs nothing from elsewhere.
    MarkComplete {
        /// The datastore.
        datastore: DatastoreName,
        /// The snapshot.
        snapshot: SnapshotRef,
        /// The mirror site.
        site: SiteId,
    },
}

impl fmt::Display for MetaCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bootstrap { info, node, .. } => {
                write!(f, "bootstrap cluster {} on {}", info.cluster_id, node.name)
            }
            Self::CreateJoinToken(t) => write!(f, "create join token (expires {})", t.expires),
            Self::Join { node, .. } => write!(f, "join node {} ({})", node.name, node.site),
            Self::SetNodeRole { id, role } => write!(f, "set role of node {id} to {role:?}"),
            Self::RemoveNode { id } => write!(f, "remove node {id}"),
            Self::BumpEpoch => write!(f, "bump cluster epoch"),
            Self::CreateDatastore(d) => write!(f, "create datastore {} at {}", d.name, d.site),
            Self::RemoveDatastore { name } => write!(f, "remove datastore {name}"),
            Self::CreateNamespace { datastore, ns } => {
                write!(f, "create namespace {ns} in {datastore}")
            }
            Self::CommitSnapshot { entry, .. } => {
                write!(f, "commit snapshot {}:{}", entry.datastore, entry.snapshot)
            }
            Self::ForgetSnapshot {
                datastore,
                snapshot,
            } => write!(f, "forget snapshot {datastore}:{snapshot}"),
            Self::SetProtected {
                datastore,
                snapshot,
                protected,
            } => write!(f, "set protected={protected} on {datastore}:{snapshot}"),
            Self::SetQuarantine {
                datastore,
                quarantined,
            } => write!(f, "set quarantined={quarantined} on datastore {datastore}"),
            Self::SetVerify {
                datastore,
                snapshot,
                verify,
            } => write!(f, "set verify={verify:?} on {datastore}:{snapshot}"),
            Self::CreateUser(u) => write!(f, "create user {}", u.userid),
            Self::CreateRemote(r) => write!(
                f,
                "create remote {} ({}:{} as {}, fingerprint {})",
                r.name, r.host, r.port, r.auth_id, r.fingerprint
            ),
            Self::RemoveRemote { name } => write!(f, "remove remote {name}"),
            Self::CreateJob(j) => write!(
                f,
                "create job {} ({:?} on {}, schedule '{}')",
                j.id, j.kind, j.datastore, j.schedule
            ),
            Self::RemoveJob { id } => write!(f, "remove job {id}"),
            Self::JobStarted { id, scheduled } => write!(f, "start job {id} (run of {scheduled})"),
            Self::SetPassword {
                userid,
                password_hash,
            } => write!(
                f,
                "{} the password of {userid}",
                if password_hash.is_some() {
                    "set"
                } else {
                    "clear"
                }
            ),
            Self::RemoveUser { userid } => write!(f, "remove user {userid}"),
            Self::CreateToken(t) => write!(f, "create token {}", t.tokenid),
            Self::RemoveToken { tokenid } => write!(f, "remove token {tokenid}"),
            Self::SetAcl(a) => write!(f, "grant {} on {} to {}", a.role, a.path, a.auth_id),
            Self::RemoveAcl { path, auth_id } => write!(f, "revoke {path} from {auth_id}"),
            Self::RegisterKey(k) => write!(f, "register key {}", k.fingerprint),
            Self::RecordTask(t) => write!(f, "record task {} as {:?}", t.upid, t.state),
            Self::RenewLease { node, until } => write!(f, "renew lease of {node} until {until}"),
            Self::CreateNotificationTarget(t) => write!(
                f,
                "create notification target {} ({}, {} and above)",
                t.name, t.endpoint, t.min_severity
            ),
            Self::RemoveNotificationTarget { name } => {
                write!(f, "remove notification target {name}")
            }
            Self::UpdateUser {
                userid, enabled, ..
            } => match enabled {
                Some(true) => write!(f, "enable user {userid}"),
                Some(false) => write!(f, "disable user {userid}"),
                None => write!(f, "update user {userid}"),
            },
            Self::UpdateToken {
                tokenid,
                enabled,
                expires,
                ..
            } => {
                match enabled {
                    Some(true) => write!(f, "enable token {tokenid}")?,
                    Some(false) => write!(f, "disable token {tokenid}")?,
                    None => write!(f, "update token {tokenid}")?,
                }
                match expires {
                    Some(0) => write!(f, ", never expires"),
                    Some(t) => write!(f, ", expires {t}"),
                    None => Ok(()),
                }
            }
            Self::SetSite(site) => write!(f, "set site {} to {}", site.name, site.role),
            Self::MarkComplete {
                datastore,
                snapshot,
                site,
            } => write!(f, "snapshot {datastore}:{snapshot} complete at site {site}"),
            Self::CommitBackup { entry, upid, .. } => write!(
                f,
                "commit snapshot {}:{} (task {upid})",
                entry.datastore, entry.snapshot
            ),
        }
    }
}

//! The records of cluster metadata, as the Raft state machine stores them and the API shows
//! them. Stored with postcard (field order is the format: fields are only ever appended in a
//! new record version) and shown as JSON.

use serde::{Deserialize, Serialize};

use crate::{AuthId, DatastoreName, Fingerprint, Namespace, Role, SiteId, SnapshotRef};

/// What a node does in the Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Votes and stores chunks of its site's datastores.
    Voter,
    /// Follows the log without voting (tape node, extra storage).
    Learner,
    /// A node of a witness site: votes and keeps the whole log, never holds a datastore or a
    /// chunk (DESIGN's tie-breaker at a third location).
    #[serde(alias = "tie-breaker")]
    Witness,
}

/// What a site is for; agreed through Raft (set at `init`, changed with
/// `ironcore-backup cluster site set`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteRole {
    /// Takes the backups; at most one site is primary.
    Primary,
    /// Holds copies of the Primary's data and takes over when it is lost.
    Backup,
    /// Votes only (its nodes hold no datastore and take no chunk): the third location that
    /// keeps a quorum when either data site is lost.
    Witness,
}

impl std::fmt::Display for SiteRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Primary => "primary",
            Self::Backup => "backup",
            Self::Witness => "witness",
        })
    }
}

impl std::str::FromStr for SiteRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary" => Ok(Self::Primary),
            "backup" => Ok(Self::Backup),
            "witness" => Ok(Self::Witness),
            other => Err(format!(
                "site role '{other}' is not primary, backup or witness"
            )),
        }
    }
}

/// A site of the cluster and its role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// Its name, as nodes name it in their configuration (`site = "..."`).
    pub name: SiteId,
    /// What it is for.
    pub role: SiteRole,
    /// When the role was last set (epoch seconds).
    pub changed: i64,
    /// The most mirroring into this site may use of the link from the other sites, in MiB/s
    /// (0 = unlimited); the site's storage nodes share it evenly.
    pub bwlimit: u64,
}

/// A cluster member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Raft id.
    pub id: u64,
    /// Unique name (`node1`).
    pub name: String,
    /// The site it stands in.
    pub site: SiteId,
    /// Voter, learner or witness.
    pub role: NodeRole,
    /// QUIC address (`host:port`) peers dial.
    pub address: String,
    /// HTTPS API address (`host:port`).
    pub api_address: String,
    /// Pinned certificate fingerprints (two during a certificate change).
    pub fingerprints: Vec<Fingerprint>,
    /// When it joined (epoch seconds).
    pub joined: i64,
}

/// Cluster-wide identity and fencing state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster id every message carries (hex of 16 bytes).
    pub cluster_id: String,
    /// Bumped by a forced failover; nodes of an older epoch are refused.
    pub epoch: u64,
    /// When the cluster was created.
    pub created: i64,
    /// The key (hex, 32 random bytes) that signs login tickets, so every node accepts them.
    /// Never shown through the API.
    #[serde(default)]
    pub ticket_key: String,
}

/// A one-time join token as stored: only the SHA-256 of its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    /// SHA-256 of the secret (hex).
    pub secret_hash: String,
    /// Until when it may be used (epoch seconds).
    pub expires: i64,
    /// The node that used it; a used token never works again.
    pub used_by: Option<String>,
    /// Who created it.
    pub created_by: AuthId,
}

/// A datastore: a directory on each storage node of its site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatastoreConfig {
    /// Its name.
    pub name: DatastoreName,
    /// The site whose storage nodes hold it.
    pub site: SiteId,
    /// The directory on each of those nodes.
    pub path: String,
    /// How many nodes hold each chunk (capped by the nodes available).
    pub copies: u8,
    /// Free text.
    pub comment: String,
    /// When it was created.
    pub created: i64,
    /// Quarantined: new backups and garbage collection are refused until an operator lifts it.
    #[serde(default)]
    pub quarantined: bool,
    /// Other sites that keep copies, filled by continuous mirroring after each commit here
    /// (`--copies primary=2,backup=1`): each site's storage nodes pull their share.
    #[serde(default)]
    pub mirrors: Vec<SiteCopies>,
    /// When a backup is acknowledged: once the datastore's own site holds its copies
    /// (`async`, mirroring follows), or once every mirror site holds its copies too (`sync`).
    #[serde(default)]
    pub mirror: MirrorMode,
}

/// When a backup to a datastore with mirror sites is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorMode {
    /// Once the datastore's own site holds its copies; the mirror sites pull theirs after.
    #[default]
    Async,
    /// Once every mirror site holds its copies too: nothing acknowledged is lost with the
    /// datastore's whole site (RPO 0 for data), at the cost of the link's latency and rate.
    Sync,
}

impl std::fmt::Display for MirrorMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Async => "async",
            Self::Sync => "sync",
        })
    }
}

impl std::str::FromStr for MirrorMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "async" => Ok(Self::Async),
            "sync" => Ok(Self::Sync),
            other => Err(format!("mirror mode '{other}' is not async or sync")),
        }
    }
}

/// How many copies a site keeps of a datastore's chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCopies {
    /// The site.
    pub site: SiteId,
    /// How many of its storage nodes hold each chunk (capped by the nodes there).
    pub copies: u8,
}

/// Whether a snapshot was verified and what came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyStatus {
    /// Never verified.
    None,
    /// Every chunk re-read and re-hashed fine.
    Ok,
    /// A chunk was bad or missing.
    Failed,
}

/// A committed snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Its datastore.
    pub datastore: DatastoreName,
    /// Namespace, group and time.
    pub snapshot: SnapshotRef,
    /// The encoded, signed manifest (chunkstore's format).
    #[serde(with = "hex::serde")]
    pub manifest: Vec<u8>,
    /// Logical size of its archives.
    pub size: u64,
    /// The key it was encrypted with, if any.
    pub key_fingerprint: Option<Fingerprint>,
    /// Protected snapshots are never pruned or forgotten.
    pub protected: bool,
    /// Verification state.
    pub verify: VerifyStatus,
    /// When it was last verified (epoch seconds).
    #[serde(default)]
    pub verified_at: Option<i64>,
    /// Who wrote it.
    pub owner: AuthId,
    /// Where its chunks were placed (node names), for restores and repairs.
    pub nodes: Vec<String>,
    /// The mirror sites where every chunk it references was verified present (its own
    /// datastore's site holds it from the commit on).
    #[serde(default)]
    pub complete_at: Vec<SiteId>,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// `name@realm`.
    pub userid: AuthId,
    /// Argon2id PHC string of the password, if the user may log in with one.
    pub password_hash: Option<String>,
    /// Disabled users and their tokens are refused.
    pub enabled: bool,
    /// Free text.
    pub comment: String,
}

/// An API token; its secret is shown once, only its SHA-256 is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// `user@realm!name`.
    pub tokenid: AuthId,
    /// SHA-256 of the secret (hex).
    pub secret_hash: String,
    /// Epoch seconds after which it is refused (0 = never).
    pub expires: i64,
    /// Free text.
    pub comment: String,
}

/// One ACL grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// `/`, `/datastore/{store}` or `/datastore/{store}/{ns…}`.
    pub path: String,
    /// The user or token granted.
    pub auth_id: AuthId,
    /// What is granted.
    pub role: Role,
}

/// An encryption key the cluster knows (by fingerprint only; never the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// Free text (`project key 2026`).
    pub comment: String,
    /// When it was registered.
    pub added: i64,
}

/// How a task ended, or that it still runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    /// Still running.
    Running,
    /// Finished without error.
    Ok,
    /// Finished with warnings (count).
    Warnings(u32),
    /// Failed with this error.
    Error(String),
}

/// A task as recorded cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// `UPID:{node}:{pid}:{pstart}:{task_id}:{starttime}:{type}:{id}:{auth_id}:`.
    pub upid: String,
    /// The node running it.
    pub node: String,
    /// `backup`, `restore`, `gc`, …
    pub kind: String,
    /// What it works on (`store:host/web01`).
    pub worker_id: String,
    /// Who started it.
    pub auth_id: AuthId,
    /// Start time.
    pub start: i64,
    /// End time, once ended.
    pub end: Option<i64>,
    /// Its state.
    pub state: TaskState,
}

/// One entry of the append-only audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log (1, 2, …).
    pub seq: u64,
    /// When it was proposed.
    pub at: i64,
    /// Who proposed it.
    pub actor: AuthId,
    /// What was asked (the command, without secrets).
    pub what: String,
    /// `ok` or the reason it was refused.
    pub result: String,
}

/// A namespace of a datastore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// The datastore.
    pub datastore: DatastoreName,
    /// The namespace.
    pub ns: Namespace,
}

/// What a scheduled job does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Verify every snapshot of the datastore (repairing short copies).
    Verify,
    /// Garbage collection.
    Gc,
    /// Prune every group of a namespace.
    Prune {
        /// The namespace.
        ns: Namespace,
        /// What to keep.
        keep: crate::KeepOptions,
    },
    /// Sync with a remote: pull copies the snapshots of the remote's datastore that this one
    /// lacks; push copies this datastore's snapshots that the remote's lacks.
    Sync {
        /// Push (this cluster sends) rather than pull (this cluster fetches).
        push: bool,
        /// The registered remote.
        remote: String,
        /// Its datastore.
        remote_store: crate::DatastoreName,
        /// Filters (`backup-id:TYPE/ID`, `namespace:NS`, `keep-weekly=*`, …), OR-combined;
        /// none = everything.
        include: Vec<String>,
        /// Bandwidth limit in MiB/s (0 = unlimited).
        limit_mib: u64,
        /// Push only: encrypt unencrypted snapshots on the way with the project key of this
        /// fingerprint ("Encrypt on push"); `None` sends them as they are.
        #[serde(default)]
        encrypt: Option<crate::Fingerprint>,
    },
}

/// A job the leader's scheduler runs when its schedule says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its name (`a-z`, `0-9`, `-`, `_`; up to 32).
    pub id: String,
    /// The datastore it works on.
    pub datastore: DatastoreName,
    /// What it does.
    pub kind: JobKind,
    /// When (see the node's `schedule` module; UTC).
    pub schedule: String,
    /// Disabled jobs do not run.
    pub enabled: bool,
    /// Free text.
    pub comment: String,
    /// Who created it; runs are tasks of this user or token.
    pub owner: AuthId,
    /// When it was created (epoch seconds); the first run is the first scheduled time after.
    pub created: i64,
    /// The scheduled time of the last run started.
    pub last_run: Option<i64>,
}

/// Another Ironcore cluster (or site) that sync jobs push to or pull from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRecord {
    /// Its name here (`a-z`, `0-9`, `-`, `_`; up to 32).
    pub name: String,
    /// Host name or address of one of its nodes.
    pub host: String,
    /// Its API port (8007).
    pub port: u16,
    /// The API token used there (`user@realm!name`).
    pub auth_id: AuthId,
    /// That token's secret (never shown through the API).
    pub secret: String,
    /// The pinned certificate fingerprint of that node.
    pub fingerprint: Fingerprint,
    /// Free text.
    pub comment: String,
}

/// How severe an event is, for notification rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something finished as planned.
    Info,
    /// Finished, with warnings.
    Warning,
    /// Failed.
    Error,
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "error" => Ok(Self::Error),
            other => Err(format!(
                "severity '{other}' is not one of info, warning, error"
            )),
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationTarget {
    /// Its name (`a-z`, `0-9`, `-`, `_`; up to 32).
    pub name: String,
    /// How events get there.
    pub endpoint: NotifyEndpoint,
    /// Events below this severity are not sent.
    pub min_severity: Severity,
    /// Free text.
    pub comment: String,
}

/// How a notification target is reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEndpoint {
    /// Each event as a JSON `POST` to this `http://` or `https://` URL (https is checked
    /// against the system's CA certificates).
    Webhook {
        /// The URL.
        url: String,
    },
    /// Each event as a plain-text mail through an SMTP relay that accepts it without
    /// authentication (typically the host's own MTA on port 25).
    Smtp {
        /// `host:port` of the relay.
        server: String,
        /// The sender address.
        from: String,
        /// The recipients.
        to: Vec<String>,
    },
}

impl std::fmt::Display for NotifyEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Webhook { url } => write!(f, "webhook {url}"),
            Self::Smtp { server, to, .. } => write!(f, "smtp {} via {server}", to.join(",")),
        }
    }
}

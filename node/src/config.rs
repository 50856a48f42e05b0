//! The daemon's TOML configuration: parsed strictly (unknown keys refused), validated once
//! into typed values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ironcore_types::SiteId;
use serde::Deserialize;

use crate::NodeError;

/// The file as written (kebab-case keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    name: String,
    site: String,
    data_dir: PathBuf,
    log_dir: Option<PathBuf>,
    listen: SocketAddr,
    api_listen: SocketAddr,
    advertise: Option<String>,
    api_advertise: Option<String>,
    #[serde(default)]
    datastore_prefix: Option<PathBuf>,
    #[serde(default)]
    raft: RawRaft,
    task_lease_secs: Option<u64>,
    #[serde(default)]
    project_key: Option<ProjectKeyConfig>,
    #[serde(default)]
    peer_addresses: BTreeMap<String, SocketAddr>,
}

/// `[project-key]`: the key file this node encrypts with on push, and the file holding its
/// passphrase (readable by the daemon's user only).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectKeyConfig {
    /// The key file (`ironcore-backup key create`).
    pub keyfile: PathBuf,
    /// A file whose first line is the key file's passphrase.
    pub passphrase_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRaft {
    heartbeat_ms: Option<u64>,
    election_timeout_min_ms: Option<u64>,
    election_timeout_max_ms: Option<u64>,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's unique name (also its certificate's subject).
    pub name: ironcore_types::NodeId,
    /// The site it stands in.
    pub site: SiteId,
    /// Where it keeps its identity, Raft stores and state.
    pub data_dir: PathBuf,
    /// Where it writes one JSON log file per subsystem.
    pub log_dir: PathBuf,
    /// UDP address of the QUIC transport.
    pub listen: SocketAddr,
    /// TCP address of the HTTPS API.
    pub api_listen: SocketAddr,
    /// The QUIC address peers dial (`host:port`).
    pub advertise: String,
    /// The HTTPS address clients and peers use (`host:port`).
    pub api_advertise: String,
    /// Prepended to every datastore path on this node (local test clusters run several nodes
    /// on one machine); `/` in production.
    pub datastore_prefix: PathBuf,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout bounds.
    pub election_timeout: (Duration, Duration),
    /// How long this node's running tasks count as alive without a renewal (renewed every
    /// third of it); see [`crate::cluster::lease`].
    pub task_lease: Duration,
    /// The project key, when push sync jobs may encrypt on this node (see
    /// [`crate::sync::project_key`]).
    pub project_key: Option<ProjectKeyConfig>,
    /// `[peer-addresses]`: where this node reaches the named peers instead of the address
    /// they advertise (a NAT between sites, or a link emulator in front of them).
    pub peer_addresses: BTreeMap<String, SocketAddr>,
}

impl NodeConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path).map_err(|e| NodeError::Config {
            path: path.to_path_buf(),
            detail: format!("cannot read it: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Validates configuration `text` (read from `path`, named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, NodeError> {
        let bad = |detail: String| NodeError::Config {
            path: path.to_path_buf(),
            detail,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let name = raw.name.parse().map_err(|e| bad(format!("name: {e}")))?;
        let site = raw.site.parse().map_err(|e| bad(format!("site: {e}")))?;
        if !raw.data_dir.is_absolute() {
            return Err(bad(format!(
                "data-dir '{}' must be an absolute path",
                raw.data_dir.display()
            )));
        }
        let ms = Duration::from_millis;
        let heartbeat = ms(raft_ms(&bad, "heartbeat-ms", raw.raft.heartbeat_ms, 250)?);
        let min = ms(raft_ms(
            &bad,
            "election-timeout-min-ms",
            raw.raft.election_timeout_min_ms,
            1500,
        )?);
        let max = ms(raft_ms(
            &bad,
            "election-timeout-max-ms",
            raw.raft.election_timeout_max_ms,
            3000,
        )?);
        if !(heartbeat < min && min < max) {
            return Err(bad(
                "[raft] needs heartbeat-ms < election-timeout-min-ms < election-timeout-max-ms"
                    .into(),
            ));
        }
        let task_lease = Duration::from_secs(raw.task_lease_secs.unwrap_or(60));
        if task_lease < Duration::from_secs(3) {
            return Err(bad(format!(
                "task-lease-secs = {} is too short: use 3 or more (default 60)",
                task_lease.as_secs()
            )));
        }
        if let Some(k) = &raw.project_key {
            for (key, path) in [
                ("keyfile", &k.keyfile),
                ("passphrase-file", &k.passphrase_file),
            ] {
                if !path.is_absolute() {
                    return Err(bad(format!(
                        "[project-key] {key} '{}' must be an absolute path",
                        path.display()
                    )));
                }
            }
        }
        for peer in raw.peer_addresses.keys() {
            peer.parse::<ironcore_types::NodeId>()
                .map_err(|e| bad(format!("[peer-addresses] '{peer}': {e}")))?;
        }
        let advertise = raw.advertise.unwrap_or_else(|| raw.listen.to_string());
        let api_advertise = raw
            .api_advertise
            .unwrap_or_else(|| raw.api_listen.to_string());
        for (key, value) in [("advertise", &advertise), ("api-advertise", &api_advertise)] {
            if value
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                return Err(bad(format!("{key} '{value}' must be HOST:PORT")));
            }
        }
        Ok(Self {
            name,
            site,
            log_dir: raw.log_dir.unwrap_or_else(|| raw.data_dir.join("log")),
            data_dir: raw.data_dir,
            listen: raw.listen,
            api_listen: raw.api_listen,
            advertise,
            api_advertise,
            datastore_prefix: raw.datastore_prefix.unwrap_or_else(|| PathBuf::from("/")),
            heartbeat,
            election_timeout: (min, max),
            task_lease,
            project_key: raw.project_key,
            peer_addresses: raw.peer_addresses,
        })
    }

    /// Where datastore `path` (absolute, as recorded in Raft) lives on this node.
    pub fn local_datastore_path(&self, path: &str) -> PathBuf {
        self.datastore_prefix.join(path.trim_start_matches('/'))
    }
}

fn raft_ms(
    bad: &impl Fn(String) -> NodeError,
    key: &str,
    v: Option<u64>,
    default: u64,
) -> Result<u64, NodeError> {
    match v {
        None => Ok(default),
        Some(0) => Err(bad(format!("[raft] {key} must be above 0"))),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "node1"
site = "primary"
data-dir = "/var/lib/ironcore-backup"
listen = "0.0.0.0:8007"
api-listen = "0.0.0.0:8007"
advertise = "10.0.0.1:8007"
"#;

    #[test]
    fn example_config_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/ironcore-node.toml"
        ))
        .unwrap();
        let c = NodeConfig::parse(Path::new("example"), &text).unwrap();
        assert_eq!(c.name.as_str(), "node1");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let c = NodeConfig::parse(Path::new("x"), GOOD).unwrap();
        assert_eq!(c.api_advertise, "0.0.0.0:8007");
        assert_eq!(c.task_lease, Duration::from_secs(60));
        let e =
            NodeConfig::parse(Path::new("x"), &format!("task-lease-secs = 1\n{GOOD}")).unwrap_err();
        assert!(
            e.to_string().contains("task-lease-secs = 1 is too short"),
            "{e}"
        );
        let e = NodeConfig::parse(Path::new("x"), &format!("{GOOD}\ncolour = 1")).unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e = NodeConfig::parse(Path::new("x"), &GOOD.replace("/var", "var")).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = NodeConfig::parse(
            Path::new("x"),
            &format!("{GOOD}\n[raft]\nheartbeat-ms = 5000\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("heartbeat-ms <"), "{e}");
    }

    #[test]
    fn peer_addresses_name_nodes_and_give_socket_addresses() {
        let section = "\n[peer-addresses]\nnode3 = \"127.0.0.1:8303\"\n";
        let c = NodeConfig::parse(Path::new("x"), &format!("{GOOD}{section}")).unwrap();
        assert_eq!(
            c.peer_addresses.get("node3"),
            Some(&"127.0.0.1:8303".parse().unwrap())
        );
        let e = NodeConfig::parse(
            Path::new("x"),
            &format!("{GOOD}{}", section.replace("127.0.0.1:8303", "far-away")),
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid socket address"), "{e}");
        let e = NodeConfig::parse(
            Path::new("x"),
            &format!("{GOOD}{}", section.replace("node3", "\"no de\"")),
        )
        .unwrap_err();
        assert!(e.to_string().contains("[peer-addresses] 'no de'"), "{e}");
    }

    #[test]
    fn a_project_key_needs_both_files_by_absolute_path() {
        let section = "\n[project-key]\nkeyfile = \"/etc/k\"\npassphrase-file = \"/etc/p\"\n";
        let c = NodeConfig::parse(Path::new("x"), &format!("{GOOD}{section}")).unwrap();
        let k = c.project_key.unwrap();
        assert_eq!(
            (k.keyfile.as_path(), k.passphrase_file.as_path()),
            (Path::new("/etc/k"), Path::new("/etc/p"))
        );
        let e = NodeConfig::parse(
            Path::new("x"),
            &format!("{GOOD}{}", section.replace("/etc/p", "p")),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("passphrase-file 'p' must be an absolute"),
            "{e}"
        );
        let e = NodeConfig::parse(
            Path::new("x"),
            &format!("{GOOD}\n[project-key]\nkeyfile = \"/etc/k\"\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("passphrase-file"), "{e}");
    }
}

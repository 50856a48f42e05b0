//! Is the datastore's directory there, and is it the right one?
//!
//! A long-running process must survive its storage going away and coming back (an NFS server
//! restart, a missing mount, a directory moved away). The store never holds a directory handle
//! across operations; it works by path, and every operation starts from a cheap probe when the
//! last one failed. The probe reads the marker file written at creation: its absence means the
//! path is there but the datastore is not (an empty mount point); another id means a different
//! datastore is mounted there.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file at the root of every datastore.
pub const MARKER_FILE: &str = ".ironcore-datastore";

/// What the marker file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Marker {
    pub version: u32,
    pub name: String,
    pub uuid: String,
}

/// Whether a datastore can be used now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Health {
    /// Reachable and recognised.
    Online,
    /// Not usable, and why.
    Offline {
        /// What the probe found.
        reason: String,
    },
}

impl Health {
    /// Whether the datastore is online.
    pub fn is_online(&self) -> bool {
        matches!(self, Health::Online)
    }
}

/// ESTALE: the file handle refers to a file system object the server no longer knows.
const ESTALE: i32 = 116;

/// Describes an I/O error on the datastore root for the operator.
pub(crate) fn describe(path: &Path, e: &io::Error) -> String {
    match (e.kind(), e.raw_os_error()) {
        (_, Some(ESTALE)) => format!(
            "stale file handle on '{}': the storage server restarted or the export changed",
            path.display()
        ),
        (io::ErrorKind::NotFound, _) => format!(
            "'{}' does not exist: the directory was removed or its file system is not mounted",
            path.display()
        ),
        _ => format!("'{}' cannot be read: {e}", path.display()),
    }
}

/// Probes the datastore at `root`, expecting the marker with `uuid`.
pub(crate) fn probe(root: &Path, uuid: &str) -> Health {
    let offline = |reason: String| Health::Offline { reason };
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return offline(format!("'{}' is not a directory", root.display())),
        Err(e) => return offline(describe(root, &e)),
    }
    let marker_path = root.join(MARKER_FILE);
    let marker = match fs::read(&marker_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return offline(format!(
                "'{}' has no {MARKER_FILE} marker: the datastore's file system is probably not \
                 mounted there",
                root.display()
            ));
        }
        Err(e) => return offline(describe(&marker_path, &e)),
    };
    match serde_json::from_slice::<Marker>(&marker) {
        Ok(m) if m.uuid == uuid => {}
        Ok(m) => {
            return offline(format!(
                "'{}' holds datastore '{}' (id {}), not the expected id {uuid}",
                root.display(),
                m.name,
                m.uuid
            ));
        }
        Err(e) => {
            return offline(format!(
                "marker file '{}' is unreadable: {e}",
                marker_path.display()
            ));
        }
    }
    match fs::metadata(root.join(".chunks")) {
        Ok(m) if m.is_dir() => Health::Online,
        Ok(_) => offline(format!("'{}/.chunks' is not a directory", root.display())),
        Err(e) => offline(describe(&root.join(".chunks"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_names_each_way_a_datastore_can_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ds");
        let reason = |h: Health| match h {
            Health::Offline { reason } => reason,
            Health::Online => "online".into(),
        };
        assert!(reason(probe(&root, "u1")).contains("does not exist"));
        fs::create_dir_all(root.join(".chunks")).unwrap();
        assert!(reason(probe(&root, "u1")).contains("not mounted"));
        let marker = Marker {
            version: 1,
            name: "ds".into(),
            uuid: "u2".into(),
        };
        fs::write(root.join(MARKER_FILE), serde_json::to_vec(&marker).unwrap()).unwrap();
        assert!(reason(probe(&root, "u1")).contains("not the expected id"));
        assert_eq!(probe(&root, "u2"), Health::Online);
    }
}

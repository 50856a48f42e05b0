//! Backup groups (`host/web01`, `vm/12345`, `ct/101`) and references to their snapshots.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{Namespace, ParseError};

/// What kind of source a backup group holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupType {
    /// A host's directory tree.
    Host,
    /// A virtual machine's disk images.
    Vm,
    /// A container's root filesystem.
    Ct,
}

impl BackupType {
    /// The word used in paths and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Host => "host",
            BackupType::Vm => "vm",
            BackupType::Ct => "ct",
        }
    }
}

impl FromStr for BackupType {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "host" => Ok(BackupType::Host),
            "vm" => Ok(BackupType::Vm),
            "ct" => Ok(BackupType::Ct),
            _ => Err(ParseError::Name {
                what: "backup type",
                input: s.to_string(),
                rule: "use host, vm or ct",
            }),
        }
    }
}

/// A backup group: the series of snapshots of one source.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BackupGroup {
    /// The kind of source.
    pub ty: BackupType,
    /// The source's id (`web01`, `12345`).
    pub id: String,
}

impl BackupGroup {
    /// A validated group.
    pub fn new(ty: BackupType, id: &str) -> Result<Self, ParseError> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(ParseError::Name {
                what: "backup id",
                input: id.to_string(),
                rule: "use 1-128 characters from A-Z a-z 0-9 - _ . and do not start with a dot",
            });
        }
        Ok(Self {
            ty,
            id: id.to_string(),
        })
    }
}

impl FromStr for BackupGroup {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ty, id) = s.split_once('/').ok_or_else(|| ParseError::Name {
            what: "backup group",
            input: s.to_string(),
            rule: "write it as TYPE/ID, for example host/web01 or vm/12345",
        })?;
        BackupGroup::new(ty.parse()?, id)
    }
}

impl fmt::Display for BackupGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ty.as_str(), self.id)
    }
}

impl fmt::Debug for BackupGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupGroup({self})")
    }
}

/// One snapshot: a group's backup at a point in time (whole seconds, UTC).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The namespace holding the group.
    pub ns: Namespace,
    /// The group.
    pub group: BackupGroup,
    /// Backup time in seconds since the Unix epoch.
    pub time: i64,
}

impl SnapshotRef {
    /// The backup time as RFC 3339 (`2025-01-15T14:30:00Z`).
    pub fn time_string(&self) -> String {
        format_time(self.time)
    }
}

/// Formats epoch seconds as RFC 3339 UTC with whole seconds.
pub fn format_time(epoch: i64) -> String {
    DateTime::<Utc>::from_timestamp(epoch, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("@{epoch}"))
}

impl fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ns.is_root() {
            write!(f, "{}/{}", self.group, self.time_string())
        } else {
            write!(f, "ns/{}/{}/{}", self.ns, self.group, self.time_string())
        }
    }
}

impl fmt::Debug for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotRef({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_parses_type_and_id() {
        let g: BackupGroup = "vm/12345".parse().unwrap();
        assert_eq!(g.ty, BackupType::Vm);
        assert_eq!(g.to_string(), "vm/12345");
        assert!("disk/1".parse::<BackupGroup>().is_err());
        assert!("host".parse::<BackupGroup>().is_err());
        assert!("host/../etc".parse::<BackupGroup>().is_err());
    }

    #[test]
    fn snapshot_displays_with_rfc3339_time() {
        let s = SnapshotRef {
            ns: "prod".parse().unwrap(),
            group: "host/web01".parse().unwrap(),
            time: 1_736_951_400,
        };
        assert_eq!(s.to_string(), "ns/prod/host/web01/2025-01-15T14:30:00Z");
    }
}

//! The typed commands the cluster agrees on, and what applying one returns.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A change to cluster metadata, proposed through Raft (openraft's application data `D`).
///
/// Log entries are stored with postcard, which encodes an enum variant by its position, so this
/// list of variants *is* the wire and disk format: variants are only ever appended, never
/// removed or reordered, and a variant's fields never change once released — a changed command
/// becomes a new variant (`SetKeyV2`), and the state machine keeps applying the old one. The
/// unit test `command_encoding_is_stable` pins the encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets `key` in the generic metadata key space to `value`.
    SetKey {
        /// The key.
        key: String,
        /// Its new value.
        value: Vec<u8>,
    },
    /// Removes `key` from the generic metadata key space (a no-op if absent).
    DeleteKey {
        /// The key.
        key: String,
    },
    /// Changes typed metadata (datastores, snapshots, users, …); see [`crate::MetaCommand`].
    Meta(Box<crate::MetaRequest>),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetKey { key, value } => write!(f, "set-key {key:?} ({} bytes)", value.len()),
            Self::DeleteKey { key } => write!(f, "delete-key {key:?}"),
            Self::Meta(r) => write!(f, "{} (by {})", r.command, r.actor),
        }
    }
}

/// What applying one log entry produced (openraft's response type `R`).
///
/// Same encoding rule as [`Command`]: variants are only appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// A blank or membership entry: nothing to report.
    Applied,
    /// [`Command::SetKey`] was applied.
    Set {
        /// Whether the key already had a value.
        replaced: bool,
    },
    /// [`Command::DeleteKey`] was applied.
    Deleted {
        /// Whether the key existed.
        existed: bool,
    },
    /// [`Command::Meta`] was applied (`Ok`) or refused by the state (`Err(reason)`), in which
    /// case nothing but the audit log changed.
    Meta(Result<(), String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_encoding_is_stable() {
        let set = Command::SetKey {
            key: "a".into(),
            value: vec![7],
        };
        assert_eq!(postcard::to_allocvec(&set).unwrap(), [0, 1, b'a', 1, 7]);
        let del = Command::DeleteKey { key: "a".into() };
        assert_eq!(postcard::to_allocvec(&del).unwrap(), [1, 1, b'a']);
        let r = CommandResult::Deleted { existed: true };
        assert_eq!(postcard::to_allocvec(&r).unwrap(), [2, 1]);
        assert_eq!(set.to_string(), "set-key \"a\" (1 bytes)");
    }
}

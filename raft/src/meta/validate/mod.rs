//! Validating a [`MetaCommand`](crate::MetaCommand) against the state and staging its writes:
//! one module per command family, each with one function per command taking that command's
//! fields. [`apply`](super::apply()) dispatches to them and writes what they staged only if
//! they accept.

pub(crate) mod access;
pub(crate) mod cluster;
pub(crate) mod datastores;
pub(crate) mod encryption;
pub(crate) mod remotes;
pub(crate) mod sites;
pub(crate) mod snapshots;
pub(crate) mod tasks;

use rocksdb::WriteBatch;
use serde::Serialize;

use crate::Error;
use crate::codec::encode;

/// Why a command was refused (shown to the caller as is).
pub(crate) type Refused = String;

/// What a validator returns: `Ok(Err(reason))` when the state refuses the command, `Err` when
/// the state could not be read or a record not encoded.
pub(crate) type Staged = Result<Result<(), Refused>, Error>;

/// The writes of one command, staged until it is accepted.
pub(crate) struct Changes<'a> {
    /// Where the writes go.
    pub(crate) batch: &'a mut WriteBatch,
}

impl Changes<'_> {
    /// Stages `v` (encoded; `what` names it in errors) under `key`.
    pub(crate) fn put<T: Serialize>(
        &mut self,
        what: &'static str,
        key: &[u8],
        v: &T,
    ) -> Result<(), Error> {
        self.batch.put(key, encode(what, v)?);
        Ok(())
    }

    /// Stages the deletion of `key`.
    pub(crate) fn delete(&mut self, key: &[u8]) {
        self.batch.delete(key);
    }
}

/// Whether `name` is a valid job or remote name: 1 to 32 of `a-z`, `0-9`, `-`, `_`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A refusal: `msg` as [`Refused`].
pub(crate) fn refuse<T>(msg: impl Into<String>) -> Result<Result<T, Refused>, Error> {
    Ok(Err(msg.into()))
}

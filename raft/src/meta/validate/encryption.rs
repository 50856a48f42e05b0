//! Validator of encryption key registrations.

use ironcore_types::records::KeyRecord;

use super::{Changes, Staged};
use crate::meta::keys;

/// [`MetaCommand::RegisterKey`](crate::MetaCommand::RegisterKey): always accepted (a fingerprint
/// registered again is replaced).
pub(crate) fn register_key(ch: &mut Changes<'_>, k: &KeyRecord) -> Staged {
    ch.put("key", &keys::key(&k.fingerprint), k)?;
    Ok(Ok(()))
}

//! Who is calling, and what they may do: API tokens checked against Raft, rights = the token's
//! own ACL ∩ its user's ACL (a user's own calls use the user's ACL).

pub mod ticket;

use ironcore_raft::MetaView;
use ironcore_types::{AuthId, DatastoreName, Namespace, OwnerScope, Privilege};
use sha2::{Digest, Sha256};

use crate::{NodeError, Result};

/// The header scheme: `Authorization: IBSAPIToken user@realm!name:secret`.
pub const TOKEN_SCHEME: &str = "IBSAPIToken";

/// SHA-256 of a token secret, as stored (secrets are 256-bit random, so a plain hash is safe).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh 256-bit secret in hex.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token (or user) that authenticated.
    pub auth_id: AuthId,
    /// What it authenticated with, for work forwarded to another node, which checks it itself.
    pub credential: Credential,
}

/// The credential a caller presented (an `Authorization` header value). Work forwarded to
/// another node carries it, and that node authenticates and authorizes the caller itself:
/// it never takes a peer's word for who asked. Its `Debug` form hides the secret.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Credential(String);

impl Credential {
    /// A credential as a caller sends it (`IBSAPIToken ID:SECRET` or a ticket).
    pub fn from_header(header: impl Into<String>) -> Self {
        Self(header.into())
    }

    /// The header value, to authenticate with [`authenticate`].
    pub fn header(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Checks an `Authorization` header value against the tokens in `meta`.
pub fn authenticate(meta: &MetaView, header: Option<&str>, now: i64) -> Result<Caller> {
    let header = header.ok_or_else(|| {
        NodeError::Unauthenticated(format!(
            "send `Authorization: {TOKEN_SCHEME} USER@REALM!TOKEN:SECRET` (the CLI reads IRONCORE_TOKEN) or a login ticket (`ironcore-backup login`)"
        ))
    })?;
    if let Some(ticket) = header.strip_prefix(crate::auth::ticket::TICKET_SCHEME) {
        let key = meta
            .cluster()?
            .map(|c| hex::decode(c.ticket_key).unwrap_or_default())
            .unwrap_or_default();
        let (user, generation) = crate::auth::ticket::check(&key, ticket.trim(), now)?;
        if meta.ticket_generation(&user)? != generation {
            return Err(NodeError::Unauthenticated(format!(
                "the ticket was issued before user {user} was disabled or created anew; log in again"
            )));
        }
        let record = meta
            .user(&user)?
            .ok_or_else(|| NodeError::Unauthenticated(format!("user {user} no longer exists")))?;
        if !record.enabled {
            return Err(NodeError::Unauthenticated(format!(
                "user {user} is disabled"
            )));
        }
        return Ok(Caller {
            auth_id: user,
            credential: Credential(header.to_string()),
        });
    }
    let value = header
        .strip_prefix(TOKEN_SCHEME)
        .map(str::trim_start)
        .ok_or_else(|| {
            NodeError::Unauthenticated(format!(
                "use the {TOKEN_SCHEME} or {} scheme",
                crate::auth::ticket::TICKET_SCHEME
            ))
        })?;
    let (id, secret) = value
        .rsplit_once(':')
        .ok_or_else(|| NodeError::Unauthenticated("write the token as ID:SECRET".into()))?;
    let auth_id: AuthId = id
        .parse()
        .map_err(|e| NodeError::Unauthenticated(format!("{e}")))?;
    let refused =
        || NodeError::Unauthenticated(format!("token {auth_id} is unknown or its secret is wrong"));
    let token = meta.token(&auth_id)?.ok_or_else(refused)?;
    if !constant_time_eq(token.secret_hash.as_bytes(), hash_secret(secret).as_bytes()) {
        return Err(refused());
    }
    if meta.token_disabled(&auth_id)? {
        return Err(NodeError::Unauthenticated(format!(
            "token {auth_id} is disabled; an administrator enables it with `ironcore-backup token update {auth_id} --enable`"
        )));
    }
    if token.expires != 0 && token.expires < now {
        return Err(NodeError::Unauthenticated(format!(
            "token {auth_id} expired; create a new one with `ironcore-backup token create`"
        )));
    }
    let user = meta.user(&auth_id.user())?.ok_or_else(refused)?;
    if !user.enabled {
        return Err(NodeError::Unauthenticated(format!(
            "user {} is disabled",
            user.userid
        )));
    }
    Ok(Caller {
        auth_id,
        credential: Credential(header.to_string()),
    })
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The ACL path of a datastore namespace.
pub fn datastore_path(ds: &DatastoreName, ns: &Namespace) -> String {
    if ns.is_root() {
        format!("/datastore/{ds}")
    } else {
        format!("/datastore/{ds}/{ns}")
    }
}

/// The best scope `id` alone holds for `p` on `path` (grants on the path or any parent).
fn scope_of(meta: &MetaView, id: &AuthId, path: &str, p: Privilege) -> Result<Option<OwnerScope>> {
    let mut best = None;
    for acl in meta.acls()? {
        if acl.auth_id != *id {
            continue;
        }
        let covers =
            acl.path == "/" || path == acl.path || path.starts_with(&format!("{}/", acl.path));
        if !covers {
            continue;
        }
        match acl.role.allows(p) {
            Some(OwnerScope::Any) => return Ok(Some(OwnerScope::Any)),
            Some(OwnerScope::Owned) => best = Some(OwnerScope::Owned),
            None => {}
        }
    }
    Ok(best)
}

/// What `caller` may do with `p` on `path`: a token's rights are its own ∩ its user's.
pub fn check(meta: &MetaView, caller: &Caller, path: &str, p: Privilege) -> Result<OwnerScope> {
    let own = scope_of(meta, &caller.auth_id, path, p)?;
    let scope = if caller.auth_id.is_token() {
        let user = scope_of(meta, &caller.auth_id.user(), path, p)?;
        match (own, user) {
            (Some(OwnerScope::Any), Some(OwnerScope::Any)) => Some(OwnerScope::Any),
            (Some(_), Some(_)) => Some(OwnerScope::Owned),
            _ => None,
        }
    } else {
        own
    };
    scope.ok_or_else(|| {
        NodeError::PermissionDenied(format!(
            "{} lacks {p:?} on {path}; ask an administrator for a role there (Datastore.Backup for backups, Datastore.Reader for restores)",
            caller.auth_id
        ))
    })
}

/// Like [`check`], for an action on one group: with an owner-only grant the caller must own it.
pub fn check_group(
    meta: &MetaView,
    caller: &Caller,
    ds: &DatastoreName,
    ns: &Namespace,
    group: &ironcore_types::BackupGroup,
    p: Privilege,
) -> Result<()> {
    let path = datastore_path(ds, ns);
    match check(meta, caller, &path, p)? {
        OwnerScope::Any => Ok(()),
        OwnerScope::Owned => match meta.group_owner(ds, ns, group)? {
            None if p == Privilege::Backup => Ok(()),
            Some(owner) if owner == caller.auth_id => Ok(()),
            Some(owner) => Err(NodeError::PermissionDenied(format!(
                "group {group} in {path} belongs to {owner}, not {}",
                caller.auth_id
            ))),
            None => Err(NodeError::NotFound(format!(
                "group {group} has no snapshots in {path}"
            ))),
        },
    }
}

//! Who acts: users and API tokens (`user@realm`, `user@realm!name`), and the roles ACLs grant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

fn check_part(what: &'static str, s: &str) -> Result<(), ParseError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ParseError::Name {
            what,
            input: s.to_string(),
            rule: "write USER@REALM or USER@REALM!TOKEN with 1-64 characters from A-Z a-z 0-9 - _ . in each part",
        })
    }
}

/// A user (`root@pam`, `alice@ironcore`) or one of a user's API tokens (`alice@ironcore!nightly`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuthId {
    user: String,
    realm: String,
    token: Option<String>,
}

impl AuthId {
    /// The user part (`alice@ironcore` for both the user and its tokens).
    pub fn user(&self) -> AuthId {
        AuthId {
            user: self.user.clone(),
            realm: self.realm.clone(),
            token: None,
        }
    }

    /// The token name, if this is a token.
    pub fn token_name(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether this names an API token.
    pub fn is_token(&self) -> bool {
        self.token.is_some()
    }

    /// The token `name` of this user.
    pub fn with_token(&self, name: &str) -> Result<AuthId, ParseError> {
        check_part("token name", name)?;
        Ok(AuthId {
            user: self.user.clone(),
            realm: self.realm.clone(),
            token: Some(name.to_string()),
        })
    }
}

impl FromStr for AuthId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (userid, token) = match s.split_once('!') {
            Some((u, t)) => (u, Some(t)),
            None => (s, None),
        };
        let (user, realm) = userid.split_once('@').ok_or_else(|| ParseError::Name {
            what: "user id",
            input: s.to_string(),
            rule: "write USER@REALM (root@pam) or USER@REALM!TOKEN (root@pam!admin)",
        })?;
        check_part("user name", user)?;
        check_part("realm", realm)?;
        if let Some(t) = token {
            check_part("token name", t)?;
        }
        Ok(AuthId {
            user: user.to_string(),
            realm: realm.to_string(),
            token: token.map(str::to_string),
        })
    }
}

impl TryFrom<String> for AuthId {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AuthId> for String {
    fn from(a: AuthId) -> String {
        a.to_string()
    }
}

impl fmt::Display for AuthId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.realm)?;
        if let Some(t) = &self.token {
            write!(f, "!{t}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for AuthId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthId({self})")
    }
}

/// What an ACL entry grants on its path and everything below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Everything, cluster administration included (only on `/`).
    Admin,
    /// Everything on datastores: backup, restore, prune, forget, GC, verify.
    #[serde(rename = "Datastore.Admin")]
    DatastoreAdmin,
    /// Back up, and read or prune the groups it owns.
    #[serde(rename = "Datastore.PowerUser")]
    DatastorePowerUser,
    /// Add snapshots to the groups it owns, and read them back; never prune or forget.
    #[serde(rename = "Datastore.Backup")]
    DatastoreBackup,
    /// Read (list and restore) every snapshot.
    #[serde(rename = "Datastore.Reader")]
    DatastoreReader,
    /// See snapshots and statistics, never their contents.
    #[serde(rename = "Datastore.Audit")]
    DatastoreAudit,
}

/// One thing a caller may want to do; [`Role::allows`] maps roles to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// List and inspect (no contents).
    Audit,
    /// Read snapshot contents of any owner.
    Read,
    /// Create snapshots (in owned groups).
    Backup,
    /// Prune or forget snapshots, protect them (in owned groups for power users).
    Modify,
    /// Administer the datastore or the cluster (GC, verify, users, ACLs, membership).
    Manage,
}

impl Role {
    /// Every role, in order of decreasing power.
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::DatastoreAdmin,
        Role::DatastorePowerUser,
        Role::DatastoreBackup,
        Role::DatastoreReader,
        Role::DatastoreAudit,
    ];

    /// The role's name as written in ACLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::DatastoreAdmin => "Datastore.Admin",
            Role::DatastorePowerUser => "Datastore.PowerUser",
            Role::DatastoreBackup => "Datastore.Backup",
            Role::DatastoreReader => "Datastore.Reader",
            Role::DatastoreAudit => "Datastore.Audit",
        }
    }

    /// Whether the role grants `p`. `owner_only` is true when the grant applies only to
    /// groups the caller owns (Backup and PowerUser roles).
    pub fn allows(self, p: Privilege) -> Option<OwnerScope> {
        use OwnerScope::{Any, Owned};
        use Privilege::*;
        match (self, p) {
            (Role::Admin, _) => Some(Any),
            (Role::DatastoreAdmin, Audit | Read | Backup | Modify) => Some(Any),
            (Role::DatastoreAdmin, Manage) => Some(Any),
            (Role::DatastorePowerUser, Audit) => Some(Any),
            (Role::DatastorePowerUser, Read | Backup | Modify) => Some(Owned),
            (Role::DatastoreBackup, Audit) => Some(Any),
            (Role::DatastoreBackup, Read | Backup) => Some(Owned),
            (Role::DatastoreReader, Audit | Read) => Some(Any),
            (Role::DatastoreAudit, Audit) => Some(Any),
            _ => None,
        }
    }
}

/// Whose groups a grant covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerScope {
    /// Every group.
    Any,
    /// Only groups the caller owns.
    Owned,
}

impl FromStr for Role {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseError::Name {
                what: "role",
                input: s.to_string(),
                rule: "use Admin, Datastore.Admin, Datastore.PowerUser, Datastore.Backup, Datastore.Reader or Datastore.Audit",
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_ids_parse_and_print() {
        let t: AuthId = "alice@ironcore!nightly".parse().unwrap();
        assert!(t.is_token());
        assert_eq!(t.user().to_string(), "alice@ironcore");
        assert_eq!(t.to_string(), "alice@ironcore!nightly");
        assert!("alice".parse::<AuthId>().is_err());
        assert!("a@b!".parse::<AuthId>().is_err());
        assert!("a b@c".parse::<AuthId>().is_err());
    }

    #[test]
    fn backup_role_never_modifies() {
        assert_eq!(Role::DatastoreBackup.allows(Privilege::Modify), None);
        assert_eq!(
            Role::DatastoreBackup.allows(Privilege::Read),
            Some(OwnerScope::Owned)
        );
        assert_eq!(
            "datastore.backup".parse::<Role>(),
            Ok(Role::DatastoreBackup)
        );
    }
}

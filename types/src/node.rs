//! Names of cluster things: datastores, nodes and sites.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

fn check_name(what: &'static str, s: &str) -> Result<(), ParseError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ParseError::Name {
            what,
            input: s.to_string(),
            rule: "use 1-64 characters from A-Z a-z 0-9 - _ . starting with a letter or digit",
        })
    }
}

macro_rules! name_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                check_name($what, s)?;
                Ok(Self(s.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                check_name($what, &s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

name_newtype!(
    /// The name of a datastore (`ibs-primary`).
    DatastoreName,
    "datastore name"
);
name_newtype!(
    /// The name of a cluster node (`pbs-a1`).
    NodeId,
    "node id"
);
name_newtype!(
    /// The name of a site (`primary`, `backup`, `tiebreaker`).
    SiteId,
    "site id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert!("ibs-primary".parse::<DatastoreName>().is_ok());
        assert!("-x".parse::<DatastoreName>().is_err());
        assert!("".parse::<NodeId>().is_err());
        assert!("a/b".parse::<SiteId>().is_err());
    }
}

//! Namespaces: a datastore's nested folders of backup groups (`prod/eu/web`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// How deep namespaces may nest (as in Proxmox Backup Server).
pub const MAX_NAMESPACE_DEPTH: usize = 7;

/// A namespace path inside a datastore. The root namespace has no components.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Namespace(Vec<String>);

impl Namespace {
    /// The root namespace.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Whether this is the root namespace.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The child namespace `self/name`.
    pub fn child(&self, name: &str) -> Result<Self, ParseError> {
        check_component(name)?;
        if self.0.len() >= MAX_NAMESPACE_DEPTH {
            return Err(ParseError::Name {
                what: "namespace",
                input: format!("{self}/{name}"),
                rule: "namespaces nest at most 7 levels deep",
            });
        }
        let mut parts = self.0.clone();
        parts.push(name.to_string());
        Ok(Self(parts))
    }

    /// The namespace one level up (`None` for the root).
    pub fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(Self(rest.to_vec()))
    }

    /// Whether this namespace is `other` or lies below it.
    pub fn is_within(&self, other: &Namespace) -> bool {
        self.0.starts_with(&other.0)
    }
}

fn check_component(c: &str) -> Result<(), ParseError> {
    let ok = !c.is_empty()
        && c.len() <= 64
        && !c.starts_with('.')
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ParseError::Name {
            what: "namespace component",
            input: c.to_string(),
            rule: "use 1-64 characters from A-Z a-z 0-9 - _ . and do not start with a dot",
        })
    }
}

impl FromStr for Namespace {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut ns = Namespace::root();
        for part in s.split('/').filter(|p| !p.is_empty()) {
            ns = ns.child(part)?;
        }
        Ok(ns)
    }
}

impl TryFrom<String> for Namespace {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Namespace> for String {
    fn from(ns: Namespace) -> String {
        ns.to_string()
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({:?})", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_namespace_parses_and_displays() {
        let ns: Namespace = "prod/eu/web".parse().unwrap();
        assert_eq!(ns.components().len(), 3);
        assert_eq!(ns.to_string(), "prod/eu/web");
        assert!(ns.is_within(&"prod".parse().unwrap()));
        assert!(!ns.is_within(&"dev".parse().unwrap()));
        assert!(Namespace::root().is_root());
    }

    #[test]
    fn too_deep_or_bad_names_are_refused() {
        assert!("a/b/c/d/e/f/g/h".parse::<Namespace>().is_err());
        assert!("a/../b".parse::<Namespace>().is_err());
        assert!("a b".parse::<Namespace>().is_err());
    }
}

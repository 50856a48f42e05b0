//! Where each Raft node is reached.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use crate::{ClusterNode, NodeId};

#[derive(Debug, Default)]
struct Book {
    /// Addresses learnt from membership node info.
    learnt: HashMap<NodeId, SocketAddr>,
    /// Addresses set explicitly; they win over learnt ones.
    overrides: HashMap<NodeId, SocketAddr>,
}

/// The UDP address of every Raft node this node talks to. Cheap to clone; clones share the map.
///
/// Addresses are learnt from the `address` of each node in the Raft membership (when openraft
/// asks for a client to that node) and can be overridden, e.g. by tests that route a link
/// through a [`ironcore_transport::fault::FaultProxy`]. An override wins until it is cleared.
#[derive(Clone, Debug, Default)]
pub struct AddressBook(Arc<RwLock<Book>>);

impl AddressBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Book> {
        // The maps stay valid if a writer panicked: recover them.
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Book> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the address membership gives for `id`, if it is an `ip:port`. Returns whether it
    /// was one.
    pub fn learn(&self, id: NodeId, node: &ClusterNode) -> bool {
        match node.address.parse::<SocketAddr>() {
            Ok(addr) => {
                self.write().learnt.insert(id, addr);
                true
            }
            Err(_) => false,
        }
    }

    /// Sends traffic for `id` to `addr` regardless of what membership says.
    pub fn set_override(&self, id: NodeId, addr: SocketAddr) {
        self.write().overrides.insert(id, addr);
    }

    /// Drops the override of `id`: membership's address applies again.
    pub fn clear_override(&self, id: NodeId) {
        self.write().overrides.remove(&id);
    }

    /// Where to reach `id`: its override, else its learnt address.
    pub fn get(&self, id: NodeId) -> Option<SocketAddr> {
        let book = self.read();
        book.overrides
            .get(&id)
            .or_else(|| book.learnt.get(&id))
            .copied()
    }

    /// Where to reach `id`, learning from `node` first if nothing is known yet.
    pub fn resolve(&self, id: NodeId, node: &ClusterNode) -> Option<SocketAddr> {
        if let Some(addr) = self.get(id) {
            return Some(addr);
        }
        self.learn(id, node);
        self.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_membership() {
        let book = AddressBook::new();
        let node = ClusterNode {
            name: "a1".into(),
            site: "primary".into(),
            address: "127.0.0.1:8007".into(),
        };
        assert_eq!(book.get(1), None);
        assert_eq!(
            book.resolve(1, &node),
            Some("127.0.0.1:8007".parse().unwrap())
        );
        let proxy: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        book.clone().set_override(1, proxy);
        assert_eq!(book.resolve(1, &node), Some(proxy));
        book.clear_override(1);
        assert_eq!(book.get(1), Some("127.0.0.1:8007".parse().unwrap()));
        let named = ClusterNode {
            address: "pbs-a1:8007".into(),
            ..node
        };
        assert!(!book.learn(2, &named));
        assert_eq!(book.resolve(2, &named), None);
    }
}

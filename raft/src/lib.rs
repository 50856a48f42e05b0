//! Raft control plane of Ironcore Backup (layer 2) — filled by issue 4.
//!
//! It will own the one openraft group that spans the sites: log and state machine on RocksDB,
//! the network over `transport`, typed and versioned commands for every piece of cluster
//! metadata (membership, datastores, manifests, jobs, users, keys, tasks, audit log), and
//! membership changes. It must never touch chunk data: chunks stream peer to peer, only their
//! presence is agreed here.

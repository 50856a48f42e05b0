//! Node-to-node transport of Ironcore Backup (layer 1) — filled by issue 3.
//!
//! It will own every byte between nodes: one quinn endpoint per node on UDP 8007, TLS 1.3 with
//! mutual authentication against pinned certificate fingerprints, a versioned RPC envelope that
//! carries the cluster id and epoch, separate control and bulk paths, verified chunk streams
//! with have/want resume, bandwidth limits, and a fault layer for tests. It must never know
//! about Raft, datastores or chunk formats beyond a chunk id and its bytes.

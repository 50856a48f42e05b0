//! Node-to-node transport of Ironcore Backup (layer 1).
//!
//! It owns every byte between nodes: one quinn endpoint per node on UDP 8007, TLS 1.3 with
//! mutual authentication against pinned certificate fingerprints, a versioned frame that
//! carries the cluster id and epoch, separate control and bulk connections, verified chunk
//! streams with have/want resume, bandwidth limits, and a fault layer for tests. It must never
//! know about Raft, datastores or chunk formats beyond a chunk id and its bytes: what
//! "verified" means for a chunk is a function its caller supplies.
//!
//! Where to start: [`Transport::bind`], [`Transport::call`], [`Transport::open_stream`],
//! [`Transport::send_chunks`],
//! [`PinSet`], [`fault::FaultProxy`].

mod chunks;
mod endpoint;
mod error;
pub mod fault;
pub mod fault_tcp;
pub mod frame;
mod https;
mod identity;
pub mod limit;
mod pins;
mod stream;
pub mod testing;
mod wire;

pub use chunks::{
    ChunkFault, ChunkStore, MAX_ATTEMPTS, MAX_SCOPE, TransferOptions, TransferReport,
};
pub use endpoint::{BoxFuture, Congestion, Peer, PeerInfo, RpcHandler, Transport, TransportConfig};
pub use error::{Result, TransportError};
pub use frame::ClusterId;
pub use https::{https_client_config, https_server_config};
pub use identity::{NodeIdentity, fingerprint_of};
pub use pins::{MAX_PINS_PER_PEER, PinSet};
pub use stream::{MessageReceiver, MessageSender, MessageStream};

//! openraft's storage conformance suite on the RocksDB log store and state machine.

use ironcore_raft::{RocksLogStore, RocksStateMachine, TypeConfig};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use tempfile::TempDir;

/// Builds both stores in a fresh temporary directory (removed when the guard drops).
struct RocksBuilder;

fn store_err(e: impl Into<std::io::Error>) -> StorageError<TypeConfig> {
    StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e.into())
}

impl StoreBuilder<TypeConfig, RocksLogStore, RocksStateMachine, TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, RocksLogStore, RocksStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(store_err)?;
        let log = RocksLogStore::open(&dir.path().join("log")).map_err(store_err)?;
        let sm = RocksStateMachine::open(&dir.path().join("sm")).map_err(store_err)?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await
}

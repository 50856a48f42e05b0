//! Push sync: one snapshot sent through the remote's own backup API — a backup session for the
//! same snapshot, the chunks the remote lacks (index chunks always), then the manifest, which
//! the remote commits only once every chunk is there. A failure cancels the remote session, so
//! nothing half-sent is ever committed there.
//!
//! With "Encrypt on push" (a job created with `--encrypt`), an unencrypted snapshot is
//! re-encrypted on the way under the project key ([`crate::sync::project_key`]): every chunk is
//! opened, checked, encrypted under its keyed id and sent if the remote lacks that id; the
//! indexes are renamed to match and the manifest is signed with the key. The snapshot here
//! stays as it is. A snapshot already encrypted (by its client) is sent unchanged.

use bytes::Bytes;
use ironcore_chunkstore::{CryptKey, Manifest, ManifestFile};
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_transport::limit::RateLimiter;
use ironcore_types::{ChunkId, DatastoreName, SnapshotRef};
use serde_json::{Value, json};

use crate::replication::fetch;
use crate::replication::index::load_index;
use crate::sync::project_key::Reencryptor;
use crate::sync::remote_err;
use crate::sync::syncer::Syncer;
use crate::tasks::RunningTask;
use crate::{NodeError, Result};

/// Attempts per chunk before the run fails.
pub(crate) const ATTEMPTS: u32 = 3;

/// Chunks re-encrypted together (fetched, encrypted on a blocking thread, asked about, sent):
/// bounds the memory one push holds (at most this many chunks of at most 16 MiB).
const REENCRYPT_BATCH: usize = 16;

/// Chunk ids asked about in one presence query.
const KNOWN_BATCH: usize = 8192;

/// Where a push goes: the remote, its datastore, the job's bandwidth limit.
pub(crate) struct PushTarget<'a> {
    pub api: &'a ApiClient,
    pub remote: &'a str,
    pub store: &'a DatastoreName,
    pub limit: &'a RateLimiter,
}

/// One backup session open on the remote.
struct RemoteSession<'a> {
    to: &'a PushTarget<'a>,
    upid: String,
    path: String,
}

impl<'a> RemoteSession<'a> {
    async fn open(to: &'a PushTarget<'a>, s: &SnapshotRef) -> Result<Self> {
        let ns = (!s.ns.is_root()).then(|| s.ns.to_string());
        let started: Value = to
            .api
            .json(
                hyper::Method::POST,
                "/api2/json/backup",
                Some(&json!({ "store": to.store, "ns": ns,
                    "group": s.group.to_string(), "time": s.time })),
            )
            .await
            .map_err(remote_err(to.remote))?;
        let upid = started["upid"].as_str().unwrap_or_default().to_string();
        let path = format!("/api2/json/backup/{}", encode_segment(&upid));
        Ok(Self { to, upid, path })
    }

    /// Which of `ids` the remote lacks.
    async fn lacking(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let mut out = Vec::new();
        for batch in ids.chunks(KNOWN_BATCH) {
            let asked: Vec<String> = batch.iter().map(|id| id.to_string()).collect();
            let present: Value = self
                .to
                .api
                .json(
                    hyper::Method::POST,
                    &format!("{}/known", self.path),
                    Some(&json!({ "ids": asked })),
                )
                .await
                .map_err(remote_err(self.to.remote))?;
            let flags = present["present"].as_array().cloned().unwrap_or_default();
            if flags.len() != batch.len() {
                return Err(NodeError::BadRequest(format!(
                    "remote {}: asked about {} chunks, answered {}",
                    self.to.remote,
                    batch.len(),
                    flags.len()
                )));
            }
            out.extend(
                batch
                    .iter()
                    .zip(flags)
                    .filter(|(_, here)| *here != true)
                    .map(|(id, _)| *id),
            );
        }
        Ok(out)
    }

    /// Sends one stored chunk ([`ATTEMPTS`] tries) under the bandwidth limit.
    async fn put(&self, id: &ChunkId, body: Vec<u8>) -> Result<u64> {
        let len = body.len() as u64;
        self.to.limit.acquire(len).await;
        let body = Bytes::from(body);
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            match self
                .to
                .api
                .raw(
                    hyper::Method::PUT,
                    &format!("{}/chunk/{id}", self.path),
                    body.clone(),
                    "application/octet-stream",
                    &[],
                )
                .await
            {
                Ok(_) => return Ok(len),
                Err(e) => last = e.to_string(),
            }
        }
        Err(NodeError::BadRequest(format!(
            "remote {}: chunk {id} not accepted after {ATTEMPTS} attempts ({last}); nothing was committed there — run the sync again",
            self.to.remote
        )))
    }

    async fn finish(&self, manifest: &[u8]) -> Result<()> {
        let _: Value = self
            .to
            .api
            .json(
                hyper::Method::POST,
                &format!("{}/finish", self.path),
                Some(&json!({ "manifest": hex::encode(manifest) })),
            )
            .await
            .map_err(remote_err(self.to.remote))?;
        Ok(())
    }

    /// Ends the remote session now rather than when it idles out (best effort).
    async fn cancel(&self) {
        let _ = self
            .to
            .api
            .raw(
                hyper::Method::DELETE,
                &format!("/api2/json/tasks/{}", encode_segment(&self.upid)),
                bytes::Bytes::new(),
                "application/json",
                &[],
            )
            .await;
    }
}

/// What one push sent.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pushed {
    /// Chunks referenced by the snapshot (indexes included).
    pub referenced: usize,
    /// Chunks sent.
    pub sent: usize,
    /// Their stored bytes.
    pub bytes: u64,
}

/// Pushes snapshot `s` of `ds` to `to`; with `key`, an unencrypted snapshot is encrypted on
/// the way.
pub(crate) async fn push_snapshot(
    node: &Syncer,
    task: &RunningTask,
    to: &PushTarget<'_>,
    ds: &DatastoreName,
    s: &SnapshotRef,
    key: Option<&CryptKey>,
) -> Result<Pushed> {
    let entry = node
        .meta()
        .snapshot(ds, s)?
        .ok_or_else(|| NodeError::NotFound(format!("snapshot {s} does not exist in {ds}")))?;
    let (manifest, _) = Manifest::decode(&entry.manifest)?;
    let key = match (key, manifest.key_fingerprint) {
        (Some(_), Some(fp)) => {
            task.log(&format!("{s}: already encrypted (key {fp}); sent as it is"));
            None
        }
        (key, _) => key,
    };
    let session = RemoteSession::open(to, s).await?;
    let sent = match key {
        None => send_as_stored(node, task, &session, ds, &manifest, &entry.manifest).await,
        Some(key) => send_encrypted(node, task, &session, ds, &manifest, key).await,
    };
    match sent {
        Ok(p) => {
            task.log(&format!(
                "{s}: {} chunks referenced, {} sent ({} bytes){}; committed on {}",
                p.referenced,
                p.sent,
                p.bytes,
                if key.is_some() {
                    " encrypted on push"
                } else {
                    ""
                },
                to.remote
            ));
            Ok(p)
        }
        Err(e) => {
            session.cancel().await;
            Err(e)
        }
    }
}

/// The snapshot as it is stored here: the chunks the remote lacks, every index, the manifest.
async fn send_as_stored(
    node: &Syncer,
    task: &RunningTask,
    session: &RemoteSession<'_>,
    ds: &DatastoreName,
    manifest: &Manifest,
    manifest_bytes: &[u8],
) -> Result<Pushed> {
    let (mut indexes, mut data) = (Vec::new(), Vec::new());
    for file in &manifest.files {
        let index = load_index(node.chunk_peers(), ds, file).await?;
        indexes.push(file.index);
        data.extend(index.chunk_ids());
    }
    data.sort_unstable();
    data.dedup();
    let mut pushed = Pushed {
        referenced: indexes.len() + data.len(),
        ..Pushed::default()
    };
    let mut send = indexes;
    send.extend(session.lacking(&data).await?);
    for id in &send {
        task.check()?;
        pushed.bytes += session
            .put(id, fetch::read(node.chunk_peers(), ds, id).await?)
            .await?;
        pushed.sent += 1;
    }
    session.finish(manifest_bytes).await?;
    Ok(pushed)
}

/// The snapshot re-encrypted under `key`: every chunk opened and encrypted (in batches, off the
/// async threads), the encrypted ones the remote lacks sent, then the renamed indexes and the
/// signed manifest.
async fn send_encrypted(
    node: &Syncer,
    task: &RunningTask,
    session: &RemoteSession<'_>,
    ds: &DatastoreName,
    manifest: &Manifest,
    key: &CryptKey,
) -> Result<Pushed> {
    let mut re = Reencryptor::new(key.clone());
    let mut pushed = Pushed::default();
    let mut files: Vec<ManifestFile> = Vec::new();
    for file in &manifest.files {
        let index = load_index(node.chunk_peers(), ds, file).await?;
        let mut todo: Vec<ChunkId> = index.chunk_ids().filter(|id| !re.done(id)).collect();
        todo.sort_unstable();
        todo.dedup();
        pushed.referenced += todo.len() + 1;
        for batch in todo.chunks(REENCRYPT_BATCH) {
            task.check()?;
            let mut stored = Vec::with_capacity(batch.len());
            for id in batch {
                stored.push((*id, fetch::read(node.chunk_peers(), ds, id).await?));
            }
            let k = key.clone();
            let done = tokio::task::spawn_blocking(move || {
                stored
                    .iter()
                    .map(|(id, body)| Reencryptor::encrypt(&k, id, body))
                    .collect::<Result<Vec<_>>>()
            })
            .await
            .map_err(NodeError::join("a chunk store call"))??;
            let new_ids: Vec<ChunkId> = done.iter().map(|(_, new, _)| *new).collect();
            let lacking = session.lacking(&new_ids).await?;
            for (old, new, body) in done {
                if lacking.contains(&new) {
                    pushed.bytes += session.put(&new, body).await?;
                    pushed.sent += 1;
                }
                re.record(old, new);
            }
        }
        let (id, body) = re.index(&index)?;
        pushed.bytes += session.put(&id, body).await?;
        pushed.sent += 1;
        files.push(ManifestFile {
            index: id,
            ..file.clone()
        });
    }
    session.finish(&re.manifest(manifest, files)?).await?;
    Ok(pushed)
}

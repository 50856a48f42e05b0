//! A node as a chunk sink (backups) and a chunk source (restores), over its HTTPS API.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use ironcore_chunkstore::envelope::{DEFAULT_ZSTD_LEVEL, Encoded, encode_chunk_parts};
use ironcore_chunkstore::{ChunkSink, ChunkSource, CryptKey, Error, Inserted};
use ironcore_types::{ChunkId, DatastoreName};

use crate::api_client::{ApiClient, ApiError, encode_segment};
use crate::pieces::Pieces;

/// `410 Gone` is how a node says the session's task was cancelled.
fn cancelled_or_remote(e: ApiError) -> Error {
    match e {
        ApiError::Status { status: 410, .. } => Error::Cancelled,
        e => remote(e),
    }
}

fn remote(e: ApiError) -> Error {
    Error::Remote {
        detail: e.to_string(),
    }
}

/// Uploads the chunks of one backup session to a node: a presence check first, so only chunks
/// the datastore lacks are encoded and sent.
#[derive(Debug)]
pub struct RemoteSink {
    api: Arc<ApiClient>,
    upid: String,
    ask_first: bool,
}

impl RemoteSink {
    /// The sink of session `upid` on the node behind `api`.
    pub fn new(api: Arc<ApiClient>, upid: &str) -> Self {
        Self {
            api,
            upid: upid.to_string(),
            ask_first: true,
        }
    }

    /// Uploads chunks without asking first whether the node holds them (it answers whether it
    /// did): for an incremental backup, whose chunks the previous snapshot does not have are
    /// almost always new, this saves a round trip per chunk.
    pub fn upload_without_asking(mut self) -> Self {
        self.ask_first = false;
        self
    }
}

impl RemoteSink {
    fn chunk_path(&self, id: &ChunkId) -> String {
        format!(
            "/api2/json/backup/{}/chunk/{}",
            encode_segment(&self.upid),
            id.to_hex()
        )
    }
}

impl ChunkSink for RemoteSink {
    fn has_chunks(&self, ids: &[ChunkId]) -> ironcore_chunkstore::Result<Vec<bool>> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(8192) {
            let body =
                serde_json::json!({ "ids": batch.iter().map(ChunkId::to_hex).collect::<Vec<_>>() });
            let answer: serde_json::Value = self
                .api
                .blocking(self.api.json(
                    Method::POST,
                    &format!("/api2/json/backup/{}/known", encode_segment(&self.upid)),
                    Some(&body),
                ))
                .map_err(cancelled_or_remote)?;
            let present = answer["present"]
                .as_array()
                .filter(|p| p.len() == batch.len())
                .ok_or_else(|| Error::Remote {
                    detail: format!(
                        "node answered a presence query for {} chunks with {answer}",
                        batch.len()
                    ),
                })?;
            out.extend(present.iter().map(|v| v.as_bool() == Some(true)));
        }
        Ok(out)
    }

    fn has_chunk(&self, id: &ChunkId) -> ironcore_chunkstore::Result<bool> {
        let (status, _) = self
            .api
            .blocking(self.api.raw(
                Method::HEAD,
                &self.chunk_path(id),
                Bytes::new(),
                "application/octet-stream",
                &[StatusCode::NOT_FOUND],
            ))
            .map_err(cancelled_or_remote)?;
        Ok(status == StatusCode::OK)
    }

    fn store_chunk(
        &self,
        id: &ChunkId,
        plain: &Bytes,
        key: Option<&CryptKey>,
    ) -> ironcore_chunkstore::Result<Inserted> {
        let path = format!(
            "/api2/json/backup/{}/chunk/{}",
            encode_segment(&self.upid),
            id.to_hex()
        );
        if self.ask_first {
            let (status, _) = self
                .api
                .blocking(self.api.raw(
                    Method::HEAD,
                    &path,
                    Bytes::new(),
                    "application/octet-stream",
                    &[StatusCode::NOT_FOUND],
                ))
                .map_err(cancelled_or_remote)?;
            if status == StatusCode::OK {
                return Ok(Inserted::Existing);
            }
        }
        let body = match encode_chunk_parts(id, plain, key, DEFAULT_ZSTD_LEVEL)? {
            Encoded::Envelope(bytes) => Pieces::from(Bytes::from(bytes)),
            Encoded::HeaderOfPlain(header) => {
                Pieces::new([Bytes::copy_from_slice(&header), plain.clone()])
            }
        };
        let len = body.len();
        let (status, _) = self
            .api
            .blocking(
                self.api
                    .raw(Method::PUT, &path, body, "application/octet-stream", &[]),
            )
            .map_err(cancelled_or_remote)?;
        Ok(if status == StatusCode::OK {
            Inserted::Existing
        } else {
            Inserted::New(len)
        })
    }
}

/// Reads the chunks of one snapshot from a node (which pulls them from a peer if it lacks
/// them), through the reader session the node opened when the snapshot was read.
#[derive(Debug)]
pub struct RemoteSource {
    api: Arc<ApiClient>,
    store: DatastoreName,
    reader: String,
}

impl RemoteSource {
    /// Chunks of `store` through the node behind `api` and its reader session `reader` (the
    /// `reader` of its `GET …/snapshot` answer).
    pub fn new(api: Arc<ApiClient>, store: DatastoreName, reader: String) -> Self {
        Self { api, store, reader }
    }
}

impl ChunkSource for RemoteSource {
    fn read_chunk(&self, id: &ChunkId) -> ironcore_chunkstore::Result<Vec<u8>> {
        let path = format!(
            "/api2/json/datastore/{}/chunk/{}?reader={}",
            self.store,
            id.to_hex(),
            encode_segment(&self.reader)
        );
        match self.api.blocking(self.api.raw(
            Method::GET,
            &path,
            Bytes::new(),
            "application/json",
            &[],
        )) {
            Ok((_, b)) => Ok(Vec::from(b)),
            Err(ApiError::Status {
                status: 404,
                message,
            }) if message.starts_with("chunk not found") => Err(Error::ChunkNotFound { id: *id }),
            Err(e) => Err(remote(e)),
        }
    }
}

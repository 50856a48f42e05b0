//! A client of a node's HTTPS API: TLS 1.3 pinned to the node's certificate fingerprint,
//! HTTP/1.1 keep-alive connections pooled for parallel chunk uploads, token authentication.
//!
//! The async methods serve async callers (a joining node); [`ApiClient::blocking`] runs one on
//! the client's own runtime for threads that are not async (the CLI, chunk pipeline workers).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use ironcore_types::Fingerprint;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::pieces::Pieces;

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing answers at the address.
    #[error(
        "connection refused: nothing answers at {addr} ({detail}); check that the node runs and that TCP 8007 is reachable"
    )]
    ConnectionRefused {
        /// The address.
        addr: String,
        /// The OS error.
        detail: String,
    },
    /// The node presented another certificate than the pinned one.
    #[error(
        "TLS fingerprint mismatch at {addr}: expected {expected}, {detail}; verify the node's fingerprint out of band (`ironcore-node fingerprint` on the node) before changing IRONCORE_FINGERPRINT"
    )]
    FingerprintMismatch {
        /// The address.
        addr: String,
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// What the handshake saw.
        detail: String,
    },
    /// The node answered with an error.
    #[error("{message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The node's error text.
        message: String,
    },
    /// The connection broke or the answer did not parse.
    #[error("talking to {addr}: {detail}")]
    Protocol {
        /// The address.
        addr: String,
        /// What happened.
        detail: String,
    },
}

/// A node's API, as one caller sees it.
pub struct ApiClient {
    addr: String,
    fingerprint: Fingerprint,
    tls: TlsConnector,
    token: Option<String>,
    ticket: Option<String>,
    pool: Mutex<Vec<SendRequest<Pieces>>>,
    runtime: Option<Arc<tokio::runtime::Runtime>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ApiClient({} pinned to {})",
            self.addr,
            self.fingerprint.short()
        )
    }
}

impl ApiClient {
    /// A client of the node at `addr` (`host:port`) presenting `fingerprint`, authenticating
    /// with `token` (`user@realm!name:secret`) when given.
    pub fn new(
        addr: &str,
        fingerprint: Fingerprint,
        token: Option<String>,
    ) -> Result<Self, ApiError> {
        let config = ironcore_transport::https_client_config(fingerprint).map_err(|e| {
            ApiError::Protocol {
                addr: addr.to_string(),
                detail: e.to_string(),
            }
        })?;
        Ok(Self {
            addr: addr.to_string(),
            fingerprint,
            tls: TlsConnector::from(Arc::new(config)),
            token,
            ticket: None,
            pool: Mutex::new(Vec::new()),
            runtime: None,
        })
    }

    /// Authenticates with a login ticket (`POST /api2/json/access/ticket`) instead of a token.
    pub fn with_ticket(mut self, ticket: String) -> Self {
        self.ticket = Some(ticket);
        self
    }

    /// Gives the client a runtime of its own for [`Self::blocking`] (the CLI).
    pub fn with_runtime(mut self) -> Result<Self, ApiError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| ApiError::Protocol {
                addr: self.addr.clone(),
                detail: e.to_string(),
            })?;
        self.runtime = Some(Arc::new(rt));
        Ok(self)
    }

    /// The node's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Runs `f` on the client's runtime from a non-async thread.
    pub fn blocking<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            None => panic!("ApiClient::blocking needs with_runtime()"),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Pieces>, ApiError> {
        let tcp =
            TcpStream::connect(&self.addr)
                .await
                .map_err(|e| ApiError::ConnectionRefused {
                    addr: self.addr.clone(),
                    detail: e.to_string(),
                })?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from("ironcore-node").map_err(|e| {
            ApiError::Protocol {
                addr: self.addr.clone(),
                detail: e.to_string(),
            }
        })?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| {
            let detail = e.to_string();
            if detail.contains("fingerprint mismatch") {
                ApiError::FingerprintMismatch {
                    addr: self.addr.clone(),
                    expected: self.fingerprint,
                    detail: detail.replace("TLS fingerprint mismatch: ", ""),
                }
            } else {
                ApiError::Protocol {
                    addr: self.addr.clone(),
                    detail,
                }
            }
        })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ApiError::Protocol {
                addr: self.addr.clone(),
                detail: e.to_string(),
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request and returns the status and body (errors as [`ApiError::Status`]
    /// unless `allow` lists the status).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Pieces>,
        content_type: &str,
        allow: &[StatusCode],
    ) -> Result<(StatusCode, Bytes), ApiError> {
        // A pooled connection comes back the moment its answer is read, usually before its
        // connection task has seen the exchange through: wait for that rather than take it for
        // closed (which opened a new TLS connection for most requests).
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut sender = match pooled {
            Some(mut s) => match s.ready().await {
                Ok(()) => s,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.addr)
            .header(hyper::header::CONTENT_TYPE, content_type);
        if let Some(t) = &self.ticket {
            req = req.header(hyper::header::AUTHORIZATION, format!("IBSTicket {t}"));
        } else if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("IBSAPIToken {t}"));
        }
        let req = req.body(body.into()).map_err(|e| ApiError::Protocol {
            addr: self.addr.clone(),
            detail: e.to_string(),
        })?;
        let proto = |e: hyper::Error| ApiError::Protocol {
            addr: self.addr.clone(),
            detail: e.to_string(),
        };
        let resp = sender.send_request(req).await.map_err(proto)?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(proto)?.to_bytes();
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
        if status.is_success() || allow.contains(&status) {
            return Ok((status, bytes));
        }
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
        Err(ApiError::Status {
            status: status.as_u16(),
            message,
        })
    }

    /// A JSON request with a JSON answer.
    pub async fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b)
                .map_err(|e| ApiError::Protocol {
                    addr: self.addr.clone(),
                    detail: e.to_string(),
                })?
                .into(),
            None => Bytes::new(),
        };
        let (_, answer) = self
            .raw(method, path, bytes, "application/json", &[])
            .await?;
        serde_json::from_slice(&answer).map_err(|e| ApiError::Protocol {
            addr: self.addr.clone(),
            detail: format!("answer does not parse: {e}"),
        })
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.json::<(), T>(Method::GET, path, None).await
    }
}

/// Percent-encodes one URL path segment (UPIDs hold `:`, `!`, `/`, `\`).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

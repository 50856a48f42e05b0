//! TLS settings of the HTTPS API (TCP 8007), built from the same identity and pinning rules as
//! the QUIC transport: TLS 1.3 only, ring only, the node's self-signed certificate, and clients
//! that accept exactly the pinned fingerprint (no CA, no trust-on-first-use).

use std::sync::Arc;

use ironcore_types::Fingerprint;
use rustls::{ClientConfig, ServerConfig};

use crate::NodeIdentity;
use crate::pins::{PinnedServer, Seen, provider};
use crate::{Result, TransportError};

/// The API server's TLS settings: the node's certificate, no client certificates (callers
/// authenticate with tokens), HTTP/1.1.
pub fn https_server_config(identity: &NodeIdentity) -> Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert()], identity.key())
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client's TLS settings that accept only a server presenting `fingerprint`. A mismatch
/// fails the handshake with `TLS fingerprint mismatch: presented …`.
pub fn https_client_config(fingerprint: Fingerprint) -> Result<ClientConfig> {
    let verifier = Arc::new(PinnedServer {
        expected: vec![fingerprint],
        seen: Seen::default(),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn tls_err(e: rustls::Error) -> TransportError {
    TransportError::Identity {
        path: "<tls settings>".into(),
        detail: e.to_string(),
    }
}

//! Pinned peers and the TLS verifiers that enforce them.
//!
//! There is no certificate authority and no trust on first use: a peer is accepted only if the
//! SHA-256 fingerprint of the certificate it presents is pinned. During a certificate change a
//! node holds two pins for a peer. The pin set is supplied by the caller (later: from Raft) and
//! can change while connections are made.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use ironcore_types::{Fingerprint, NodeId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::identity::fingerprint_of;

/// At most this many pins per peer (the current certificate and its successor).
pub const MAX_PINS_PER_PEER: usize = 2;

/// The pinned fingerprints of every known peer. Cheap to clone; clones share the set.
#[derive(Clone, Debug, Default)]
pub struct PinSet(Arc<RwLock<BTreeMap<NodeId, Vec<Fingerprint>>>>);

impl PinSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins `fingerprint` for `node`, keeping at most the newest two pins.
    pub fn pin(&self, node: &NodeId, fingerprint: Fingerprint) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        let pins = map.entry(node.clone()).or_default();
        if !pins.contains(&fingerprint) {
            pins.push(fingerprint);
        }
        while pins.len() > MAX_PINS_PER_PEER {
            pins.remove(0);
        }
    }

    /// Replaces every pin of `node` with `fingerprint` (the end of a rotation).
    pub fn replace(&self, node: &NodeId, fingerprint: Fingerprint) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.insert(node.clone(), vec![fingerprint]);
    }

    /// Removes a peer (revokes its pins).
    pub fn revoke(&self, node: &NodeId) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
    }

    /// The pins of `node`.
    pub fn pins_of(&self, node: &NodeId) -> Vec<Fingerprint> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    /// The node a fingerprint is pinned for.
    pub fn node_of(&self, fingerprint: &Fingerprint) -> Option<NodeId> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(_, pins)| pins.contains(fingerprint))
            .map(|(n, _)| n.clone())
    }
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// The signature checks both verifiers share: TLS 1.3 signatures checked with ring's
/// algorithms; TLS 1.2 refused (the configs only offer 1.3, this is the backstop).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::General("TLS 1.2 is not accepted".into()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    };
}

/// What the client-side verifier saw, read after a failed connect to build a precise error.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen(pub Arc<Mutex<Option<Fingerprint>>>);

/// Client side: the server must present one of `expected`.
#[derive(Debug)]
pub(crate) struct PinnedServer {
    pub expected: Vec<Fingerprint>,
    pub seen: Seen,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint_of(end_entity);
        *self.seen.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        if self.expected.contains(&fp) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "TLS fingerprint mismatch: presented {fp}"
            )))
        }
    }

    handshake_signatures!();
}

/// Server side: the client must present a certificate pinned for some peer.
#[derive(Debug)]
pub(crate) struct PinnedClients {
    pub pins: PinSet,
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fp = fingerprint_of(end_entity);
        if self.pins.node_of(&fp).is_some() {
            Ok(ClientCertVerified::assertion())
        } else {
            metrics::counter!("ironcore_transport_handshake_failures_total", "reason" => "unknown_peer").increment(1);
            tracing::warn!(presented = %fp, "refused a peer whose certificate is not pinned");
            Err(rustls::Error::General(format!(
                "unknown peer: fingerprint {fp} is not pinned"
            )))
        }
    }

    handshake_signatures!();
}

/// The one crypto provider of this crate (ring), so no other provider is ever picked.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_holds_at_most_two_pins_during_rotation() {
        let pins = PinSet::new();
        let n: NodeId = "a".parse().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        pins.pin(&n, fp(1));
        pins.pin(&n, fp(2));
        assert_eq!(pins.pins_of(&n), vec![fp(1), fp(2)]);
        pins.pin(&n, fp(3));
        assert_eq!(pins.pins_of(&n), vec![fp(2), fp(3)]);
        assert_eq!(pins.node_of(&fp(3)), Some(n.clone()));
        pins.replace(&n, fp(3));
        assert_eq!(pins.node_of(&fp(2)), None);
        pins.revoke(&n);
        assert!(pins.pins_of(&n).is_empty());
    }
}

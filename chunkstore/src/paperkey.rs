//! Paper keys: a key file printed as numbered hex blocks, each with its own checksum, so a
//! mistyped block is caught and named when the key is typed back in.
//!
//! ```text
//! ironcore-backup paper key v1
//! fingerprint: a1:b2:c3:d4:e5:f6:07:18
//! 01: 0100 0001 0003 0000 - 3f9a
//! 02: ...
//! ```
//!
//! Each block carries 8 bytes of the packed key file (the last may be shorter) and a 16-bit
//! checksum: the first two bytes of SHA-256 over the block number and its bytes. The printout
//! is still protected by the key file's passphrase.

use sha2::{Digest, Sha256};

use crate::keyfile::{KeyFile, PACKED_LEN};
use crate::{Error, Result};

const HEADER: &str = "ironcore-backup paper key v1";
const BLOCK: usize = 8;

fn checksum(block_no: usize, bytes: &[u8]) -> [u8; 2] {
    let mut h = Sha256::new();
    h.update((block_no as u32).to_le_bytes());
    h.update(bytes);
    let d = h.finalize();
    [d[0], d[1]]
}

/// Renders a key file as a paper key.
pub fn export(key: &KeyFile) -> String {
    let packed = key.to_bytes();
    let mut out = format!("{HEADER}\nfingerprint: {}\n", key.fingerprint);
    for (i, block) in packed.chunks(BLOCK).enumerate() {
        let no = i + 1;
        let groups: Vec<String> = block.chunks(2).map(hex::encode).collect();
        out.push_str(&format!(
            "{no:02}: {} - {}\n",
            groups.join(" "),
            hex::encode(checksum(no, block))
        ));
    }
    out
}

/// Reads a paper key back. Blank lines, the header and the fingerprint line are optional;
/// spaces inside blocks are ignored. A block whose checksum fails is named.
pub fn import(text: &str) -> Result<KeyFile> {
    let mut packed = Vec::with_capacity(PACKED_LEN);
    let mut expected_no = 1;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line == HEADER || line.starts_with("fingerprint:") {
            continue;
        }
        let (no, rest) = line.split_once(':').ok_or_else(|| Error::PaperKey {
            block: expected_no,
            detail: format!("'{line}' is not of the form 'NN: hex - checksum'"),
        })?;
        let no: usize = no.trim().parse().map_err(|_| Error::PaperKey {
            block: expected_no,
            detail: format!("'{no}' is not a block number"),
        })?;
        if no != expected_no {
            return Err(Error::PaperKey {
                block: expected_no,
                detail: format!(
                    "found block {no} where block {expected_no} belongs (missing or repeated line)"
                ),
            });
        }
        let (data, sum) = rest.rsplit_once('-').ok_or_else(|| Error::PaperKey {
            block: no,
            detail: "the ' - checksum' part is missing".into(),
        })?;
        let clean: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = hex::decode(&clean).map_err(|_| Error::PaperKey {
            block: no,
            detail: "contains characters that are not hex digits".into(),
        })?;
        let sum = hex::decode(sum.trim()).map_err(|_| Error::PaperKey {
            block: no,
            detail: "the checksum is not 4 hex digits".into(),
        })?;
        if bytes.is_empty() || bytes.len() > BLOCK || sum[..] != checksum(no, &bytes) {
            return Err(Error::PaperKey {
                block: no,
                detail: "its checksum does not match".into(),
            });
        }
        packed.extend_from_slice(&bytes);
        expected_no += 1;
    }
    if packed.len() != PACKED_LEN {
        return Err(Error::PaperKey {
            block: expected_no,
            detail: format!(
                "the key is incomplete: {} of {PACKED_LEN} bytes read",
                packed.len()
            ),
        });
    }
    KeyFile::from_bytes(&packed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::CryptKey;
    use crate::keyfile::{KdfParams, in_memory_source};

    fn sample() -> (CryptKey, KeyFile) {
        let key = CryptKey::generate();
        let kf = KeyFile::protect(&key, "paper passphrase", KdfParams::minimum()).unwrap();
        (key, kf)
    }

    #[test]
    fn paper_key_round_trips_to_the_same_key() {
        let (key, kf) = sample();
        let text = export(&kf);
        assert!(text.contains(&key.fingerprint().to_string()));
        let back = import(&text).unwrap();
        assert_eq!(back, kf);
        let unlocked = back
            .unlock("paper passphrase", &in_memory_source())
            .unwrap();
        assert_eq!(unlocked.fingerprint(), key.fingerprint());
    }

    #[test]
    fn a_mistyped_block_is_rejected_by_number() {
        let (_, kf) = sample();
        let text = export(&kf);
        let lines: Vec<&str> = text.lines().collect();
        // Change one hex digit in block 5 (line index 2 + 4).
        let target = lines[6];
        let pos = 4;
        let c = target.as_bytes()[pos] as char;
        let swapped = if c == '0' { '1' } else { '0' };
        let mut bad_line = target.to_string();
        bad_line.replace_range(pos..pos + 1, &swapped.to_string());
        let bad = text.replace(target, &bad_line);
        match import(&bad) {
            Err(Error::PaperKey { block, .. }) => assert_eq!(block, 5),
            other => panic!("expected block 5 to be named, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_block_is_named() {
        let (_, kf) = sample();
        let text = export(&kf);
        let without: String = text
            .lines()
            .filter(|l| !l.starts_with("03:"))
            .map(|l| format!("{l}\n"))
            .collect();
        match import(&without) {
            Err(Error::PaperKey { block, detail }) => {
                assert_eq!(block, 3);
                assert!(detail.contains("found block 4"), "{detail}");
            }
            other => panic!("expected block 3 to be named, got {other:?}"),
        }
    }
}

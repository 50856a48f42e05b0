//! Encoding of every value this crate stores or ships: one format version byte, then postcard.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// The only format version written and read so far.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Encodes `value` as `[FORMAT_VERSION] ++ postcard(value)`.
pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, Error> {
    let mut out = vec![FORMAT_VERSION];
    postcard::to_io(value, &mut out).map_err(|source| Error::Encode { what, source })?;
    Ok(out)
}

/// Decodes bytes written by [`encode`]; refuses unknown versions and trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, Error> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| Error::corrupt(what, "empty value"))?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            what,
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| Error::corrupt(what, e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::corrupt(
            what,
            format!("{} trailing bytes", rest.len()),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let bytes = encode("test", &(7u32, "x".to_string())).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u32, String) = decode("test", &bytes).unwrap();
        assert_eq!(back, (7, "x".to_string()));

        assert!(matches!(
            decode::<u32>("test", &[]),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<u32>("test", &[9, 1]),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        assert!(matches!(
            decode::<u8>("test", &[FORMAT_VERSION, 1, 2]),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<String>("test", &[FORMAT_VERSION, 5, b'a']),
            Err(Error::Corrupt { .. })
        ));
    }
}

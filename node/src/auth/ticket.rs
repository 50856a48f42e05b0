//! Password login and tickets. A user with a password (Argon2id, hashed on the node) logs in at
//! `POST /api2/json/access/ticket` and gets a ticket valid for [`TICKET_LIFETIME`] on every node:
//! `IBS:{userid}:{generation, hex}:{expires, hex}:{HMAC-SHA256 hex}`, signed with the cluster's
//! ticket key (made at bootstrap, kept in Raft, never shown). Calls then send
//! `Authorization: IBSTicket <ticket>` and act with the user's own ACL. The generation is the
//! user's when the ticket was issued (`MetaView::ticket_generation`): disabling or removing the
//! user starts a new one, and a ticket of another generation is refused.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use hmac::{Hmac, KeyInit, Mac};
use ironcore_types::AuthId;
use sha2::Sha256;

use crate::{NodeError, Result};

/// The header scheme of tickets.
pub const TICKET_SCHEME: &str = "IBSTicket";
/// How long a ticket is valid (seconds).
pub const TICKET_LIFETIME: i64 = 2 * 3600;
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// The Argon2id PHC string of `password`.
pub fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(NodeError::BadRequest(format!(
            "the password is too short: use at least {MIN_PASSWORD} characters"
        )));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| NodeError::BadRequest(format!("hashing the password: {e}")))
}

/// Whether `password` matches the PHC string `phc`.
pub fn verify_password(phc: &str, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

fn signature(key: &[u8], payload: &str) -> Result<Vec<u8>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|e| NodeError::BadRequest(format!("ticket key: {e}")))?;
    mac.update(payload.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

/// A ticket for `user` of ticket generation `generation`, issued at `now`, and when it expires.
pub fn issue(key: &[u8], user: &AuthId, generation: u64, now: i64) -> Result<(String, i64)> {
    let expires = now + TICKET_LIFETIME;
    let payload = format!("IBS:{user}:{generation:X}:{expires:X}");
    let sig = hex::encode(signature(key, &payload)?);
    Ok((format!("{payload}:{sig}"), expires))
}

/// The user a ticket was issued to and its generation, if its signature holds and it has not
/// expired at `now`.
pub fn check(key: &[u8], ticket: &str, now: i64) -> Result<(AuthId, u64)> {
    let bad = || NodeError::Unauthenticated("the ticket is invalid; log in again".into());
    let (payload, sig) = ticket.rsplit_once(':').ok_or_else(bad)?;
    let expected = signature(key, payload)?;
    let sig = hex::decode(sig).map_err(|_| bad())?;
    if key.is_empty() || !crate::auth::constant_time_eq(&expected, &sig) {
        return Err(bad());
    }
    let rest = payload.strip_prefix("IBS:").ok_or_else(bad)?;
    let (rest, expires) = rest.rsplit_once(':').ok_or_else(bad)?;
    let (user, generation) = rest.rsplit_once(':').ok_or_else(bad)?;
    let expires = i64::from_str_radix(expires, 16).map_err(|_| bad())?;
    let generation = u64::from_str_radix(generation, 16).map_err(|_| bad())?;
    if expires < now {
        return Err(NodeError::Unauthenticated(
            "the ticket expired; log in again (`ironcore-backup login`)".into(),
        ));
    }
    Ok((user.parse().map_err(|_| bad())?, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_hold_until_they_expire_and_only_with_the_key() {
        let key = [7u8; 32];
        let user: AuthId = "alice@ibs".parse().unwrap();
        let (t, expires) = issue(&key, &user, 42, 1000).unwrap();
        assert_eq!(expires, 1000 + TICKET_LIFETIME);
        assert_eq!(check(&key, &t, 1000).unwrap(), (user, 42));
        let older = t.replacen(":2A:", ":29:", 1);
        assert!(
            check(&key, &older, 1000).is_err(),
            "a changed generation breaks it"
        );
        assert!(
            check(&key, &t, expires + 1)
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        assert!(
            check(&[8u8; 32], &t, 1000).is_err(),
            "another cluster's key"
        );
        let forged = t.replace("alice", "admin");
        assert!(
            check(&key, &forged, 1000).is_err(),
            "a changed user breaks the signature"
        );
        assert!(check(&[], &t, 1000).is_err(), "no key, no tickets");
    }

    #[test]
    fn passwords_verify_and_short_ones_are_refused() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "wrong horse"));
        assert!(hash_password("short").is_err());
    }
}

//! `key list|create|register`: encryption keys. `create` works on this machine only; the
//! others ask the node.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use serde_json::json;

use crate::api::{get, rows, send};
use crate::conn::ConnArgs;
use crate::output::{Output, object, table};
use crate::select::load_key;

/// `key …`.
#[derive(Subcommand)]
pub enum KeyCmd {
    /// List registered key fingerprints.
    List,
    /// Create a new encryption key file (passphrase from IRONCORE_KEY_PASSPHRASE; Argon2id).
    /// Keep a copy (and a paper key) somewhere safe: without it nothing encrypted can be read.
    Create {
        #[arg(long)]
        keyfile: PathBuf,
    },
    /// Register a key file's fingerprint (the key itself never leaves this machine).
    Register {
        #[arg(long)]
        keyfile: PathBuf,
        #[arg(long, default_value = "")]
        comment: String,
    },
}

/// Runs a `key` command; only `list` and `register` connect to the node of `conn`.
pub fn run(cmd: KeyCmd, conn: &ConnArgs, out: Output) -> Result<()> {
    match cmd {
        KeyCmd::Create { keyfile } => create(&keyfile, out),
        KeyCmd::List => {
            let api = conn.client()?;
            table(
                out,
                &rows(&get(&api, "/api2/json/keys")?),
                &[
                    ("fingerprint", "FINGERPRINT"),
                    ("comment", "COMMENT"),
                    ("added", "ADDED"),
                ],
            );
            Ok(())
        }
        KeyCmd::Register { keyfile, comment } => {
            let api = conn.client()?;
            register(&api, &keyfile, comment, out)
        }
    }
}

/// `key create`: a new key sealed in `keyfile`.
fn create(keyfile: &Path, out: Output) -> Result<()> {
    let pass = std::env::var("IRONCORE_KEY_PASSPHRASE").unwrap_or_default();
    if pass.len() < 8 {
        anyhow::bail!("set IRONCORE_KEY_PASSPHRASE to a passphrase of at least 8 characters");
    }
    let key = ironcore_chunkstore::CryptKey::generate();
    let file = ironcore_chunkstore::KeyFile::protect(&key, &pass, Default::default())?;
    file.save(keyfile)?;
    object(
        out,
        &json!({ "keyfile": keyfile.display().to_string(), "fingerprint": key.fingerprint().to_hex() }),
    );
    Ok(())
}

/// `key register`: the fingerprint of the key in `keyfile`.
fn register(api: &ApiClient, keyfile: &Path, comment: String, out: Output) -> Result<()> {
    let key = load_key(Some(keyfile))?.context("no key")?;
    object(
        out,
        &send(
            api,
            Method::POST,
            "/api2/json/keys",
            json!({ "fingerprint": key.fingerprint().to_hex(), "comment": comment }),
        )?,
    );
    Ok(())
}

//! Which node to talk to and as whom: flags, else `IRONCORE_URL`, `IRONCORE_FINGERPRINT`,
//! `IRONCORE_TOKEN`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ironcore_client::ApiClient;
use ironcore_types::Fingerprint;

/// Connection options shared by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// The node's API address, HOST:PORT [env: IRONCORE_URL].
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The node's certificate fingerprint (`ironcore-node fingerprint`) [env: IRONCORE_FINGERPRINT].
    #[arg(long, global = true)]
    pub fingerprint: Option<String>,
    /// API token USER@REALM!NAME:SECRET [env: IRONCORE_TOKEN].
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Login ticket from `ironcore-backup login`, used when no token is given
    /// [env: IRONCORE_TICKET].
    #[arg(long, global = true)]
    pub ticket: Option<String>,
}

fn pick(flag: &Option<String>, env: &str) -> Option<String> {
    flag.clone()
        .or_else(|| std::env::var(env).ok())
        .filter(|s| !s.is_empty())
}

impl ConnArgs {
    /// A client of the chosen node with its own runtime.
    pub fn client(&self) -> Result<Arc<ApiClient>> {
        let Some(url) = pick(&self.url, "IRONCORE_URL") else {
            bail!("no node given: pass --url HOST:PORT or set IRONCORE_URL");
        };
        let url = url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let Some(fp) = pick(&self.fingerprint, "IRONCORE_FINGERPRINT") else {
            bail!(
                "no fingerprint given: pass --fingerprint or set IRONCORE_FINGERPRINT (run `ironcore-node fingerprint` on the node and compare out of band)"
            );
        };
        let fp: Fingerprint = fp.parse().context("IRONCORE_FINGERPRINT")?;
        let token = pick(&self.token, "IRONCORE_TOKEN");
        let mut client = ApiClient::new(&url, fp, token.clone())?;
        if token.is_none()
            && let Some(ticket) = pick(&self.ticket, "IRONCORE_TICKET")
        {
            client = client.with_ticket(ticket);
        }
        Ok(Arc::new(client.with_runtime()?))
    }
}

/// A password: `IRONCORE_PASSWORD` if set, else asked on the terminal without echo (twice
/// when `confirm`).
pub fn read_password(prompt: &str, confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("IRONCORE_PASSWORD") {
        return Ok(p);
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("no password: set IRONCORE_PASSWORD or run on a terminal to be asked");
    }
    let first = rpassword::prompt_password(prompt)?;
    if confirm && rpassword::prompt_password("again: ")? != first {
        bail!("the passwords differ; nothing was changed");
    }
    Ok(first)
}

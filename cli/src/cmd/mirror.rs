//! `mirror status`: how far each mirror site of each datastore is behind.

use anyhow::Result;
use clap::Subcommand;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;

use crate::api::{get, rows};
use crate::output::{Output, table};

/// `mirror …`.
#[derive(Subcommand)]
pub enum MirrorCmd {
    /// Per datastore and mirror site: the newest snapshot complete there, what is still
    /// pending (snapshots, logical bytes) and the lag in seconds.
    Status {
        /// Only this datastore.
        #[arg(long)]
        store: Option<DatastoreName>,
    },
}

/// Runs a `mirror` command.
pub fn run(api: &ApiClient, cmd: MirrorCmd, out: Output) -> Result<()> {
    match cmd {
        MirrorCmd::Status { store } => {
            let path = match &store {
                Some(s) => format!(
                    "/api2/json/mirror/status?store={}",
                    encode_segment(s.as_str())
                ),
                None => "/api2/json/mirror/status".to_string(),
            };
            table(
                out,
                &rows(&get(api, &path)?),
                &[
                    ("datastore", "DATASTORE"),
                    ("site", "SITE"),
                    ("last-complete", "LAST COMPLETE"),
                    ("pending-snapshots", "PENDING"),
                    ("pending-bytes", "PENDING BYTES"),
                    ("lag-seconds", "LAG S"),
                ],
            );
            Ok(())
        }
    }
}

//! `user list|create|update|remove|password` and `login`: users and their passwords.

use anyhow::{Result, bail};
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use serde_json::json;

use ironcore_client::api_client::encode_segment;

use crate::api::{get, rows, send};
use crate::conn::read_password;
use crate::output::{Output, object, table};

/// `user …`.
#[derive(Subcommand)]
pub enum UserCmd {
    /// List users.
    List,
    /// Create a user (USER@REALM).
    Create {
        userid: String,
        /// Give it a password for `login` (from IRONCORE_PASSWORD, or asked).
        #[arg(long)]
        password: bool,
    },
    /// Set a user's password (from IRONCORE_PASSWORD, or asked).
    Password { userid: String },
    /// Enable or disable a user. Disabled, its tokens and tickets are refused on every node as
    /// soon as the change is applied there; tickets issued before stay refused once enabled.
    Update {
        userid: String,
        /// Let the user in again.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Refuse the user, its tokens and its tickets from now on.
        #[arg(long)]
        disable: bool,
        /// A new comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Remove a user with its tokens and grants for good.
    Remove { userid: String },
}

/// Runs a `user` command.
pub fn run(api: &ApiClient, cmd: UserCmd, out: Output) -> Result<()> {
    match cmd {
        UserCmd::List => table(
            out,
            &rows(&get(api, "/api2/json/access/users")?),
            &[
                ("userid", "USER"),
                ("enabled", "ENABLED"),
                ("comment", "COMMENT"),
            ],
        ),
        UserCmd::Create { userid, password } => {
            let password = if password {
                Some(read_password(&format!("password for {userid}: "), true)?)
            } else {
                None
            };
            object(
                out,
                &send(
                    api,
                    Method::POST,
                    "/api2/json/access/users",
                    json!({ "userid": userid, "password": password }),
                )?,
            )
        }
        UserCmd::Update {
            userid,
            enable,
            disable,
            comment,
        } => {
            let enabled = match (enable, disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            if enabled.is_none() && comment.is_none() {
                bail!("nothing to change: give --enable, --disable or --comment");
            }
            object(
                out,
                &send(
                    api,
                    Method::PUT,
                    &format!("/api2/json/access/users/{}", encode_segment(&userid)),
                    json!({ "enable": enabled, "comment": comment }),
                )?,
            )
        }
        UserCmd::Remove { userid } => object(
            out,
            &send(
                api,
                Method::DELETE,
                &format!("/api2/json/access/users/{}", encode_segment(&userid)),
                json!({}),
            )?,
        ),
        UserCmd::Password { userid } => {
            let password = read_password(&format!("new password for {userid}: "), true)?;
            object(
                out,
                &send(
                    api,
                    Method::PUT,
                    "/api2/json/access/password",
                    json!({ "userid": userid, "password": password }),
                )?,
            )
        }
    }
    Ok(())
}

/// Runs `login`: a ticket for `userid`'s password, printed as a shell `export`.
pub fn login(api: &ApiClient, userid: String, out: Output) -> Result<()> {
    let password = read_password(&format!("password for {userid}: "), false)?;
    let t = send(
        api,
        Method::POST,
        "/api2/json/access/ticket",
        json!({ "username": userid, "password": password }),
    )?;
    if out == Output::Json {
        object(out, &t);
    } else {
        println!(
            "export IRONCORE_TICKET='{}'",
            t["ticket"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

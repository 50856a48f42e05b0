//! Password login (a ticket for every node) and password changes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_raft::MetaCommand;
use ironcore_types::{AuthId, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::check;
use crate::auth::ticket;
use crate::node::Node;

/// Body of `POST /api2/json/access/ticket`.
#[derive(Debug, Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

/// Checks a user's password and answers a ticket. Unauthenticated; every failure looks the
/// same so it tells nothing about which users exist.
pub(crate) async fn login(
    State(node): State<Arc<Node>>,
    Json(req): Json<Login>,
) -> ApiResult<Json<Value>> {
    let failed = || {
        NodeError::Unauthenticated(
            "authentication failed: wrong user name or password (users log in as NAME@REALM)"
                .into(),
        )
    };
    let user: AuthId = req.username.parse().map_err(|_| failed())?;
    if user.is_token() {
        return Err(failed().into());
    }
    let record = node.meta().user(&user)?;
    let phc = record
        .as_ref()
        .filter(|u| u.enabled)
        .and_then(|u| u.password_hash.clone());
    let password = req.password;
    // Argon2 is deliberately slow: off the async threads.
    let ok = tokio::task::spawn_blocking(move || {
        phc.is_some_and(|phc| ticket::verify_password(&phc, &password))
    })
    .await
    .unwrap_or(false);
    if !ok {
        tracing::warn!(%user, "failed login");
        return Err(failed().into());
    }
    let key = node
        .meta()
        .cluster()?
        .map(|c| hex::decode(c.ticket_key).unwrap_or_default())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            NodeError::BadRequest("this cluster has no ticket key; use API tokens".into())
        })?;
    let generation = node.meta().ticket_generation(&user)?;
    let (t, expires) = ticket::issue(&key, &user, generation, chrono::Utc::now().timestamp())?;
    Ok(Json(
        json!({ "username": user.to_string(), "ticket": t, "expires": expires }),
    ))
}

/// Body of `PUT /api2/json/access/password`.
#[derive(Debug, Deserialize)]
pub struct SetPassword {
    userid: AuthId,
    password: String,
}

/// Sets a user's password: an administrator for anyone, a logged-in user for itself (never
/// an API token).
pub(crate) async fn set_password(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Json(req): Json<SetPassword>,
) -> ApiResult<Json<Value>> {
    if caller.auth_id != req.userid {
        check(node.meta(), &caller, "/", Privilege::Manage)?;
    }
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || ticket::hash_password(&password))
        .await
        .map_err(NodeError::join("a chunk store call"))??;
    node.propose(
        &caller.auth_id,
        MetaCommand::SetPassword {
            userid: req.userid.clone(),
            password_hash: Some(hash),
        },
    )
    .await?;
    Ok(Json(
        json!({ "userid": req.userid.to_string(), "password": "set" }),
    ))
}

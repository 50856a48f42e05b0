//! Password login (a ticket for every node) and password changes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_raft::MetaCommand;
use ironcore_types::{AuthId, Privilege};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::JsonBody;
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::check;
use crate::auth::ticket;
use crate::node::Node;

/// Body of `POST /api2/json/access/ticket`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Login {
    username: String,
    password: String,
}

/// Checks a user's password and answers a ticket. Unauthenticated; every failure looks the
/// same so it tells nothing about which users exist.
#[utoipa::path(
    post,
    path = "/api2/json/access/ticket",
    tag = "access",
    summary = "log in with a password: a ticket for `Authorization: IBSTicket …` (no authentication)",
    request_body = Login,
    responses((status = 200, description = "a ticket, valid on every node for two hours", body = serde_json::Value))
)]
pub(crate) async fn login(
    State(node): State<Arc<Node>>,
    JsonBody(req): JsonBody<Login>,
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SetPassword {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}(![A-Za-z0-9._-]{1,64})?$")]
    userid: AuthId,
    #[schema(min_length = 8)]
    password: String,
}

/// Sets a user's password: an administrator for anyone, a logged-in user for itself (never
/// an API token).
#[utoipa::path(
    put,
    path = "/api2/json/access/password",
    tag = "access",
    summary = "set a user's password (Admin, or the user itself with a ticket)",
    request_body = SetPassword,
    responses((status = 200, description = "the password was set", body = serde_json::Value))
)]
pub(crate) async fn set_password(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<SetPassword>,
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

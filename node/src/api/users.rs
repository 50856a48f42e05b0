//! Users and API tokens: list, create, update (enable, disable, expiry), remove. Every change
//! goes through Raft, is audited there, and takes effect on a node as soon as it is applied
//! there: credentials are checked against the applied state on every call, never cached.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_raft::MetaCommand;
use ironcore_types::AuthId;
use ironcore_types::records::{TokenRecord, UserRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::admin;
use super::extract::{JsonBody, Path};
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::{Caller, hash_secret, new_secret};
use crate::node::Node;

/// Tokens are managed by their own user (logged in, not through another token) or an admin.
fn own_token_or_admin(node: &Node, caller: &Caller, tokenid: &AuthId) -> Result<(), NodeError> {
    if tokenid.user() != caller.auth_id.user() || caller.auth_id.is_token() {
        admin(node, caller)?;
    }
    Ok(())
}

fn parse_id(id: &str, token: bool) -> Result<AuthId, NodeError> {
    let parsed: AuthId = id
        .parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))?;
    match (token, parsed.is_token()) {
        (true, false) => Err(NodeError::BadRequest(format!(
            "{id} is a user, not a token (USER@REALM!NAME)"
        ))),
        (false, true) => Err(NodeError::BadRequest(format!(
            "{id} is a token, not a user (NAME@REALM)"
        ))),
        _ => Ok(parsed),
    }
}

/// `GET /api2/json/access/users`.
#[utoipa::path(
    get,
    path = "/api2/json/access/users",
    tag = "access",
    summary = "users",
    responses((status = 200, description = "users", body = serde_json::Value))
)]
pub(crate) async fn users(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    let users: Vec<Value> = node.meta().users()?.into_iter()
        .map(|u| json!({ "userid": u.userid.to_string(), "enabled": u.enabled, "comment": u.comment }))
        .collect();
    Ok(Json(json!({ "data": users })))
}

/// `POST /api2/json/access/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateUser {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}$")]
    userid: AuthId,
    #[serde(default)]
    comment: String,
    /// Lets the user log in with a password (`ironcore-backup login`).
    #[serde(default)]
    #[schema(min_length = 8)]
    password: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api2/json/access/users",
    tag = "access",
    summary = "create a user",
    request_body = CreateUser,
    responses((status = 200, description = "the user", body = serde_json::Value))
)]
pub(crate) async fn create_user(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<CreateUser>,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    node.propose(
        &caller.auth_id,
        MetaCommand::CreateUser(UserRecord {
            userid: req.userid.clone(),
            password_hash: req
                .password
                .as_deref()
                .map(crate::auth::ticket::hash_password)
                .transpose()?,
            enabled: true,
            comment: req.comment,
        }),
    )
    .await?;
    Ok(Json(json!({ "userid": req.userid.to_string() })))
}

/// `GET /api2/json/access/tokens`.
#[utoipa::path(
    get,
    path = "/api2/json/access/tokens",
    tag = "access",
    summary = "API tokens",
    responses((status = 200, description = "API tokens, never their secrets", body = serde_json::Value))
)]
pub(crate) async fn tokens(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    let meta = node.meta();
    let mut list = Vec::new();
    for t in meta.tokens()? {
        list.push(json!({
            "tokenid": t.tokenid.to_string(),
            "enabled": !meta.token_disabled(&t.tokenid)?,
            "expires": t.expires,
            "comment": t.comment,
        }));
    }
    Ok(Json(json!({ "data": list })))
}

/// `POST /api2/json/access/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateToken {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}![A-Za-z0-9._-]{1,64}$")]
    tokenid: AuthId,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    expires: i64,
}

#[utoipa::path(
    post,
    path = "/api2/json/access/tokens",
    tag = "access",
    summary = "create a token (secret shown once)",
    request_body = CreateToken,
    responses((status = 200, description = "the token and its secret, shown once", body = serde_json::Value))
)]
pub(crate) async fn create_token(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<CreateToken>,
) -> ApiResult<Json<Value>> {
    own_token_or_admin(&node, &caller, &req.tokenid)?;
    let secret = new_secret();
    node.propose(
        &caller.auth_id,
        MetaCommand::CreateToken(TokenRecord {
            tokenid: req.tokenid.clone(),
            secret_hash: hash_secret(&secret),
            expires: req.expires,
            comment: req.comment,
        }),
    )
    .await?;
    Ok(Json(
        json!({ "tokenid": req.tokenid.to_string(), "secret": secret }),
    ))
}

/// `PUT /api2/json/access/users/{userid}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateUser {
    /// Enable (true) or disable (false); unchanged when absent.
    #[serde(default)]
    enable: Option<bool>,
    /// A new comment; unchanged when absent.
    #[serde(default)]
    comment: Option<String>,
}

/// Enables or disables a user (admin only). Disabled, its tokens and every ticket issued
/// before are refused on every node as soon as the change is applied there.
#[utoipa::path(
    put,
    path = "/api2/json/access/users/{userid}",
    tag = "access",
    summary = "enable or disable a user, or change its comment (Admin)",
    params(("userid" = String, Path, description = "the user (NAME@REALM)", pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}$")),
    request_body = UpdateUser,
    responses((status = 200, description = "the user", body = serde_json::Value))
)]
pub(crate) async fn update_user(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(userid): Path<String>,
    JsonBody(req): JsonBody<UpdateUser>,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    let userid = parse_id(&userid, false)?;
    if req.enable == Some(false) && userid == caller.auth_id.user() {
        return Err(NodeError::BadRequest(format!(
            "{userid} cannot disable itself; ask another administrator"
        ))
        .into());
    }
    node.propose(
        &caller.auth_id,
        MetaCommand::UpdateUser {
            userid: userid.clone(),
            enabled: req.enable,
            comment: req.comment,
        },
    )
    .await?;
    let u = node
        .meta()
        .user(&userid)?
        .ok_or_else(|| NodeError::NotFound(format!("user {userid} does not exist")))?;
    Ok(Json(
        json!({ "userid": userid.to_string(), "enabled": u.enabled, "comment": u.comment }),
    ))
}

/// `DELETE /api2/json/access/users/{userid}`: the user, its tokens and its grants (admin only).
#[utoipa::path(
    delete,
    path = "/api2/json/access/users/{userid}",
    tag = "access",
    summary = "remove a user with its tokens and grants (Admin)",
    params(("userid" = String, Path, description = "the user (NAME@REALM)", pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "the user removed", body = serde_json::Value))
)]
pub(crate) async fn remove_user(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(userid): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&node, &caller)?;
    let userid = parse_id(&userid, false)?;
    if userid == caller.auth_id.user() {
        return Err(NodeError::BadRequest(format!(
            "{userid} cannot remove itself; ask another administrator"
        ))
        .into());
    }
    node.propose(
        &caller.auth_id,
        MetaCommand::RemoveUser {
            userid: userid.clone(),
        },
    )
    .await?;
    Ok(Json(json!({ "removed": userid.to_string() })))
}

/// `PUT /api2/json/access/tokens/{tokenid}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateToken {
    /// Enable (true) or disable (false); unchanged when absent.
    #[serde(default)]
    enable: Option<bool>,
    /// New expiry (epoch seconds, 0 for never); unchanged when absent.
    #[serde(default)]
    #[schema(minimum = 0)]
    expire: Option<i64>,
    /// A new comment; unchanged when absent.
    #[serde(default)]
    comment: Option<String>,
}

/// Enables, disables or re-dates a token (its user or an admin).
#[utoipa::path(
    put,
    path = "/api2/json/access/tokens/{tokenid}",
    tag = "access",
    summary = "enable, disable or re-date a token (its user or Admin)",
    params(("tokenid" = String, Path, description = "the token (NAME@REALM!TOKEN)", pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}![A-Za-z0-9._-]{1,64}$")),
    request_body = UpdateToken,
    responses((status = 200, description = "the token", body = serde_json::Value))
)]
pub(crate) async fn update_token(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(tokenid): Path<String>,
    JsonBody(req): JsonBody<UpdateToken>,
) -> ApiResult<Json<Value>> {
    let tokenid = parse_id(&tokenid, true)?;
    own_token_or_admin(&node, &caller, &tokenid)?;
    node.propose(
        &caller.auth_id,
        MetaCommand::UpdateToken {
            tokenid: tokenid.clone(),
            enabled: req.enable,
            expires: req.expire,
            comment: req.comment,
        },
    )
    .await?;
    let meta = node.meta();
    let t = meta
        .token(&tokenid)?
        .ok_or_else(|| NodeError::NotFound(format!("token {tokenid} does not exist")))?;
    Ok(Json(json!({
        "tokenid": tokenid.to_string(),
        "enabled": !meta.token_disabled(&tokenid)?,
        "expires": t.expires,
        "comment": t.comment,
    })))
}

/// `DELETE /api2/json/access/tokens/{tokenid}`: the token and its grants (its user or an
/// admin).
#[utoipa::path(
    delete,
    path = "/api2/json/access/tokens/{tokenid}",
    tag = "access",
    summary = "remove a token and its grants (its user or Admin)",
    params(("tokenid" = String, Path, description = "the token (NAME@REALM!TOKEN)", pattern = r"^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}![A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "the token removed", body = serde_json::Value))
)]
pub(crate) async fn remove_token(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(tokenid): Path<String>,
) -> ApiResult<Json<Value>> {
    let tokenid = parse_id(&tokenid, true)?;
    own_token_or_admin(&node, &caller, &tokenid)?;
    node.propose(
        &caller.auth_id,
        MetaCommand::RemoveToken {
            tokenid: tokenid.clone(),
        },
    )
    .await?;
    Ok(Json(json!({ "removed": tokenid.to_string() })))
}

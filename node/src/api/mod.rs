//! The HTTPS API (JSON REST under `/api2/json`): routing, authentication, error mapping.
//! Every route but `/api2/json/health` and the password login requires an API token or a
//! login ticket.

mod access;
mod admin;
mod backup;
mod datastore_ops;
mod jobs;
mod maintenance;
mod metrics;
mod notifications;
mod reader;
mod ready;
mod remotes;
mod users;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use crate::NodeError;
use crate::auth::{Caller, authenticate};
use crate::node::Node;

/// An error answered as `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError(pub NodeError);

impl<E: Into<NodeError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "request failed");
        }
        (status, Json(json!({ "error": self.0.to_string() }))).into_response()
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// An authenticated caller, extracted from the `Authorization` header.
#[derive(Debug)]
pub struct Auth(pub Caller);

impl FromRequestParts<Arc<Node>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(Auth(authenticate(
            node.meta(),
            header,
            chrono::Utc::now().timestamp(),
        )?))
    }
}

/// Every route, with the paths the OpenAPI document lists.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/api2/json/health", "liveness; no authentication"),
    (
        "GET",
        "/api2/json/status",
        "this node, the cluster and its services",
    ),
    ("GET", "/api2/json/openapi.json", "this document"),
    (
        "GET",
        "/api2/json/cluster/status",
        "members, roles, leader, term",
    ),
    (
        "POST",
        "/api2/json/cluster/join-token",
        "a one-time join token (Admin)",
    ),
    (
        "POST",
        "/api2/json/cluster/join",
        "join with a token (authenticated by the token)",
    ),
    (
        "POST",
        "/api2/json/cluster/membership",
        "promote, demote, remove a member, or transfer leadership to it (Admin)",
    ),
    ("GET", "/api2/json/datastore", "datastores"),
    ("POST", "/api2/json/datastore", "create a datastore"),
    ("GET", "/api2/json/datastore/{store}/snapshots", "snapshots"),
    (
        "GET",
        "/api2/json/datastore/{store}/snapshot",
        "one snapshot with its manifest",
    ),
    (
        "DELETE",
        "/api2/json/datastore/{store}/snapshot",
        "forget a snapshot",
    ),
    (
        "GET",
        "/api2/json/datastore/{store}/chunk/{id}",
        "a chunk's stored bytes",
    ),
    (
        "POST",
        "/api2/json/datastore/{store}/prune",
        "prune a group (dry-run: only say what would go)",
    ),
    (
        "PUT",
        "/api2/json/datastore/{store}/protect",
        "protect or unprotect a snapshot",
    ),
    (
        "GET",
        "/api2/json/datastore/{store}/namespace",
        "namespaces",
    ),
    (
        "POST",
        "/api2/json/datastore/{store}/namespace",
        "create a namespace (?ns=a/b)",
    ),
    (
        "POST",
        "/api2/json/datastore/{store}/gc",
        "start garbage collection on every storage node (returns the task's UPID)",
    ),
    (
        "POST",
        "/api2/json/datastore/{store}/verify",
        "start verification with repair of short copies (returns the task's UPID)",
    ),
    (
        "GET",
        "/api2/json/datastore/{store}/verify",
        "verification status (?window-days=30)",
    ),
    (
        "GET",
        "/api2/json/datastore/{store}/probe",
        "probe the datastore's directory on every storage node",
    ),
    (
        "GET",
        "/api2/json/datastore/{store}/stats",
        "snapshots, sizes, and each node's chunks and free space",
    ),
    (
        "PUT",
        "/api2/json/datastore/{store}/quarantine",
        "quarantine a datastore (or lift it): no new backups, no GC",
    ),
    ("POST", "/api2/json/backup", "start a backup session"),
    (
        "HEAD",
        "/api2/json/backup/{upid}/chunk/{id}",
        "whether the datastore holds a chunk",
    ),
    (
        "PUT",
        "/api2/json/backup/{upid}/chunk/{id}",
        "upload a chunk (201: stored; 200: already held)",
    ),
    (
        "POST",
        "/api2/json/backup/{upid}/finish",
        "commit the snapshot",
    ),
    (
        "GET",
        "/api2/json/notification/targets",
        "notification targets (webhooks)",
    ),
    (
        "POST",
        "/api2/json/notification/targets",
        "add a webhook target: name, url, min-severity",
    ),
    (
        "DELETE",
        "/api2/json/notification/targets/{name}",
        "remove a notification target",
    ),
    (
        "POST",
        "/api2/json/notification/targets/{name}/test",
        "send a test event to a target and report its answer",
    ),
    (
        "POST",
        "/api2/json/jobs/{id}/run",
        "run a job now (as its scheduled run would)",
    ),
    (
        "GET",
        "/api2/json/sync/diff",
        "snapshots only on a remote's datastore or only on a local one",
    ),
    (
        "GET",
        "/api2/json/remotes",
        "registered remotes (never their secrets)",
    ),
    (
        "POST",
        "/api2/json/remotes",
        "register a remote: host, port, auth-id, secret, pinned fingerprint",
    ),
    ("DELETE", "/api2/json/remotes/{name}", "remove a remote"),
    (
        "POST",
        "/api2/json/remotes/{name}/test",
        "connect to a remote as registered and report what it answers",
    ),
    (
        "GET",
        "/api2/json/jobs",
        "scheduled jobs with their last and next runs",
    ),
    (
        "POST",
        "/api2/json/jobs",
        "schedule a verify, gc or prune job",
    ),
    ("DELETE", "/api2/json/jobs/{id}", "remove a scheduled job"),
    ("GET", "/api2/json/tasks", "tasks of the cluster"),
    (
        "GET",
        "/api2/json/tasks/{upid}/log",
        "a task's log (on the node that ran it)",
    ),
    ("DELETE", "/api2/json/tasks/{upid}", "cancel a running task"),
    (
        "POST",
        "/api2/json/access/ticket",
        "log in with a password: a ticket for `Authorization: IBSTicket …` (no authentication)",
    ),
    (
        "PUT",
        "/api2/json/access/password",
        "set a user's password (Admin, or the user itself with a ticket)",
    ),
    ("GET", "/api2/json/access/users", "users"),
    ("POST", "/api2/json/access/users", "create a user"),
    ("GET", "/api2/json/access/tokens", "API tokens"),
    (
        "POST",
        "/api2/json/access/tokens",
        "create a token (secret shown once)",
    ),
    (
        "PUT",
        "/api2/json/access/users/{userid}",
        "enable or disable a user, or change its comment (Admin)",
    ),
    (
        "DELETE",
        "/api2/json/access/users/{userid}",
        "remove a user with its tokens and grants (Admin)",
    ),
    (
        "PUT",
        "/api2/json/access/tokens/{tokenid}",
        "enable, disable or re-date a token (its user or Admin)",
    ),
    (
        "DELETE",
        "/api2/json/access/tokens/{tokenid}",
        "remove a token and its grants (its user or Admin)",
    ),
    ("GET", "/api2/json/access/acl", "ACL entries"),
    ("PUT", "/api2/json/access/acl", "grant a role"),
    (
        "DELETE",
        "/api2/json/access/acl",
        "take a grant back (?path=&auth_id=)",
    ),
    ("GET", "/api2/json/keys", "registered encryption keys"),
    ("POST", "/api2/json/keys", "register a key fingerprint"),
    ("GET", "/api2/json/audit", "the audit log"),
    (
        "POST",
        "/api2/json/backup/{upid}/known",
        "which of these chunks the datastore holds",
    ),
    (
        "GET",
        "/metrics",
        "Prometheus metrics (token with Audit on /)",
    ),
];

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The routes that take no credential (the join route is authenticated by the one-time token
/// in its body, the login route by the password in its body).
pub const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/api2/json/health"),
    ("POST", "/api2/json/access/ticket"),
    ("POST", "/api2/json/cluster/join"),
];

async fn openapi(_auth: Auth) -> Json<serde_json::Value> {
    let mut paths = serde_json::Map::new();
    for (method, path, summary) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let mut op = json!({ "summary": summary });
        if PUBLIC.contains(&(*method, *path)) {
            op["security"] = json!([]);
        }
        entry[method.to_ascii_lowercase()] = op;
    }
    Json(json!({
        "openapi": "3.0.3",
        "info": { "title": "Ironcore Backup API", "version": env!("CARGO_PKG_VERSION") },
        "components": { "securitySchemes": { "token": {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "IBSAPIToken USER@REALM!TOKEN:SECRET"
        }}},
        "security": [{ "token": [] }],
        "paths": paths,
    }))
}

/// The API's router.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/api2/json/health", get(health))
        .route("/api2/json/openapi.json", get(openapi))
        .route("/api2/json/status", get(admin::status))
        .route("/api2/json/cluster/status", get(admin::cluster_status))
        .route("/api2/json/cluster/join-token", post(admin::join_token))
        .route("/api2/json/cluster/join", post(admin::join))
        .route("/api2/json/cluster/membership", post(admin::membership))
        .route(
            "/api2/json/datastore",
            get(admin::datastores).post(admin::create_datastore),
        )
        .route(
            "/api2/json/datastore/{store}/snapshots",
            get(reader::snapshots),
        )
        .route(
            "/api2/json/datastore/{store}/snapshot",
            get(reader::snapshot).delete(reader::forget),
        )
        .route(
            "/api2/json/datastore/{store}/chunk/{id}",
            get(reader::chunk),
        )
        .route(
            "/api2/json/datastore/{store}/prune",
            post(maintenance::prune),
        )
        .route(
            "/api2/json/datastore/{store}/protect",
            put(maintenance::protect),
        )
        .route(
            "/api2/json/datastore/{store}/namespace",
            get(maintenance::namespaces).post(maintenance::create_namespace),
        )
        .route(
            "/api2/json/datastore/{store}/gc",
            post(datastore_ops::gc_start),
        )
        .route(
            "/api2/json/datastore/{store}/verify",
            post(datastore_ops::verify_start).get(datastore_ops::verify_status),
        )
        .route(
            "/api2/json/datastore/{store}/probe",
            get(datastore_ops::probe),
        )
        .route(
            "/api2/json/datastore/{store}/stats",
            get(datastore_ops::stats),
        )
        .route(
            "/api2/json/datastore/{store}/quarantine",
            put(datastore_ops::quarantine),
        )
        .route("/api2/json/backup", post(backup::start))
        .route(
            "/api2/json/backup/{upid}/chunk/{id}",
            put(backup::upload).head(backup::has_chunk),
        )
        .route("/api2/json/backup/{upid}/known", post(backup::known))
        .route("/api2/json/backup/{upid}/finish", post(backup::finish))
        .route(
            "/api2/json/notification/targets",
            get(notifications::list).post(notifications::add),
        )
        .route(
            "/api2/json/notification/targets/{name}",
            axum::routing::delete(notifications::remove),
        )
        .route(
            "/api2/json/notification/targets/{name}/test",
            post(notifications::test),
        )
        .route("/api2/json/remotes", get(remotes::list).post(remotes::add))
        .route(
            "/api2/json/remotes/{name}",
            axum::routing::delete(remotes::remove),
        )
        .route("/api2/json/remotes/{name}/test", post(remotes::test))
        .route("/api2/json/jobs", get(jobs::list).post(jobs::create))
        .route("/api2/json/jobs/{id}", axum::routing::delete(jobs::remove))
        .route("/api2/json/jobs/{id}/run", post(jobs::run_now))
        .route("/api2/json/sync/diff", get(jobs::sync_diff))
        .route("/api2/json/tasks", get(admin::tasks))
        .route("/api2/json/tasks/{upid}/log", get(admin::task_log))
        .route(
            "/api2/json/tasks/{upid}",
            axum::routing::delete(admin::cancel_task),
        )
        .route("/api2/json/access/ticket", post(access::login))
        .route("/api2/json/access/password", put(access::set_password))
        .route(
            "/api2/json/access/users",
            get(users::users).post(users::create_user),
        )
        .route(
            "/api2/json/access/users/{userid}",
            put(users::update_user).delete(users::remove_user),
        )
        .route(
            "/api2/json/access/tokens",
            get(users::tokens).post(users::create_token),
        )
        .route(
            "/api2/json/access/tokens/{tokenid}",
            put(users::update_token).delete(users::remove_token),
        )
        .route(
            "/api2/json/access/acl",
            get(admin::acls)
                .put(admin::set_acl)
                .delete(admin::remove_acl),
        )
        .route(
            "/api2/json/keys",
            get(admin::keys).post(admin::register_key),
        )
        .route("/api2/json/audit", get(admin::audit))
        .route("/metrics", get(metrics::metrics))
        .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            ready::require_leader,
        ))
        .with_state(node)
}

//! The HTTPS API (JSON REST under `/api2/json`): routing, authentication, error mapping.
//! Every route but `/api2/json/health` and the password login requires an API token or a
//! login ticket.

mod access;
mod admin;
mod backup;
mod datastore_ops;
pub mod doc;
mod extract;
mod job_body;
mod jobs;
mod maintenance;
mod metrics;
mod mirror;
mod notifications;
mod reader;
mod ready;
mod remotes;
mod sites;
mod users;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The document served at `/api2/json/openapi.json`, made once as the router is built.
static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();

#[utoipa::path(
    get,
    path = "/api2/json/health",
    tag = "cluster",
    summary = "liveness; no authentication",
    responses((status = 200, description = "the node's HTTPS server answers", body = serde_json::Value))
)]
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(
    get,
    path = "/api2/json/openapi.json",
    tag = "cluster",
    summary = "this document",
    responses((status = 200, description = "the OpenAPI 3.1 description of this API", body = serde_json::Value))
)]
async fn openapi(_auth: Auth) -> Json<serde_json::Value> {
    Json(DOCUMENT.get().cloned().unwrap_or_default())
}

/// Every route with its description, from the handlers' `#[utoipa::path]` attributes.
fn routes() -> OpenApiRouter<Arc<Node>> {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi))
        .routes(routes!(admin::status))
        .routes(routes!(admin::cluster_status))
        .routes(routes!(admin::join_token))
        .routes(routes!(admin::join))
        .routes(routes!(admin::membership))
        .routes(routes!(sites::list))
        .routes(routes!(sites::set))
        .routes(routes!(admin::datastores, admin::create_datastore))
        .routes(routes!(reader::snapshots))
        .routes(routes!(reader::snapshot, reader::forget))
        .routes(routes!(reader::chunk))
        .routes(routes!(maintenance::prune))
        .routes(routes!(maintenance::protect))
        .routes(routes!(
            maintenance::namespaces,
            maintenance::create_namespace
        ))
        .routes(routes!(datastore_ops::gc_start))
        .routes(routes!(
            datastore_ops::verify_start,
            datastore_ops::verify_status
        ))
        .routes(routes!(datastore_ops::probe))
        .routes(routes!(datastore_ops::stats))
        .routes(routes!(datastore_ops::quarantine))
        .routes(routes!(backup::start))
        .routes(routes!(backup::upload, backup::has_chunk))
        .routes(routes!(backup::known))
        .routes(routes!(backup::finish))
        .routes(routes!(notifications::list, notifications::add))
        .routes(routes!(notifications::remove))
        .routes(routes!(notifications::test))
        .routes(routes!(remotes::list, remotes::add))
        .routes(routes!(remotes::remove))
        .routes(routes!(remotes::test))
        .routes(routes!(jobs::list, jobs::create))
        .routes(routes!(jobs::remove))
        .routes(routes!(jobs::run_now))
        .routes(routes!(jobs::sync_diff))
        .routes(routes!(admin::tasks))
        .routes(routes!(admin::task_log))
        .routes(routes!(admin::cancel_task))
        .routes(routes!(access::login))
        .routes(routes!(access::set_password))
        .routes(routes!(users::users, users::create_user))
        .routes(routes!(users::update_user, users::remove_user))
        .routes(routes!(users::tokens, users::create_token))
        .routes(routes!(users::update_token, users::remove_token))
        .routes(routes!(admin::acls, admin::set_acl, admin::remove_acl))
        .routes(routes!(admin::keys, admin::register_key))
        .routes(routes!(admin::audit))
        .routes(routes!(metrics::metrics))
        .routes(routes!(mirror::status))
}

/// The API description a node serves: every route, its parameters, bodies, answers (errors
/// included) and who may call it.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes().split_for_parts();
    doc::finish(&mut doc);
    doc
}

/// The API's router.
pub fn router(node: Arc<Node>) -> Router {
    let (router, mut doc) = routes().split_for_parts();
    doc::finish(&mut doc);
    let _ = DOCUMENT.set(serde_json::to_value(&doc).unwrap_or_default());
    router
        .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            ready::require_leader,
        ))
        .with_state(node)
}

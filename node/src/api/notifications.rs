//! Notification targets: webhooks that receive events as JSON, or mail through an SMTP relay
//! (see [`crate::notify`]); `test` sends one test event and says what the target answered.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use ironcore_raft::MetaCommand;
use ironcore_types::Privilege;
use ironcore_types::records::{NotificationTarget, NotifyEndpoint, Severity};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{JsonBody, Path, Query};
use super::{ApiResult, Auth};
use crate::NodeError;
use crate::auth::check;
use crate::node::Node;
use crate::notify::{Event, deliver_to};

/// The ACL path that guards notification settings.
const PATH: &str = "/notification";

fn view(t: &NotificationTarget) -> Value {
    json!({
        "name": t.name,
        "endpoint": t.endpoint.to_string(),
        "min-severity": t.min_severity,
        "comment": t.comment,
    })
}

fn target(node: &Node, name: &str) -> Result<NotificationTarget, NodeError> {
    node.meta().notification_target(name)?.ok_or_else(|| {
        NodeError::NotFound(format!(
            "notification target {name} does not exist; see `ironcore-backup notification target list`"
        ))
    })
}

#[utoipa::path(
    get,
    path = "/api2/json/notification/targets",
    operation_id = "list_notification_targets",
    tag = "notifications",
    summary = "notification targets (webhooks)",
    responses((status = 200, description = "notification targets", body = serde_json::Value))
)]
pub(crate) async fn list(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, PATH, Privilege::Audit)?;
    let list: Vec<Value> = node
        .meta()
        .notification_targets()?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "data": list })))
}

/// Body of `POST /api2/json/notification/targets`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct AddTarget {
    name: String,
    /// A webhook URL, or …
    #[serde(default)]
    webhook: Option<String>,
    /// … an SMTP relay (`host:port`) with `from` and `to`.
    #[serde(default)]
    smtp_server: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default = "default_severity")]
    min_severity: String,
    #[serde(default)]
    comment: String,
}

fn default_severity() -> String {
    "warning".into()
}

#[utoipa::path(
    post,
    path = "/api2/json/notification/targets",
    operation_id = "add_notification_target",
    tag = "notifications",
    summary = "add a webhook target: name, url, min-severity",
    request_body = AddTarget,
    responses((status = 200, description = "the target", body = serde_json::Value))
)]
pub(crate) async fn add(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    JsonBody(req): JsonBody<AddTarget>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, PATH, Privilege::Manage)?;
    let min_severity: Severity = req
        .min_severity
        .parse()
        .map_err(|e: String| NodeError::BadRequest(format!("min-severity: {e}")))?;
    let endpoint = match (req.webhook, req.smtp_server) {
        (Some(url), None) => NotifyEndpoint::Webhook { url },
        (None, Some(server)) => NotifyEndpoint::Smtp {
            server,
            from: req
                .from
                .ok_or_else(|| NodeError::BadRequest("an SMTP target needs --from".into()))?,
            to: req.to,
        },
        _ => {
            return Err(NodeError::BadRequest(
                "give either --webhook URL or --smtp-server HOST:PORT (with --from and --to)"
                    .into(),
            )
            .into());
        }
    };
    let t = NotificationTarget {
        name: req.name,
        endpoint,
        min_severity,
        comment: req.comment,
    };
    node.propose(
        &caller.auth_id,
        MetaCommand::CreateNotificationTarget(t.clone()),
    )
    .await?;
    Ok(Json(view(&t)))
}

#[utoipa::path(
    delete,
    path = "/api2/json/notification/targets/{name}",
    operation_id = "remove_notification_target",
    tag = "notifications",
    summary = "remove a notification target",
    params(("name" = String, Path, description = "its name")),
    responses((status = 200, description = "the target removed", body = serde_json::Value))
)]
pub(crate) async fn remove(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, PATH, Privilege::Manage)?;
    target(&node, &name)?;
    node.propose(
        &caller.auth_id,
        MetaCommand::RemoveNotificationTarget { name: name.clone() },
    )
    .await?;
    Ok(Json(json!({ "removed": name })))
}

/// Query of `POST …/test`: a recipient that replaces a mail target's own.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestQuery {
    #[serde(default)]
    recipient: Option<String>,
}

/// Sends one test event to the target now (a single attempt) and reports the answer.
#[utoipa::path(
    post,
    path = "/api2/json/notification/targets/{name}/test",
    operation_id = "test_notification_target",
    tag = "notifications",
    summary = "send a test event to a target and report its answer",
    params(("name" = String, Path, description = "its name"), TestQuery),
    responses((status = 200, description = "what the target answered", body = serde_json::Value))
)]
pub(crate) async fn test(
    State(node): State<Arc<Node>>,
    Auth(caller): Auth,
    Path(name): Path<String>,
    Query(q): Query<TestQuery>,
) -> ApiResult<Json<Value>> {
    check(node.meta(), &caller, PATH, Privilege::Manage)?;
    let t = target(&node, &name)?;
    let event = Event {
        severity: Severity::Info,
        title: format!(
            "test notification from {} (asked by {})",
            node.config().name,
            caller.auth_id
        ),
        fields: json!({ "event": "test", "node": node.config().name.to_string() }),
        mode: crate::notify::NotifyMode::Always,
    };
    let status = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        deliver_to(&t, &event.body(), q.recipient.as_deref()),
    )
    .await
    .map_err(|_| {
        NodeError::BadRequest(format!(
            "notification target {name}: no answer from {} within 10 s",
            t.endpoint
        ))
    })?
    .map_err(|e| {
        NodeError::BadRequest(format!(
            "notification target {name}: {e}; check the address and that the target is up"
        ))
    })?;
    Ok(Json(
        json!({ "target": name, "delivered": true, "status": status }),
    ))
}

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

/// Body of `POST /api2/json/notification/targets` as read (described as [`NewTarget`]).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
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

/// Refuses what [`MailAddress`] does not describe: no `@`, or a blank (JSON Schema's `\s`:
/// Unicode white space and U+FEFF), a control character or an angle bracket.
fn mail_address(a: &str) -> Result<(), NodeError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}' || "<>".contains(c);
    if !a.contains('@') || a.contains(bad) {
        return Err(NodeError::BadRequest(format!(
            "'{}' is not a mail address (NAME@DOMAIN, without blanks, control characters or <>)",
            a.escape_debug()
        )));
    }
    Ok(())
}

fn default_severity() -> String {
    "warning".into()
}

/// How `POST /api2/json/notification/targets` is described: a webhook or an SMTP relay, never
/// both ([`AddTarget`] reads either and refuses the rest with a message naming the options).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum NewTarget {
    /// Events are POSTed as JSON to a URL.
    Webhook(NewWebhook),
    /// Events are mailed through an SMTP relay.
    Smtp(NewSmtp),
}

/// A mail address as a target takes it: an `@`, no blank, control character or angle bracket
/// (the pattern and [`mail_address`] refuse the same characters).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(pattern = r"^[^\s<>\x00-\x1f\x7f-\x9f]*@[^\s<>\x00-\x1f\x7f-\x9f]*$")]
#[allow(dead_code)]
pub struct MailAddress(String);

/// A webhook target.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewWebhook {
    #[schema(pattern = r"^[a-z0-9_-]{1,32}$")]
    name: String,
    /// The URL events are POSTed to.
    #[schema(pattern = r"^https?://\S*$")]
    webhook: String,
    /// `info`, `warning` (default) or `error`.
    #[serde(default)]
    #[schema(pattern = r"^(info|warning|error)$")]
    min_severity: String,
    #[serde(default)]
    comment: String,
}

/// A mail target.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewSmtp {
    #[schema(pattern = r"^[a-z0-9_-]{1,32}$")]
    name: String,
    /// The relay, `HOST:PORT`.
    #[schema(
        pattern = r"^.+:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})$"
    )]
    smtp_server: String,
    /// The sender address.
    from: MailAddress,
    /// The recipients, at least one.
    #[schema(min_items = 1)]
    to: Vec<MailAddress>,
    /// `info`, `warning` (default) or `error`.
    #[serde(default)]
    #[schema(pattern = r"^(info|warning|error)$")]
    min_severity: String,
    #[serde(default)]
    comment: String,
}

#[utoipa::path(
    post,
    path = "/api2/json/notification/targets",
    operation_id = "add_notification_target",
    tag = "notifications",
    summary = "add a webhook or SMTP target",
    request_body = NewTarget,
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
    for a in req.from.iter().chain(&req.to) {
        mail_address(a)?;
    }
    let endpoint = match (req.webhook, req.smtp_server) {
        (Some(_), None) if req.from.is_some() || !req.to.is_empty() => {
            return Err(NodeError::BadRequest(
                "--from and --to belong to an SMTP target; a webhook takes only its URL".into(),
            )
            .into());
        }
        (None, Some(_)) if req.to.is_empty() => {
            return Err(NodeError::BadRequest(
                "an SMTP target needs at least one --to recipient".into(),
            )
            .into());
        }
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
    responses((status = 200, description = "what the target answered: `delivered` true with its status, or false with the `error`", body = serde_json::Value))
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
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        deliver_to(&t, &event.body(), q.recipient.as_deref()),
    )
    .await;
    // The test ran whatever the target did: its outcome is the answer, not an error of this call.
    let error = match answer {
        Err(_) => format!(
            "notification target {name}: no answer from {} within 10 s",
            t.endpoint
        ),
        Ok(Err(e)) => {
            format!("notification target {name}: {e}; check the address and that the target is up")
        }
        Ok(Ok(status)) => {
            return Ok(Json(
                json!({ "target": name, "delivered": true, "status": status }),
            ));
        }
    };
    Ok(Json(
        json!({ "target": name, "delivered": false, "error": error }),
    ))
}

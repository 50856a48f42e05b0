//! The API's description (`GET /api2/json/openapi.json`), derived from the handlers'
//! `#[utoipa::path]` attributes and their types as the router is built (`super::router`): the
//! routes, their parameters and bodies, what they answer (errors included), and who may call
//! them (`security: []` on the few public routes; every other route takes a token or ticket).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder};
use utoipa::{Modify, ToSchema};

/// Every error of the API: its status says what kind, `error` says what went wrong and how to
/// fix it.
#[derive(Debug, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, and what to do about it.
    pub error: String,
}

/// How many snapshots a prune keeps per time bucket (`KeepOptions`); 0 or absent: not set.
#[derive(Debug, Default, serde::Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
#[allow(dead_code)]
pub struct Keep {
    /// The N newest snapshots.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_last: u32,
    /// The newest of each of the last N hours that have one.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_hourly: u32,
    /// The newest of each of the last N days that have one.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_daily: u32,
    /// The newest of each of the last N weeks that have one.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_weekly: u32,
    /// The newest of each of the last N months that have one.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_monthly: u32,
    /// The newest of each of the last N years that have one.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295.0)]
    keep_yearly: u32,
}

/// A sync include filter: `backup-id:TYPE/ID`, `namespace:NS` or `keep-BUCKET=N|*`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[schema(
    pattern = r"^(backup-id:(host|vm|ct)/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}|namespace:([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?|keep-(last|hourly|daily|weekly|monthly|yearly)=(0*[1-9][0-9]{0,8}|\*))$"
)]
#[allow(dead_code)]
pub struct IncludeFilter(String);

/// The top of the document: title, version, the credential scheme.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Ironcore Backup API",
        description = "The HTTPS API of an Ironcore Backup node. Calls take `Authorization: IBSAPIToken USER@REALM!TOKEN:SECRET` or `Authorization: IBSTicket TICKET` (from `POST /api2/json/access/ticket`); who may call what is in docs/security.md."
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// The routes that take no credential: liveness, the password login (authenticated by the
/// password in its body) and joining (by the one-time token in its body).
pub const PUBLIC: &[(&str, &str)] = &[
    ("get", "/api2/json/health"),
    ("post", "/api2/json/access/ticket"),
    ("post", "/api2/json/cluster/join"),
];

/// Completes the document once the router has collected every route's description.
pub fn finish(doc: &mut OpenApi) {
    Credentials.modify(doc);
    Errors.modify(doc);
    Timezones.modify(doc);
}

/// A prune's `timezone` is one of the IANA names the node knows (its chrono-tz database).
struct Timezones;

impl Modify for Timezones {
    fn modify(&self, doc: &mut OpenApi) {
        use utoipa::openapi::schema::Schema;
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let names: Vec<serde_json::Value> = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|z| serde_json::Value::from(z.name()))
            .collect();
        // The request flattens its keep options in: an `allOf` of them and its own fields.
        let parts: Vec<&mut RefOr<Schema>> = match components.schemas.get_mut("PruneRequest") {
            Some(RefOr::T(Schema::AllOf(all))) => all.items.iter_mut().collect(),
            Some(other) => vec![other],
            None => Vec::new(),
        };
        for part in parts {
            if let RefOr::T(Schema::Object(o)) = part
                && let Some(RefOr::T(Schema::Object(tz))) = o.properties.get_mut("timezone")
            {
                tz.enum_values = Some(names.clone());
            }
        }
    }
}

/// Names the credential scheme and requires it everywhere but on the public routes.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "IBSAPIToken USER@REALM!TOKEN:SECRET, or IBSTicket TICKET",
            ))),
        );
        doc.security = Some(vec![SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in [("get", &mut item.get), ("post", &mut item.post)] {
                if let Some(op) = op
                    && PUBLIC.contains(&(method, path.as_str()))
                {
                    op.security = Some(Vec::new());
                }
            }
        }
    }
}

/// The errors any route may answer, added to each operation: a refused or malformed request
/// (400), a missing or refused credential (401, except on public routes), a missing right (403),
/// something that does not exist (404), a conflict with the cluster's state (409), a task
/// cancelled under it (410), a fault of this node (500), a peer's bad answer (502), a cluster
/// that cannot serve now (503: no leader, a node out of touch, too few copies) and a full
/// datastore (507).
struct Errors;

const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "the request is malformed or refused; `error` says why",
    ),
    (
        "401",
        "no credential, or one that is unknown, expired, disabled or revoked",
    ),
    ("403", "the caller lacks the right; `error` names it"),
    ("404", "what the request names does not exist"),
    (
        "409",
        "the cluster's state forbids it now (a busy group, a quarantined datastore)",
    ),
    ("410", "the task was cancelled"),
    ("500", "a fault of this node; `error` says what failed"),
    ("502", "another node answered badly"),
    (
        "503",
        "the cluster cannot serve this now; `error` names the nodes to use",
    ),
    ("507", "the datastore is full"),
];

impl Modify for Errors {
    fn modify(&self, doc: &mut OpenApi) {
        let error = || {
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                ))))
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.head,
            ];
            for op in ops.into_iter().flatten() {
                // Liveness takes nothing and refuses nothing; the other public routes check
                // the password or join token in their body.
                let liveness = op.operation_id.as_deref() == Some("health");
                for (code, what) in ERRORS {
                    if liveness && *code == "401" {
                        continue;
                    }
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(*what)
                                    .content("application/json", error())
                                    .build(),
                            )
                        });
                }
            }
        }
    }
}

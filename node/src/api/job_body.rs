//! The body of `POST /api2/json/jobs`: one shape per kind of job. [`CreateJob`] reads every
//! field a job may carry and [`CreateJob::kind`] refuses a field that does not belong to the
//! kind asked for, so that what the node accepts is exactly what [`NewJob`] describes.

use ironcore_chunkstore::prune::KeepOptions;
use ironcore_types::DatastoreName;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::NodeError;
use crate::api::doc::{IncludeFilter, Keep};
use crate::api::extract::present;

/// The highest bandwidth limit a sync job takes, in MiB/s (1 TiB/s); 0 means none.
pub(crate) const MAX_BWLIMIT_MIB: u64 = 1 << 20;

/// `POST /api2/json/jobs` as read; described as [`NewJob`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateJob {
    pub id: String,
    pub store: DatastoreName,
    pub kind: String,
    pub schedule: String,
    #[serde(default)]
    pub ns: Option<String>,
    #[serde(default)]
    pub comment: String,
    // Fields of one kind only: present (even as 0, false or empty) means given.
    #[serde(default, deserialize_with = "present")]
    pub keep: Option<KeepOptions>,
    #[serde(default, deserialize_with = "present")]
    pub remote: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub remote_store: Option<DatastoreName>,
    #[serde(default, deserialize_with = "present")]
    pub include: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub bwlimit: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub direction: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub encrypt: Option<bool>,
}

/// What a job body asks for, checked field by field.
#[derive(Debug, PartialEq)]
pub enum Asked {
    Verify,
    Gc,
    Prune(KeepOptions),
    Sync(SyncAsked),
}

/// The sync part of a job body.
#[derive(Debug, PartialEq)]
pub struct SyncAsked {
    pub push: bool,
    pub remote: String,
    pub remote_store: DatastoreName,
    pub include: Vec<String>,
    pub limit_mib: u64,
    pub encrypt: bool,
}

impl CreateJob {
    /// The kind asked for with its own fields; a field of another kind, a bad direction or
    /// filter, or a limit out of range is refused with what to change.
    pub fn kind(&self) -> Result<Asked, NodeError> {
        let given = |name: &str, present: bool| present.then(|| name.to_string());
        let sync_fields = [
            given("remote", self.remote.is_some()),
            given("remote-store", self.remote_store.is_some()),
            given("include", self.include.is_some()),
            given("bwlimit", self.bwlimit.is_some()),
            given("direction", self.direction.is_some()),
            given("encrypt", self.encrypt.is_some()),
        ];
        let foreign = |fields: &[Option<String>], kind: &str| -> Result<(), NodeError> {
            match fields.iter().flatten().next() {
                Some(f) => Err(NodeError::BadRequest(format!(
                    "{f} does not apply to a {kind} job; leave it out"
                ))),
                None => Ok(()),
            }
        };
        let keep_field = [given("keep", self.keep.is_some())];
        match self.kind.as_str() {
            "verify" | "gc" => {
                foreign(&keep_field, &self.kind)?;
                foreign(&sync_fields, &self.kind)?;
                Ok(if self.kind == "gc" {
                    Asked::Gc
                } else {
                    Asked::Verify
                })
            }
            // No keep option keeps everything, as a prune does (the CLI asks for one).
            "prune" => {
                foreign(&sync_fields, "prune")?;
                Ok(Asked::Prune(self.keep.unwrap_or_default()))
            }
            "sync" => {
                foreign(&keep_field, "sync")?;
                self.sync().map(Asked::Sync)
            }
            other => Err(NodeError::BadRequest(format!(
                "job kind '{other}' is not verify, gc, prune or sync"
            ))),
        }
    }

    fn sync(&self) -> Result<SyncAsked, NodeError> {
        let push = match self.direction.as_deref().unwrap_or("pull") {
            "pull" => false,
            "push" => true,
            other => {
                return Err(NodeError::BadRequest(format!(
                    "sync direction '{other}' is not pull or push"
                )));
            }
        };
        let remote = self
            .remote
            .clone()
            .ok_or_else(|| NodeError::BadRequest("a sync job needs --remote".into()))?;
        let remote_store = self
            .remote_store
            .clone()
            .ok_or_else(|| NodeError::BadRequest("a sync job needs --remote-repository".into()))?;
        let include = self.include.clone().unwrap_or_default();
        for f in &include {
            f.parse::<crate::sync::Filter>()
                .map_err(NodeError::BadRequest)?;
        }
        let limit_mib = self.bwlimit.unwrap_or(0);
        if limit_mib > MAX_BWLIMIT_MIB {
            return Err(NodeError::BadRequest(format!(
                "bwlimit {limit_mib} MiB/s is more than {MAX_BWLIMIT_MIB} MiB/s (1 TiB/s); give 0 for no limit"
            )));
        }
        let encrypt = self.encrypt.unwrap_or(false);
        if encrypt && !push {
            return Err(NodeError::BadRequest(
                "--encrypt applies to push jobs only: a pull job stores what the remote holds"
                    .into(),
            ));
        }
        Ok(SyncAsked {
            push,
            remote,
            remote_store,
            include,
            limit_mib,
            encrypt,
        })
    }
}

/// Declares one shape of [`NewJob`]: the fields every job has, then its own.
macro_rules! job_shape {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($own:tt)* }) => {
        $(#[$doc])*
        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        #[allow(dead_code)]
        pub struct $name {
            /// The job's name.
            #[schema(pattern = r"^[a-z0-9_-]{1,32}$")]
            id: String,
            /// The datastore it works on.
            #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
            store: String,
            #[schema(pattern = $kind)]
            kind: String,
            /// When it runs: `hourly`, `daily`, `weekly` or a calendar event such as `mon..fri 2:30`.
            schedule: CalendarEvent,
            /// The namespace it is scoped to (the root when absent).
            #[serde(default)]
            #[schema(pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6})?$")]
            ns: Option<String>,
            #[serde(default)]
            comment: String,
            $($own)*
        }
    };
}

/// When a job runs, as the scheduler reads it (`crate::scheduler::schedule`): `hourly`,
/// `daily`, `weekly` or a calendar event such as `mon..fri 2:30`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(
    pattern = r"^(hourly|daily|weekly|((mon\.\.(mon|tue|wed|thu|fri|sat|sun)|tue\.\.(tue|wed|thu|fri|sat|sun)|wed\.\.(wed|thu|fri|sat|sun)|thu\.\.(thu|fri|sat|sun)|fri\.\.(fri|sat|sun)|sat\.\.(sat|sun)|sun\.\.(sun)|mon|tue|wed|thu|fri|sat|sun)(,(mon\.\.(mon|tue|wed|thu|fri|sat|sun)|tue\.\.(tue|wed|thu|fri|sat|sun)|wed\.\.(wed|thu|fri|sat|sun)|thu\.\.(thu|fri|sat|sun)|fri\.\.(fri|sat|sun)|sat\.\.(sat|sun)|sun\.\.(sun)|mon|tue|wed|thu|fri|sat|sun))* )?(\*(/0*[1-9][0-9]{0,8})?|0*([0-9]|1[0-9]|2[0-3])(/0*[1-9][0-9]{0,8})?)(,(\*(/0*[1-9][0-9]{0,8})?|0*([0-9]|1[0-9]|2[0-3])(/0*[1-9][0-9]{0,8})?))*:(\*(/0*[1-9][0-9]{0,8})?|0*([0-9]|[1-5][0-9])(/0*[1-9][0-9]{0,8})?)(,(\*(/0*[1-9][0-9]{0,8})?|0*([0-9]|[1-5][0-9])(/0*[1-9][0-9]{0,8})?))*(:(\*(/0*[1-9][0-9]{0,8})?|0*([0-9]|[1-5][0-9])(/0*[1-9][0-9]{0,8})?)(,(\*(/0*[1-9][0-9]{0,8})?|0*([0-9]|[1-5][0-9])(/0*[1-9][0-9]{0,8})?))*)?)$"
)]
#[allow(dead_code)]
pub struct CalendarEvent(String);

job_shape!(
    /// A verify or garbage-collection job: nothing but the common fields.
    NewMaintenanceJob, r"^(verify|gc)$" {}
);

job_shape!(
    /// A prune job: what to keep (nothing set keeps everything).
    NewPruneJob, r"^prune$" {
        #[serde(default)]
        keep: Keep,
    }
);

job_shape!(
    /// A sync job that pulls from a remote into `store`.
    NewPullJob, r"^sync$" {
        /// The registered remote.
        #[schema(pattern = r"^[a-z0-9_-]{1,32}$")]
        remote: String,
        /// The remote's datastore.
        #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
        remote_store: String,
        /// Filters; a snapshot passes when any matches.
        #[serde(default)]
        include: Vec<IncludeFilter>,
        /// MiB/s, 0 for no limit.
        #[serde(default)]
        #[schema(maximum = 1048576)]
        bwlimit: u64,
        /// `pull` (the default).
        #[serde(default)]
        #[schema(pattern = r"^pull$")]
        direction: String,
        /// Always false: a pull stores what the remote holds.
        #[serde(default)]
        #[schema(schema_with = only_false)]
        encrypt: bool,
    }
);

job_shape!(
    /// A sync job that pushes `store` to a remote.
    NewPushJob, r"^sync$" {
        /// The registered remote.
        #[schema(pattern = r"^[a-z0-9_-]{1,32}$")]
        remote: String,
        /// The remote's datastore.
        #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
        remote_store: String,
        /// Filters; a snapshot passes when any matches.
        #[serde(default)]
        include: Vec<IncludeFilter>,
        /// MiB/s, 0 for no limit.
        #[serde(default)]
        #[schema(maximum = 1048576)]
        bwlimit: u64,
        #[schema(pattern = r"^push$")]
        direction: String,
        /// Encrypt unencrypted snapshots with the answering node's project key.
        #[serde(default)]
        encrypt: bool,
    }
);

/// `encrypt` of a pull job: a boolean that can only be false.
fn only_false() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Boolean)
        .enum_values(Some([false]))
        .build()
}

/// The body of `POST /api2/json/jobs`, one shape per kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum NewJob {
    Maintenance(NewMaintenanceJob),
    Prune(NewPruneJob),
    Pull(NewPullJob),
    Push(NewPushJob),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> CreateJob {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_kind_takes_only_its_own_fields() {
        let base = serde_json::json!({"id": "j", "store": "s", "schedule": "daily"});
        let with = |extra: serde_json::Value| {
            let mut b = base.clone();
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body(b)
        };
        assert_eq!(
            with(serde_json::json!({"kind": "gc"})).kind().unwrap(),
            Asked::Gc
        );
        let e = with(serde_json::json!({"kind": "verify", "bwlimit": 0}))
            .kind()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("bwlimit does not apply to a verify job"),
            "{e}"
        );
        assert!(
            with(serde_json::json!({"kind": "sync", "keep": {}}))
                .kind()
                .is_err()
        );
        assert!(
            with(serde_json::json!({"kind": "prune", "remote": "r"}))
                .kind()
                .is_err()
        );
        assert_eq!(
            with(serde_json::json!({"kind": "prune"})).kind().unwrap(),
            Asked::Prune(KeepOptions::default())
        );
        let pull = with(
            serde_json::json!({"kind": "sync", "remote": "r", "remote-store": "t",
            "encrypt": true}),
        );
        assert!(
            pull.kind()
                .unwrap_err()
                .to_string()
                .contains("push jobs only")
        );
        let push = with(
            serde_json::json!({"kind": "sync", "remote": "r", "remote-store": "t",
            "direction": "push", "encrypt": true, "bwlimit": 5}),
        );
        let Asked::Sync(s) = push.kind().unwrap() else {
            panic!("not a sync")
        };
        assert!(s.push && s.encrypt && s.limit_mib == 5);
        let too_fast = with(serde_json::json!({"kind": "sync", "remote": "r",
            "remote-store": "t", "bwlimit": MAX_BWLIMIT_MIB + 1}));
        assert!(too_fast.kind().is_err());
    }

    #[test]
    fn a_null_where_a_value_belongs_is_refused() {
        let b = serde_json::json!({"id": "j", "store": "s", "schedule": "daily",
            "kind": "verify", "remote": null});
        assert!(serde_json::from_value::<CreateJob>(b).is_err());
    }
}

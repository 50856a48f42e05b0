//! Following a task the node started (GC, verify, a sync run) to its end.

use std::time::Duration;

use anyhow::{Result, bail};
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::records::{TaskRecord, TaskState};
use serde_json::{Value, json};

use crate::output::{Output, object};

/// Waits for the task whose UPID `started` names, prints its log, and fails if it failed.
pub fn follow(api: &ApiClient, started: &Value, no_wait: bool, out: Output) -> Result<()> {
    let Some(upid) = started["upid"].as_str() else {
        bail!("the node did not return a task: {started}");
    };
    if no_wait {
        object(out, started);
        return Ok(());
    }
    let record = loop {
        let list: Value = api.blocking(api.get("/api2/json/tasks"))?;
        let found = list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["upid"] == upid)
            .cloned();
        if let Some(t) = found {
            let t: TaskRecord = serde_json::from_value(t)?;
            if t.state != TaskState::Running {
                break t;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let (_, log) = api.blocking(api.raw(
        Method::GET,
        &format!("/api2/json/tasks/{}/log", encode_segment(upid)),
        ironcore_client::Pieces::default(),
        "text/plain",
        &[],
    ))?;
    if out == Output::Json {
        object(
            out,
            &json!({ "upid": upid, "state": record.state, "log": String::from_utf8_lossy(&log) }),
        );
    } else {
        print!("{}", String::from_utf8_lossy(&log));
    }
    match record.state {
        TaskState::Error(e) => bail!("{e} (task {upid})"),
        _ => Ok(()),
    }
}

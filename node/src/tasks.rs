//! Tasks: every backup session and admin job gets a UPID, a log file on the node that runs it,
//! a record in Raft (start and end), and a cancel token.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ironcore_chunkstore::CancelToken;
use ironcore_types::AuthId;
use ironcore_types::records::{TaskRecord, TaskState};

use crate::{NodeError, Result};

/// A UPID in the design's format:
/// `UPID:{node}:{pid}:{pstart}:{task_id}:{starttime}:{type}:{id}:{auth_id}:` (hex numbers;
/// `:` in the id is escaped as `\x3a`).
pub fn upid(node: &str, task_id: u64, start: i64, kind: &str, id: &str, auth: &AuthId) -> String {
    let pid = std::process::id();
    format!(
        "UPID:{node}:{pid:08X}:{pstart:08X}:{task_id:08X}:{start:08X}:{kind}:{id}:{auth}:",
        pstart = process_start(),
        id = id.replace(':', "\\x3a"),
    )
}

fn process_start() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// A task running on this node.
#[derive(Debug)]
pub struct RunningTask {
    /// Its record.
    pub record: Mutex<TaskRecord>,
    /// Cancels it.
    pub cancel: CancelToken,
    log: Mutex<Option<std::fs::File>>,
}

impl RunningTask {
    /// Appends a line to the task log.
    pub fn log(&self, line: &str) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if let Some(f) = self.log.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = writeln!(f, "{now}: {line}");
        }
    }

    /// Fails with `task cancelled` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(NodeError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// The tasks of this node.
#[derive(Debug)]
pub struct Tasks {
    node: String,
    dir: PathBuf,
    next: Mutex<u64>,
    running: Mutex<HashMap<String, Arc<RunningTask>>>,
}

impl Tasks {
    /// Tasks of `node`, logged under `dir`.
    pub fn new(node: &str, dir: PathBuf) -> Self {
        Self {
            node: node.to_string(),
            dir,
            next: Mutex::new(0),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a task (the caller records it in Raft).
    pub fn start(&self, kind: &str, worker_id: &str, auth: &AuthId) -> Result<Arc<RunningTask>> {
        let now = chrono::Utc::now().timestamp();
        let task_id = {
            let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            *n
        };
        let upid = upid(&self.node, task_id, now, kind, worker_id, auth);
        std::fs::create_dir_all(&self.dir).map_err(NodeError::io("creating the task log dir"))?;
        let file = std::fs::File::create(self.log_path(&upid))
            .map_err(NodeError::io(format!("creating the log of {upid}")))?;
        let task = Arc::new(RunningTask {
            record: Mutex::new(TaskRecord {
                upid: upid.clone(),
                node: self.node.clone(),
                kind: kind.to_string(),
                worker_id: worker_id.to_string(),
                auth_id: auth.clone(),
                start: now,
                end: None,
                state: TaskState::Running,
            }),
            cancel: CancelToken::default(),
            log: Mutex::new(Some(file)),
        });
        task.log(&format!("starting {kind} {worker_id} for {auth}"));
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(upid, task.clone());
        Ok(task)
    }

    /// Ends a task with `state`; returns its final record. A task that ended already keeps
    /// its first end (a body that notices its cancellation after the node ended it at
    /// shutdown does not overwrite why).
    pub fn finish(&self, task: &RunningTask, state: TaskState) -> TaskRecord {
        let mut r = task.record.lock().unwrap_or_else(|p| p.into_inner());
        if r.end.is_some() {
            return r.clone();
        }
        r.end = Some(chrono::Utc::now().timestamp());
        r.state = state.clone();
        task.log(&format!(
            "TASK {}",
            match &state {
                TaskState::Ok => "OK".to_string(),
                TaskState::Warnings(n) => format!("WARNINGS: {n}"),
                TaskState::Error(e) => format!("ERROR: {e}"),
                TaskState::Running => "RUNNING".to_string(),
            }
        ));
        *task.log.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&r.upid);
        r.clone()
    }

    /// Every task running here.
    pub fn running(&self) -> Vec<Arc<RunningTask>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A running task.
    pub fn get(&self, upid: &str) -> Option<Arc<RunningTask>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(upid)
            .cloned()
    }

    /// How many tasks run here.
    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// How many tasks of `kind` run here.
    pub fn running_of(&self, kind: &str) -> usize {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|t| t.record.lock().unwrap_or_else(|p| p.into_inner()).kind == kind)
            .count()
    }

    /// Where a task's log is.
    pub fn log_path(&self, upid: &str) -> PathBuf {
        let safe: String = upid
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(safe)
    }
}

/// The most of a task log sent in one answer (the tail is kept).
const MAX_LOG: u64 = 2 << 20;

/// Reads a task log; a very long one is cut to its last 2 MiB, saying so.
pub fn read_log(path: &std::path::Path) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(NodeError::io("opening the task log"))?;
    let len = f
        .metadata()
        .map_err(NodeError::io("reading the task log"))?
        .len();
    let mut out = String::new();
    if len > MAX_LOG {
        f.seek(SeekFrom::Start(len - MAX_LOG))
            .map_err(NodeError::io("reading the task log"))?;
        out.push_str(&format!("[… first {} bytes left out]\n", len - MAX_LOG));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(NodeError::io("reading the task log"))?;
    out.push_str(&String::from_utf8_lossy(&bytes));
    Ok(out)
}

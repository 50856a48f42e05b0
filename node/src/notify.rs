//! Notifications: events — a task that ended, a backup abandoned by a node that went silent —
//! sent to every target (kept in Raft) whose minimum severity they reach: a JSON `POST` to a
//! webhook, or a plain-text mail through an SMTP relay. Each node sends the events of its own tasks, in the background, three attempts per
//! target with backoff (1 s, then 2 s); every delivery and failure is logged (`notify.log`).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use ironcore_types::records::{
    NotificationTarget, NotifyEndpoint, Severity, TaskRecord, TaskState,
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use ironcore_raft::MetaView;

/// Attempts per target and event.
pub const ATTEMPTS: u32 = 3;
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which targets get a task's end: the targets' own rules (their minimum severity, the
/// default, `error`), every target whatever the outcome (`always`), or none (`never`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotifyMode {
    /// Every target, whatever the outcome.
    Always,
    /// The targets' own minimum severity.
    #[default]
    Rules,
    /// No target.
    Never,
}

impl std::str::FromStr for NotifyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Self::Always),
            "error" => Ok(Self::Rules),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "notification mode '{other}' is not always, error or never"
            )),
        }
    }
}

/// One event.
#[derive(Clone, Debug)]
pub struct Event {
    /// How severe.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// The JSON sent (the title and severity are added).
    pub fields: Value,
    /// Which targets get it.
    pub mode: NotifyMode,
}

impl Event {
    /// The event of a task that ended (`None` while it runs).
    pub fn task_ended(task: &TaskRecord) -> Option<Self> {
        let (severity, outcome) = match &task.state {
            TaskState::Running => return None,
            TaskState::Ok => (Severity::Info, "OK".to_string()),
            TaskState::Warnings(n) => (Severity::Warning, format!("{n} warnings")),
            TaskState::Error(e) => (Severity::Error, e.clone()),
        };
        Some(Self {
            severity,
            title: format!(
                "{} {} on {}: {outcome}",
                task.kind, task.worker_id, task.node
            ),
            fields: json!({
                "event": "task-ended",
                "upid": task.upid,
                "node": task.node,
                "kind": task.kind,
                "worker-id": task.worker_id,
                "auth-id": task.auth_id.to_string(),
                "start": task.start,
                "end": task.end,
                "outcome": outcome,
            }),
            mode: NotifyMode::Rules,
        })
    }

    /// The JSON body sent.
    pub fn body(&self) -> Vec<u8> {
        let mut v = self.fields.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("severity".into(), json!(self.severity));
            o.insert("title".into(), json!(self.title));
            o.insert("time".into(), json!(chrono::Utc::now().to_rfc3339()));
        }
        v.to_string().into_bytes()
    }
}

/// The node's notification queue, the modes its running tasks asked for, and the last
/// outcome, for `status --services`.
#[derive(Debug)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Event>,
    modes: Mutex<std::collections::HashMap<String, NotifyMode>>,
    last: Mutex<Option<String>>,
}

impl Notifier {
    /// A notifier and the queue its worker ([`run`]) drains.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                modes: Mutex::new(Default::default()),
                last: Mutex::new(None),
            },
            rx,
        )
    }

    /// Queues `event` for every target that wants it.
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Task `upid` asks for `mode` when it ends (`--notification-mode`).
    pub fn set_mode(&self, upid: &str, mode: NotifyMode) {
        self.modes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(upid.to_string(), mode);
    }

    /// Queues the end of `task`, in the mode it asked for.
    pub fn task_ended(&self, task: &TaskRecord) {
        if let Some(mut event) = Event::task_ended(task) {
            event.mode = self
                .modes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&task.upid)
                .unwrap_or_default();
            self.send(event);
        }
    }

    /// The last delivery's outcome.
    pub fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, outcome: String) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    }
}

/// Delivers queued events to the targets in `meta` until the notifier is gone.
pub async fn run(
    meta: MetaView,
    notifier: Weak<Notifier>,
    mut queue: mpsc::UnboundedReceiver<Event>,
) {
    while let Some(event) = queue.recv().await {
        let Some(notifier) = notifier.upgrade() else {
            return;
        };
        let targets = match meta.notification_targets() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(target: "notify", error = %e, "cannot read notification targets");
                continue;
            }
        };
        let body = event.body();
        let wanted = |t: &NotificationTarget| match event.mode {
            NotifyMode::Always => true,
            NotifyMode::Rules => event.severity >= t.min_severity,
            NotifyMode::Never => false,
        };
        for t in targets.into_iter().filter(|t| wanted(t)) {
            let outcome = match deliver_with_retries(&t, &body).await {
                Ok(status) => {
                    tracing::info!(target: "notify", to = %t.name, status, title = %event.title, "notification delivered");
                    format!("{}: delivered ({status})", t.name)
                }
                Err(e) => {
                    tracing::warn!(target: "notify", to = %t.name, error = %e, title = %event.title, "notification not delivered");
                    format!("{}: failed: {e}", t.name)
                }
            };
            notifier.record(outcome);
        }
    }
}

/// Sends `body` to `target`, up to [`ATTEMPTS`] times with backoff; the HTTP status of the
/// delivery that succeeded.
pub async fn deliver_with_retries(target: &NotificationTarget, body: &[u8]) -> Result<u16, String> {
    let mut wait = Duration::from_secs(1);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, deliver_to(target, body, None)).await {
            Ok(Ok(status)) => return Ok(status),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(format!("{last} (after {ATTEMPTS} attempts)"))
}

/// One delivery of `body` (the event's JSON) to `target`; for mail, `recipient` replaces the
/// target's recipients (the test command's `--recipient`). The webhook's HTTP status, or 250
/// for an accepted mail.
pub async fn deliver_to(
    target: &NotificationTarget,
    body: &[u8],
    recipient: Option<&str>,
) -> Result<u16, String> {
    match &target.endpoint {
        NotifyEndpoint::Webhook { url } => deliver(url, body).await,
        NotifyEndpoint::Smtp { server, from, to } => {
            let to: Vec<String> = match recipient {
                Some(r) => vec![r.to_string()],
                None => to.clone(),
            };
            mail(server, from, &to, body).await
        }
    }
}

/// Sends the event as a plain-text mail through the relay at `server` (no authentication,
/// no TLS: a relay on this host or a trusted network, such as the host's MTA).
async fn mail(server: &str, from: &str, to: &[String], body: &[u8]) -> Result<u16, String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let event: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let title = event["title"].as_str().unwrap_or("Ironcore Backup event");
    let severity = event["severity"].as_str().unwrap_or("info");
    let stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("connection refused: SMTP relay {server}: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    // Reads one (possibly multi-line) reply; an error unless its code is `want`.
    async fn reply<R: tokio::io::AsyncBufRead + Unpin>(
        lines: &mut R,
        want: &str,
        after: &str,
    ) -> Result<(), String> {
        loop {
            let mut line = String::new();
            if lines
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err(format!(
                    "the SMTP relay closed the connection after {after}"
                ));
            }
            if line.len() < 4 || !line.starts_with(want) {
                return Err(format!(
                    "the SMTP relay answered {after} with: {}",
                    line.trim_end()
                ));
            }
            if line.as_bytes()[3] == b' ' {
                return Ok(());
            }
        }
    }
    let say = async |w: &mut tokio::net::tcp::OwnedWriteHalf, line: String| {
        w.write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())
    };
    reply(&mut lines, "220", "the greeting").await?;
    say(&mut write, "EHLO ironcore-backup\r\n".into()).await?;
    reply(&mut lines, "250", "EHLO").await?;
    say(&mut write, format!("MAIL FROM:<{from}>\r\n")).await?;
    reply(&mut lines, "250", "MAIL FROM").await?;
    for r in to {
        say(&mut write, format!("RCPT TO:<{r}>\r\n")).await?;
        reply(&mut lines, "25", &format!("RCPT TO {r}")).await?;
    }
    say(&mut write, "DATA\r\n".into()).await?;
    reply(&mut lines, "354", "DATA").await?;
    let pretty = serde_json::to_string_pretty(&event).unwrap_or_default();
    let mut text = format!(
        "From: {from}\r\nTo: {}\r\nSubject: [{severity}] {title}\r\nDate: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{title}\r\n\r\n",
        to.join(", "),
        chrono::Utc::now().to_rfc2822()
    );
    for line in pretty.lines() {
        // Dot-stuffing: a line that starts with '.' gets one more.
        if line.starts_with('.') {
            text.push('.');
        }
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str(".\r\n");
    say(&mut write, text).await?;
    reply(&mut lines, "250", "the message").await?;
    let _ = say(&mut write, "QUIT\r\n".into()).await;
    Ok(250)
}

/// The parts of a webhook URL.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    https: bool,
    host: String,
    port: u16,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("'{url}' is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("'{url}': unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("'{url}': bad port '{p}'"))?,
            None if after.is_empty() => default,
            None => return Err(format!("'{url}': unexpected '{after}' after the host")),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("'{url}': bad port '{p}'"))?,
            ),
            None => (authority.to_string(), default),
        }
    };
    if host.is_empty() {
        return Err(format!("'{url}' names no host"));
    }
    Ok(Url {
        https,
        host,
        port,
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

/// One `POST` of `body` to `url`; the status if it is 2xx.
pub async fn deliver(url: &str, body: &[u8]) -> Result<u16, String> {
    let u = parse_url(url)?;
    let tcp = TcpStream::connect((u.host.as_str(), u.port))
        .await
        .map_err(|e| format!("connection refused: {}:{}: {e}", u.host, u.port))?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(&u.path)
        .header(hyper::header::HOST, &u.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "ironcore-backup-notify")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let status = if u.https {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(u.host.clone())
            .map_err(|e| format!("'{}': {e}", u.host))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", u.host))?;
        post(TokioIo::new(tls), request).await?
    } else {
        post(TokioIo::new(tcp), request).await?
    };
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("the webhook answered HTTP {status}"))
    }
}

async fn post<T>(io: T, request: Request<Full<Bytes>>) -> Result<u16, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_parse_with_their_defaults() {
        let u = parse_url("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!(
            u,
            Url {
                https: false,
                host: "127.0.0.1".into(),
                port: 9000,
                authority: "127.0.0.1:9000".into(),
                path: "/hook?x=1".into(),
            }
        );
        let u = parse_url("https://hooks.example.org").unwrap();
        assert_eq!((u.https, u.port, u.path.as_str()), (true, 443, "/"));
        let u = parse_url("http://[::1]:8080/a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        for bad in ["ftp://x", "http://", "http://h:port/", "http://[::1/x"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn task_events_carry_their_severity() {
        let mut t = TaskRecord {
            upid: "UPID:x".into(),
            node: "n1".into(),
            kind: "verify".into(),
            worker_id: "store1".into(),
            auth_id: "root@pam".parse().unwrap(),
            start: 1,
            end: Some(2),
            state: TaskState::Running,
        };
        assert!(Event::task_ended(&t).is_none());
        t.state = TaskState::Error("chunk not found: abc".into());
        let e = Event::task_ended(&t).unwrap();
        assert_eq!(e.severity, Severity::Error);
        let body: Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(body["severity"], "error");
        assert_eq!(body["outcome"], "chunk not found: abc");
        assert!(
            body["title"]
                .as_str()
                .unwrap()
                .contains("verify store1 on n1")
        );
        t.state = TaskState::Ok;
        assert_eq!(Event::task_ended(&t).unwrap().severity, Severity::Info);
    }
}

//! Multi-process cluster tests of Ironcore Backup (layer 4).
//!
//! [`DaemonCluster`] starts real `ironcore-node` processes on loopback (each with its own data
//! dir, QUIC and HTTPS ports), bootstraps the first, joins the others with one-time tokens, and
//! drives them with the real `ironcore-backup` CLI. Nothing here is linked into the product.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Where the workspace's debug binaries are, built once per test process.
pub fn binaries() -> Result<(PathBuf, PathBuf)> {
    static BUILT: std::sync::OnceLock<std::result::Result<(PathBuf, PathBuf), String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "-p", "ironcore-node", "-p", "ironcore-cli"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            // Cargo gives this test its package's variables (CARGO_PKG_NAME, …). Build scripts
            // that watch them (ring's does) would see another value than in a shell build and
            // rebuild every time; the inner build gets a shell's environment.
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy();
                if [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_CRATE_",
                    "CARGO_BIN_",
                ]
                .iter()
                .any(|p| k.starts_with(p))
                    || [
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "CARGO_RUSTC_CURRENT_DIR",
                    ]
                    .contains(&k.as_ref())
                {
                    build.env_remove(k.as_ref());
                }
            }
            let status = build.status().map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("building ironcore-node and ironcore-backup failed".into());
            }
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // target/debug/deps/<test> → target/debug
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("no target dir")?
                .to_path_buf();
            Ok((dir.join("ironcore-node"), dir.join("ironcore-backup")))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn free_port() -> Result<u16> {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// One node process.
#[derive(Debug)]
pub struct DaemonNode {
    /// `node1`, …
    pub name: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its data dir.
    pub dir: PathBuf,
    /// HTTPS address.
    pub api: String,
    /// Certificate fingerprint.
    pub fingerprint: String,
    /// QUIC address (what the other nodes dial).
    pub quic: String,
    child: Option<Child>,
}

impl DaemonNode {
    /// Kills the process (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl DaemonNode {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user + system) the process used so far, from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Result<Duration> {
        let pid = self.pid().context("the node does not run")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        let hz = 100; // USER_HZ, fixed at 100 on Linux
        Ok(Duration::from_millis(ticks * 1000 / hz))
    }

    /// Sends SIGTERM and waits (at most `limit`) for the process to exit: how long it took
    /// and its exit status. Fails if it is still running after `limit` (it is then killed).
    pub fn terminate(&mut self, limit: Duration) -> Result<(Duration, std::process::ExitStatus)> {
        let mut child = self.child.take().context("the node does not run")?;
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !sent.success() {
            bail!("kill -TERM {} failed", child.id());
        }
        while started.elapsed() < limit {
            if let Some(status) = child.try_wait()? {
                return Ok((started.elapsed(), status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("{} still ran {limit:?} after SIGTERM", self.name)
    }

    /// Whether the process has exited (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The bytes of every file in the node's log dir.
    pub fn log_bytes(&self) -> u64 {
        std::fs::read_dir(self.dir.join("log"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

impl Drop for DaemonNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of daemon processes.
#[derive(Debug)]
pub struct DaemonCluster {
    /// Its nodes.
    pub nodes: Vec<DaemonNode>,
    /// The admin token (`root@pam!admin:SECRET`).
    pub admin_token: String,
    node_bin: PathBuf,
    cli_bin: PathBuf,
    /// Holds every file of the cluster.
    pub base: tempfile::TempDir,
    /// The link emulator between the sites (`ironcore-node fault-proxy`), when there is one.
    link: Option<Child>,
}

impl Drop for DaemonCluster {
    fn drop(&mut self) {
        if let Some(mut l) = self.link.take() {
            let _ = l.kill();
            let _ = l.wait();
        }
    }
}

impl DaemonCluster {
    /// Starts `n` nodes in one site and waits until all are voters.
    pub fn start(n: usize) -> Result<Self> {
        Self::start_with(n, |_| String::new())
    }

    /// [`DaemonCluster::start`] with `extra(i)` appended to node `i`'s configuration file
    /// (0-based; TOML tables such as `[project-key]`).
    pub fn start_with(n: usize, extra: impl Fn(usize) -> String) -> Result<Self> {
        Self::start_full(&vec!["primary"; n], extra)
    }

    /// Starts one node per entry of `sites`, node `i` standing in site `sites[i]`, and waits
    /// until all are voters.
    pub fn start_at(sites: &[&str]) -> Result<Self> {
        Self::start_full(sites, |_| String::new())
    }

    /// [`DaemonCluster::two_sites`] with the sites (and the witness) reaching each other only
    /// through a link emulator (`ironcore-node fault-proxy`) that delays every packet by
    /// `delay_ms` each way: the nodes of the other sites are dialled at its routes
    /// (`[peer-addresses]`).
    pub fn two_sites_over_wan(delay_ms: u64) -> Result<Self> {
        Self::two_sites_with(Some(delay_ms))
    }

    /// The two-site layout of the main job: 2 Primary nodes, 2 Backup nodes and a witness,
    /// with datastore `store1` at the Primary (2 copies) mirrored to the Backup site (1 copy).
    pub fn two_sites() -> Result<Self> {
        Self::two_sites_with(None)
    }

    fn two_sites_with(wan_delay_ms: Option<u64>) -> Result<Self> {
        let c = Self::start_full_wan(
            &["primary", "primary", "backup", "backup", "witness"],
            |_| String::new(),
            wan_delay_ms,
        )?;
        let created = c.cli(
            0,
            &[
                "datastore",
                "create",
                "store1",
                "--path",
                "/srv/store1",
                "--copies",
                "primary=2,backup=1",
            ],
        )?;
        if !created.status.success() {
            bail!(
                "datastore create: {}",
                String::from_utf8_lossy(&created.stderr)
            );
        }
        Ok(c)
    }

    fn start_full(sites: &[&str], extra: impl Fn(usize) -> String) -> Result<Self> {
        Self::start_full_wan(sites, extra, None)
    }

    fn start_full_wan(
        sites: &[&str],
        extra: impl Fn(usize) -> String,
        wan_delay_ms: Option<u64>,
    ) -> Result<Self> {
        let n = sites.len();
        let (node_bin, cli_bin) = binaries()?;
        let base = tempfile::tempdir()?;
        let mut cluster = Self {
            nodes: Vec::new(),
            admin_token: String::new(),
            node_bin,
            cli_bin,
            base,
            link: None,
        };
        for (i, site) in sites.iter().enumerate() {
            cluster.prepare_node(site, &extra(i))?;
        }
        if let Some(delay) = wan_delay_ms {
            cluster.link_sites(sites, delay)?;
        }
        cluster.node_cmd(0, &["init"])?;
        cluster.spawn(0)?;
        let token_file = cluster.nodes[0].dir.join("admin.token");
        wait("node1 to bootstrap", Duration::from_secs(60), || {
            Ok(token_file.exists() && std::fs::metadata(&token_file)?.len() > 0)
        })?;
        cluster.admin_token = std::fs::read_to_string(&token_file)?.trim().to_string();
        wait("node1's API", Duration::from_secs(30), || {
            Ok(cluster.cli(0, &["status"])?.status.success())
        })?;
        // node1's site is the primary (set at init); every other site is recorded before its
        // first node joins: `witness` as a witness site, any other as a backup site.
        let mut known = vec![sites[0]];
        for (i, site) in sites.iter().enumerate().skip(1) {
            if !known.contains(site) {
                let role = if *site == "witness" {
                    "witness"
                } else {
                    "backup"
                };
                ok(&cluster.cli(0, &["cluster", "site", "set", site, "--role", role])?);
                known.push(site);
            }
            let out = cluster.join_node(i)?;
            if !out.status.success() {
                bail!(
                    "ironcore-node join failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            cluster.spawn(i)?;
        }
        wait("all nodes to be voters", Duration::from_secs(90), || {
            let v = cluster.cli_json(0, &["cluster", "status"])?;
            Ok(v["nodes"]
                .as_array()
                .is_some_and(|l| l.len() == n && l.iter().all(|x| x["voter"] == true)))
        })?;
        Ok(cluster)
    }

    /// Starts the link emulator with a route in front of every node and points each node at
    /// the routes of the nodes of other sites (appended to its configuration, before it starts).
    fn link_sites(&mut self, sites: &[&str], delay_ms: u64) -> Result<()> {
        let routes: Vec<u16> = (0..sites.len())
            .map(|_| free_port())
            .collect::<Result<_>>()?;
        for (i, node) in self.nodes.iter().enumerate() {
            let mut section = String::from("\n[peer-addresses]\n");
            for (j, other) in self.nodes.iter().enumerate() {
                if sites[j] != sites[i] {
                    section.push_str(&format!("{} = \"127.0.0.1:{}\"\n", other.name, routes[j]));
                }
            }
            let mut text = std::fs::read_to_string(&node.config)?;
            text.push_str(&section);
            std::fs::write(&node.config, text)?;
        }
        let mut cmd = self.node_command();
        cmd.arg("fault-proxy")
            .args(["--delay-ms", &delay_ms.to_string()]);
        for (node, port) in self.nodes.iter().zip(&routes) {
            cmd.args(["--route", &format!("127.0.0.1:{port}={}", node.quic)]);
        }
        let log = std::fs::File::create(self.base.path().join("link.out"))?;
        self.link = Some(
            cmd.stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting the link emulator")?,
        );
        Ok(())
    }

    /// Writes the configuration of a new node `nodeN` standing in `site` (with `extra` appended
    /// to its configuration) and its identity; returns its index. It is not started.
    pub fn prepare_node(&mut self, site: &str, extra: &str) -> Result<usize> {
        let i = self.nodes.len();
        let name = format!("node{}", i + 1);
        let dir = self.base.path().join(&name);
        std::fs::create_dir_all(&dir)?;
        // The node refuses a data directory other users can read.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let (quic, api) = (free_port()?, free_port()?);
        let config = self.base.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "name = \"{name}\"\nsite = \"{site}\"\ndata-dir = \"{d}\"\nlisten = \"127.0.0.1:{quic}\"\napi-listen = \"127.0.0.1:{api}\"\ndatastore-prefix = \"{d}/storage\"\ntask-lease-secs = 3\n[raft]\nheartbeat-ms = 100\nelection-timeout-min-ms = 800\nelection-timeout-max-ms = 1600\n{extra}",
                d = dir.display(),
            ),
        )?;
        let out = self
            .node_command()
            .arg("--config")
            .arg(&config)
            .arg("fingerprint")
            .output()?;
        let fingerprint = String::from_utf8(out.stdout)?.trim().to_string();
        self.nodes.push(DaemonNode {
            name,
            config,
            dir,
            api: format!("127.0.0.1:{api}"),
            fingerprint,
            quic: format!("127.0.0.1:{quic}"),
            child: None,
        });
        Ok(i)
    }

    /// Runs `ironcore-node join` for prepared node `i` with a new token from node1; the
    /// command's output (a refused join fails with the reason on standard error).
    pub fn join_node(&self, i: usize) -> Result<Output> {
        let v = self.cli_json(0, &["cluster", "join-token"])?;
        let token = v["token"].as_str().context("no token")?.to_string();
        Ok(self
            .node_command()
            .arg("--config")
            .arg(&self.nodes[i].config)
            .args(["join", "--token", &token])
            .output()?)
    }

    fn node_cmd(&self, i: usize, args: &[&str]) -> Result<()> {
        let out = self
            .node_command()
            .arg("--config")
            .arg(&self.nodes[i].config)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "ironcore-node {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The daemon, started under umask 022 (as a shell of most systems would start it) so that
    /// tests see what it makes of a permissive umask; `exec` keeps its pid.
    fn node_command(&self) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("umask 022 && exec \"$0\" \"$@\"")
            .arg(&self.node_bin);
        cmd
    }

    /// Where node `i`'s standard output and error go (every run of it, appended).
    pub fn stdout_log(&self, i: usize) -> PathBuf {
        self.base
            .path()
            .join(format!("{}.stdout.log", self.nodes[i].name))
    }

    /// (Re)starts node `i`'s process.
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        self.spawn_with_env(i, &[])
    }

    /// (Re)starts node `i`'s process with extra environment `envs` (`IRONCORE_FAILPOINTS`).
    pub fn spawn_with_env(&mut self, i: usize, envs: &[(&str, &str)]) -> Result<()> {
        // Beside the data directory, not in it: the harness's file, not the node's.
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.stdout_log(i))?;
        let child = self
            .node_command()
            .arg("--config")
            .arg(&self.nodes[i].config)
            .arg("run")
            .envs(envs.iter().copied())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// Creates datastore `name` at `/srv/NAME` (under each node's prefix) keeping `copies`
    /// copies, as the admin through node `i`; panics if refused.
    pub fn create_datastore(&self, i: usize, name: &str, copies: u8) {
        let path = format!("/srv/{name}");
        let copies = copies.to_string();
        ok(&self
            .cli(
                i,
                &[
                    "datastore",
                    "create",
                    name,
                    "--path",
                    &path,
                    "--copies",
                    &copies,
                ],
            )
            .expect("the CLI runs"));
    }

    /// Sends signal `sig` (`-STOP`, `-CONT`, …) to node `i`'s process.
    pub fn signal(&self, i: usize, sig: &str) -> Result<()> {
        let pid = self.nodes[i].pid().context("the node is not running")?;
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill {sig} {pid} failed");
        }
        Ok(())
    }

    /// The sum of every sample of metric `name` (any labels) in node `i`'s `/metrics`.
    pub fn metric(&self, i: usize, name: &str) -> Result<f64> {
        let fp: ironcore_types::Fingerprint = self.nodes[i]
            .fingerprint
            .parse()
            .map_err(|e| anyhow::anyhow!("fingerprint: {e}"))?;
        let api = ironcore_client::ApiClient::new(
            &self.nodes[i].api,
            fp,
            Some(self.admin_token.clone()),
        )?
        .with_runtime()?;
        let (_, body) = api.blocking(api.raw(
            hyper::Method::GET,
            "/metrics",
            ironcore_client::Pieces::default(),
            "text/plain",
            &[],
        ))?;
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Runs the CLI against node `i` as the admin.
    pub fn cli(&self, i: usize, args: &[&str]) -> Result<Output> {
        self.cli_as(i, &self.admin_token, args)
    }

    /// Runs the CLI against node `i` with `token`.
    pub fn cli_as(&self, i: usize, token: &str, args: &[&str]) -> Result<Output> {
        Ok(Command::new(&self.cli_bin)
            .args(args)
            .env("IRONCORE_URL", &self.nodes[i].api)
            .env("IRONCORE_FINGERPRINT", &self.nodes[i].fingerprint)
            .env("IRONCORE_TOKEN", token)
            .output()?)
    }

    /// Runs the CLI against node `i` without a token, with extra environment `envs`
    /// (`IRONCORE_TICKET`, `IRONCORE_PASSWORD`).
    pub fn cli_env(&self, i: usize, envs: &[(&str, &str)], args: &[&str]) -> Result<Output> {
        Ok(Command::new(&self.cli_bin)
            .args(args)
            .env("IRONCORE_URL", &self.nodes[i].api)
            .env("IRONCORE_FINGERPRINT", &self.nodes[i].fingerprint)
            .env("IRONCORE_TOKEN", "")
            .envs(envs.iter().copied())
            .output()?)
    }

    /// Starts, as the admin through node `i`, an image backup of `group` into `store` that
    /// reads from a FIFO, so it stays running while the returned writer is open (1 MiB is
    /// written); returns once its task runs, with the task's UPID. The child's output is piped.
    pub fn fifo_backup(
        &self,
        i: usize,
        store: &str,
        group: &str,
    ) -> Result<(Child, std::fs::File, String)> {
        let fifo = self
            .base
            .path()
            .join(format!("{}.fifo", group.replace('/', "-")));
        if !Command::new("mkfifo").arg(&fifo).status()?.success() {
            bail!("mkfifo {} failed", fifo.display());
        }
        let child = Command::new(&self.cli_bin)
            .args([
                "backup",
                &fifo.to_string_lossy(),
                "--image",
                "--store",
                store,
                "--group",
                group,
            ])
            .env("IRONCORE_URL", &self.nodes[i].api)
            .env("IRONCORE_FINGERPRINT", &self.nodes[i].fingerprint)
            .env("IRONCORE_TOKEN", &self.admin_token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo)?;
        std::io::Write::write_all(&mut writer, &vec![7u8; 1 << 20])?;
        let mut upid = String::new();
        wait(
            "the FIFO backup's task to run",
            Duration::from_secs(30),
            || {
                let v = self.cli_json(i, &["task", "list", "--state", "running"])?;
                let found = v.as_array().and_then(|l| {
                    l.iter().find(|t| {
                        t["worker_id"]
                            .as_str()
                            .is_some_and(|w| w.ends_with(&format!(":{group}")))
                    })
                });
                if let Some(t) = found {
                    upid = t["upid"].as_str().unwrap_or_default().to_string();
                }
                Ok(found.is_some())
            },
        )?;
        Ok((child, writer, upid))
    }

    /// The snapshots (`GROUP/TIME`) of `group` in `store`, oldest first, as node `i` lists them.
    pub fn snapshots_of(&self, i: usize, store: &str, group: &str) -> Result<Vec<String>> {
        let list = self.cli_json(i, &["snapshot", "list", "--store", store])?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["group"] == group)
            .filter_map(|s| s["snapshot"].as_str().map(String::from))
            .collect())
    }

    /// Runs the CLI with `--output json` and parses its answer; fails on a non-zero exit.
    pub fn cli_json(&self, i: usize, args: &[&str]) -> Result<Value> {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let out = self.cli(i, &a)?;
        if !out.status.success() {
            bail!(
                "ironcore-backup {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// The stdout of a command that must have succeeded (panics with its stderr otherwise).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The index (0-based) in `c.nodes` of the node whose Raft id is `id`, from `cluster status`
/// output `status`.
pub fn index_of(c: &DaemonCluster, status: &Value, id: u64) -> usize {
    let name = status["nodes"]
        .as_array()
        .and_then(|l| l.iter().find(|n| n["id"].as_u64() == Some(id)))
        .and_then(|n| n["name"].as_str())
        .unwrap_or_else(|| panic!("node {id} is not in {status}"))
        .to_string();
    c.nodes
        .iter()
        .position(|n| n.name == name)
        .unwrap_or_else(|| panic!("{name} is not a node of this cluster"))
}

/// Polls `cond` every 100 ms until it holds or `limit` passes.
pub fn wait(what: &str, limit: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match cond() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out waiting for {what} (last error: {last})")
}

/// The chunk files of datastore `store` on every node, grouped by chunk (same file name), the
/// largest chunks first: (stored length, the copies' paths).
pub fn chunk_copies(c: &DaemonCluster, store: &str) -> Vec<(u64, Vec<PathBuf>)> {
    let mut by_name: std::collections::BTreeMap<String, (u64, Vec<PathBuf>)> = Default::default();
    for n in &c.nodes {
        let base = n.dir.join("storage/srv").join(store).join(".chunks");
        let Ok(shards) = std::fs::read_dir(&base) else {
            continue;
        };
        // The shard directories (`.chunks` also holds the datastore's layout file).
        for shard in shards.flatten().filter(|e| e.path().is_dir()) {
            for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
                let len = f.metadata().unwrap().len();
                let e = by_name
                    .entry(f.file_name().to_string_lossy().into_owned())
                    .or_insert((len, Vec::new()));
                e.1.push(f.path());
            }
        }
    }
    let mut v: Vec<(u64, Vec<PathBuf>)> = by_name.into_values().collect();
    v.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
    v
}

/// A local HTTP endpoint that accepts requests and keeps their bodies: a webhook for tests of
/// notifications. Answers `200 OK` to everything.
#[derive(Debug)]
pub struct WebhookSink {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl WebhookSink {
    /// Starts listening on a free loopback port (the thread ends with the test process).
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(body) = read_request(stream)
                    && let Ok(mut b) = kept.lock()
                {
                    b.push(body);
                }
            }
        });
        Ok(Self { url, bodies })
    }

    /// The bodies received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes), answers 200, returns
/// the body.
fn read_request(mut stream: std::net::TcpStream) -> Result<String> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            bail!("connection closed inside the headers");
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + len {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")?;
    Ok(String::from_utf8_lossy(&data[head_end..]).into_owned())
}

/// A local SMTP relay that accepts every mail and keeps it (envelope recipients, then the
/// message): for tests of mail notifications.
#[derive(Debug)]
pub struct MailSink {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    mails: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl MailSink {
    /// Starts listening on a free loopback port (the thread ends with the test process).
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let mails = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(got) = smtp_session(stream)
                    && let Ok(mut m) = kept.lock()
                {
                    m.extend(got);
                }
            }
        });
        Ok(Self { addr, mails })
    }

    /// The mails received so far: `RCPT a@b` lines, a blank line, the message.
    pub fn mails(&self) -> Vec<String> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

fn smtp_session(stream: std::net::TcpStream) -> Result<Vec<String>> {
    use std::io::{BufRead, BufReader, Write};
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let mut mails = Vec::new();
    let mut rcpt = Vec::new();
    out.write_all(b"220 sink ready\r\n")?;
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Ok(mails);
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            out.write_all(b"250-sink\r\n250 OK\r\n")?;
        } else if upper.starts_with("MAIL FROM") {
            rcpt.clear();
            out.write_all(b"250 OK\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            rcpt.push(line[8..].trim().trim_matches(['<', '>']).to_string());
            out.write_all(b"250 OK\r\n")?;
        } else if upper.starts_with("DATA") {
            out.write_all(b"354 end with .\r\n")?;
            let mut message = String::new();
            loop {
                let mut l = String::new();
                if lines.read_line(&mut l)? == 0 || l == ".\r\n" {
                    break;
                }
                message.push_str(&l);
            }
            let head: String = rcpt.iter().map(|r| format!("RCPT {r}\n")).collect();
            mails.push(format!("{head}\n{message}"));
            out.write_all(b"250 queued\r\n")?;
        } else if upper.starts_with("QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(mails);
        } else {
            out.write_all(b"502 not here\r\n")?;
        }
    }
}

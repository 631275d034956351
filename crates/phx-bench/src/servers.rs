//! Starting the servers under test as child processes (release builds).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running server process.
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
    /// Under heaptrack the child is its wrapper script; this is the server itself.
    profiled: Option<u32>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.profiled.or(self.child.id()).unwrap_or(0)
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.profiled {
            // SIGTERM lets the server exit normally, so heaptrack writes its whole profile.
            let _ = Command::new("kill").arg(pid.to_string()).status().await;
            if tokio::time::timeout(Duration::from_secs(120), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// The first descendant of `pid` whose command name is `name` (the server under a
/// wrapper script), from /proc's `children` lists.
fn descendant(pid: u32, name: &str) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    for child in children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
    {
        let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
        if name.starts_with(comm.trim()) {
            return Some(child);
        }
        if let Some(found) = descendant(child, name) {
            return Some(found);
        }
    }
    None
}

/// Where the servers' release binaries are: this workspace's `target/release`, or
/// `PHX_BENCH_BIN_DIR` (another checkout's, to measure an older commit the same way).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PHX_BENCH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("target/release")
}

/// Spawns `bin args…` (a release binary of [`target_dir`]) and waits for its
/// "listening on ws://ADDR" (or http://) line.
pub async fn spawn(
    name: &'static str,
    bin: &str,
    args: &[&str],
    envs: &[(&str, String)],
) -> anyhow::Result<Server> {
    spawn_path(name, &target_dir().join(bin), bin, args, envs, true).await
}

/// Spawns the program at `path` (`bin` is its command name) and waits for its
/// "listening on" line. `profiled`: the PHX_BENCH_HEAPTRACK and PHX_BENCH_SIGTERM
/// wrappers apply (they are for the servers under test, not for helpers such as a
/// backend).
async fn spawn_path(
    name: &'static str,
    path: &Path,
    bin: &str,
    args: &[&str],
    envs: &[(&str, String)],
    profiled: bool,
) -> anyhow::Result<Server> {
    // PHX_BENCH_HEAPTRACK=DIR runs the server under heaptrack, its profile written to
    // DIR/<bin>.<pid>.zst (`heaptrack_print` reads it; Debian's heaptrack package).
    let heaptrack = std::env::var_os("PHX_BENCH_HEAPTRACK")
        .filter(|_| profiled)
        .map(PathBuf::from);
    let mut cmd = match &heaptrack {
        Some(dir) => {
            let mut cmd = Command::new("heaptrack");
            cmd.arg("-o").arg(dir.join(bin)).arg(path);
            cmd
        }
        None => Command::new(path),
    };
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "starting {} (build it with scripts/bench.sh)",
            path.display()
        )
    })?;
    let stdout = child.stdout.take().context("stdout")?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for stream in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = rx.recv().await {
            if let Some(at) = line.find("listening on ") {
                let rest = &line[at + "listening on ".len()..];
                let host = rest
                    .trim_start_matches("ws://")
                    .trim_start_matches("http://");
                let host = host.split_whitespace().next().unwrap_or("");
                return host.parse::<SocketAddr>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(addr) = addr else {
        bail!("{name} did not report its address")
    };
    // Keep draining output so the child never blocks on a full pipe.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let profiled = match heaptrack {
        Some(_) => Some(
            child
                .id()
                .and_then(|wrapper| descendant(wrapper, bin))
                .context("the server under heaptrack")?,
        ),
        // PHX_BENCH_SIGTERM=1: stopped with SIGTERM and waited for, like a profiled
        // server (a wrapper in PHX_BENCH_BIN_DIR that execs a profiler such as
        // `valgrind --tool=callgrind` writes its profile on a normal exit only).
        None => std::env::var_os("PHX_BENCH_SIGTERM")
            .filter(|_| profiled)
            .and(child.id()),
    };
    Ok(Server {
        name,
        addr,
        child,
        profiled,
    })
}

pub async fn ours(timeout_ms: u64) -> anyhow::Result<Server> {
    let t = timeout_ms.to_string();
    let mut args = vec!["--port", "0", "--timeout-ms", &t];
    // PHX_BENCH_METRICS=1 measures with the Prometheus counters on.
    if std::env::var_os("PHX_BENCH_METRICS").is_some() {
        args.push("--metrics");
    }
    spawn(
        "phx-rs",
        "conformance-server",
        &args,
        &[("RUST_LOG", "error".into())],
    )
    .await
}

/// A conformance-server node of a cluster joined through `redis_url`.
pub async fn node(redis_url: &str, name: &str) -> anyhow::Result<Server> {
    spawn(
        "phx-rs node",
        "conformance-server",
        &[
            "--port",
            "0",
            "--timeout-ms",
            "3600000",
            "--redis-url",
            redis_url,
            "--node-name",
            name,
        ],
        &[("RUST_LOG", "error".into())],
    )
    .await
}

/// A private `redis-server` on a free port, keeping nothing on disk.
pub async fn redis() -> anyhow::Result<(Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting redis-server (install Debian's redis-server package)")?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok((child, port));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("redis-server did not listen on 127.0.0.1:{port} within 5 s")
}

pub async fn floor() -> anyhow::Result<Server> {
    spawn("floor", "floor-server", &["--port", "0"], &[]).await
}

/// phx-gateway in front of the Node contract backend (`examples/gateway/node/server.js`),
/// configured by `crates/phx-bench/gateway.toml`.
pub struct Gateway {
    /// The phx-gateway process (its address is the one clients use).
    pub gateway: Server,
    /// The Node backend answering the hooks.
    pub backend: Server,
    /// The server API's bearer key.
    pub api_key: String,
}

impl Gateway {
    pub async fn stop(self) {
        self.gateway.stop().await;
        self.backend.stop().await;
    }
}

/// 32 random bytes as hex, from /dev/urandom (the per-run hook secret and API key).
fn random_hex() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts the Node backend, then phx-gateway pointing at it (what
/// `examples/gateway/node/run.sh` does, with the release gateway, no heartbeat timeout
/// within a run and metrics off as for conformance-server; PHX_BENCH_METRICS=1 turns
/// them on for both).
pub async fn gateway() -> anyhow::Result<Gateway> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let secret = random_hex()?;
    let api_key = random_hex()?;
    // The backend needs the gateway's URL before the gateway is up (only its test
    // routes use it, which the bench does not call): a port chosen now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server_js = root.join("../../examples/gateway/node/server.js");
    let server_js = server_js.to_string_lossy();
    let backend = spawn_path(
        "Node backend",
        Path::new("node"),
        "node",
        &[&server_js],
        &[
            ("PORT", "0".into()),
            ("GATEWAY_URL", format!("http://127.0.0.1:{port}")),
            ("PHX_GATEWAY_SECRET", secret.clone()),
            ("PHX_GATEWAY_API_KEY", api_key.clone()),
        ],
        false,
    )
    .await
    .context("starting the Node backend (Node.js 20+ must be on PATH)")?;
    let mut config = root.join("gateway.toml");
    if std::env::var_os("PHX_BENCH_METRICS").is_some() {
        let text = std::fs::read_to_string(&config)?.replace("metrics = false", "metrics = true");
        config =
            std::env::temp_dir().join(format!("phx-bench-gateway-{}.toml", std::process::id()));
        std::fs::write(&config, text)?;
    }
    let config = config.to_string_lossy();
    let gateway = spawn(
        "phx-gateway",
        "phx-gateway",
        &["--config", &config],
        &[
            ("PORT", port.to_string()),
            ("BACKEND_URL", format!("http://{}", backend.addr)),
            ("PHX_GATEWAY_SECRET", secret),
            ("PHX_GATEWAY_API_KEY", api_key.clone()),
            ("RUST_LOG", "error".into()),
        ],
    )
    .await;
    match gateway {
        Ok(gateway) => Ok(Gateway {
            gateway,
            backend,
            api_key,
        }),
        Err(e) => {
            backend.stop().await;
            Err(e)
        }
    }
}

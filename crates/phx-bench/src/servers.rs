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
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

pub fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("target/release")
}

/// Spawns `bin args…` and waits for its "listening on ws://ADDR" (or http://) line.
pub async fn spawn(
    name: &'static str,
    bin: &str,
    args: &[&str],
    envs: &[(&str, String)],
) -> anyhow::Result<Server> {
    let path = target_dir().join(bin);
    let mut cmd = Command::new(&path);
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
    Ok(Server { name, addr, child })
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

//! System calls the servers make while a fan-out runs (`PHX_BENCH_SYSCALLS=1`), counted by
//! `perf stat` on the kernel's syscall tracepoints, per process.
//!
//! Counting tracepoints costs a server little per call; strace would stop it at every
//! call, slowing it enough to change what is measured (how many frames one write carries
//! depends on how fast the writers run against the fan-out). Needs `perf` and access to
//! the tracepoints (root, or `perf_event_paranoid` ≤ 0 and a readable tracefs).

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// The calls counted: (name, tracepoint).
const EVENTS: [(&str, &str); 10] = [
    ("write", "syscalls:sys_enter_write"),
    ("writev", "syscalls:sys_enter_writev"),
    ("sendto", "syscalls:sys_enter_sendto"),
    ("sendmsg", "syscalls:sys_enter_sendmsg"),
    ("read", "syscalls:sys_enter_read"),
    ("recvfrom", "syscalls:sys_enter_recvfrom"),
    ("epoll_wait", "syscalls:sys_enter_epoll_wait"),
    ("epoll_pwait", "syscalls:sys_enter_epoll_pwait"),
    ("futex", "syscalls:sys_enter_futex"),
    ("sched_yield", "syscalls:sys_enter_sched_yield"),
];

/// Calls of one process over the counted span.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub pid: u32,
    /// (name, calls), in the order of `EVENTS`.
    pub calls: Vec<(String, u64)>,
}

impl Counts {
    fn sum(&self, names: &[&str]) -> u64 {
        self.calls
            .iter()
            .filter(|(name, _)| names.contains(&name.as_str()))
            .map(|(_, n)| n)
            .sum()
    }
    /// Calls that send on a socket (`write`, `writev`, `sendto`, `sendmsg`).
    pub fn writes(&self) -> u64 {
        self.sum(&["write", "writev", "sendto", "sendmsg"])
    }
    /// Calls that read from a socket (`read`, `recvfrom`).
    pub fn reads(&self) -> u64 {
        self.sum(&["read", "recvfrom"])
    }
    /// Waits for readiness (`epoll_wait`, `epoll_pwait`): how often a worker ran dry.
    pub fn polls(&self) -> u64 {
        self.sum(&["epoll_wait", "epoll_pwait"])
    }
    /// Thread wake-ups and waits (`futex`).
    pub fn futexes(&self) -> u64 {
        self.sum(&["futex"])
    }
}

/// One `perf stat` per process, counting from [`Counting::start`] to [`Counting::stop`].
pub struct Counting {
    children: Vec<(u32, Child)>,
}

impl Counting {
    /// Starts counting for `pids` when `PHX_BENCH_SYSCALLS` is set; `None` otherwise.
    pub async fn start(pids: &[u32]) -> anyhow::Result<Option<Self>> {
        if std::env::var_os("PHX_BENCH_SYSCALLS").is_none() {
            return Ok(None);
        }
        let events: Vec<&str> = EVENTS.iter().map(|(_, e)| *e).collect();
        let mut children = Vec::new();
        for &pid in pids {
            let child = Command::new("perf")
                .args(["stat", "-x", ",", "-e", &events.join(","), "-p"])
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("PHX_BENCH_SYSCALLS needs `perf` (Debian's linux-perf package)")?;
            children.push((pid, child));
        }
        // perf attaches to every thread of the process before it counts anything; it
        // says nothing when it is ready, and this is ample on a loaded machine.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Some(Self { children }))
    }

    /// Stops counting (SIGINT, on which perf prints its counts) and reads the counts.
    pub async fn stop(self) -> anyhow::Result<Vec<Counts>> {
        let mut out = Vec::new();
        for (pid, mut child) in self.children {
            if let Some(perf) = child.id() {
                Command::new("kill")
                    .args(["-INT", &perf.to_string()])
                    .status()
                    .await?;
            }
            let mut text = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                stderr.read_to_string(&mut text).await?;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            out.push(parse(pid, &text)?);
        }
        Ok(out)
    }
}

/// `perf stat -x ,` output: `count,unit,event,…` per event (`<not counted>` as 0).
fn parse(pid: u32, text: &str) -> anyhow::Result<Counts> {
    let mut calls = Vec::new();
    for (name, event) in EVENTS {
        let count = text
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                (fields.get(2) == Some(&event)).then(|| fields[0].parse::<u64>().unwrap_or(0))
            })
            .with_context(|| format!("no count of {event} from perf stat: {text}"))?;
        calls.push((name.to_owned(), count));
    }
    Ok(Counts { pid, calls })
}

#[cfg(test)]
mod tests {
    #[test]
    fn perf_stat_csv_is_read_per_event() {
        let mut text = String::from("# started on\n\n");
        for (i, (_, event)) in super::EVENTS.iter().enumerate() {
            let count = if i == 1 {
                "<not counted>".to_owned()
            } else {
                (i * 10).to_string()
            };
            text.push_str(&format!("{count},,{event},1000,100.00,,\n"));
        }
        let counts = super::parse(7, &text).unwrap();
        assert_eq!(
            counts.writes(),
            20 + 30,
            "write (0) + writev (not counted) + sendto + sendmsg"
        );
        assert_eq!(counts.reads(), 40 + 50);
        assert_eq!(counts.polls(), 60 + 70);
        assert_eq!(counts.futexes(), 80);
        assert!(super::parse(7, "nothing").is_err());
    }
}

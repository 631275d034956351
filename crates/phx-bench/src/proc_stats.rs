//! What a process costs, read from /proc: CPU time (utime + stime) and RSS; and the
//! machine (and PostgreSQL) a run was measured on.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. Asked of
/// `getconf CLK_TCK` once (sysconf(_SC_CLK_TCK) would need unsafe code, which the
/// workspace forbids); 100, the value on every Linux x86_64 and arm64 build, if that fails.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU time the process has used so far (user + system), at clock-tick resolution.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`, which may itself contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat: no (comm)"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after `) state`.
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat: field {} missing", i + 3))
    };
    let ticks = field(11)? + field(12)?;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / clock_ticks()))
}

/// CPU time a process's threads have used, as the scheduler counts it (nanoseconds,
/// where /proc/<pid>/stat has clock ticks, 10 ms: too coarse for a few thousand round
/// trips of 15 µs each). Taken per thread so that a thread ending between two snapshots
/// loses only its time in between, not its whole life; when /proc/<pid>/task/*/schedstat
/// cannot be read, /proc/<pid>/stat's ticks are used.
#[derive(Clone, Debug)]
pub struct CpuSnapshot {
    /// Nanoseconds on CPU by thread id.
    threads: Option<HashMap<u32, u64>>,
    ticks: Duration,
}

impl CpuSnapshot {
    pub fn take(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            threads: thread_cpu(pid),
            ticks: cpu_time(pid)?,
        })
    }

    /// CPU used from `earlier` to this snapshot.
    pub fn since(&self, earlier: &CpuSnapshot) -> Duration {
        match (&self.threads, &earlier.threads) {
            (Some(now), Some(then)) => Duration::from_nanos(
                now.iter()
                    .map(|(tid, ns)| ns.saturating_sub(then.get(tid).copied().unwrap_or(0)))
                    .sum(),
            ),
            _ => self.ticks.saturating_sub(earlier.ticks),
        }
    }
}

/// The first field of every /proc/<pid>/task/<tid>/schedstat (time on CPU, ns).
fn thread_cpu(pid: u32) -> Option<HashMap<u32, u64>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let entry = entry.ok()?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        out.insert(tid, text.split_whitespace().next()?.parse().ok()?);
    }
    (!out.is_empty()).then_some(out)
}

/// CPU time of a process and its children so far: its own, that of the children it
/// has reaped (cutime + cstime), and that of the children alive now. For a server that
/// forks a process per connection (PostgreSQL's postmaster), all of its work.
pub fn tree_cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    // cutime and cstime are fields 16 and 17 of the whole line: 14 and 15 after `) state`.
    let reaped: u64 = [13, 14]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    let mut total = cpu_time(pid)? + Duration::from_nanos(reaped * 1_000_000_000 / clock_ticks());
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        // A child that exits between the listing and the read is counted by the next
        // look, in the parent's cutime.
        total += cpu_time(child).unwrap_or_default();
    }
    Ok(total)
}

/// The parent of a process.
pub fn parent(pid: u32) -> anyhow::Result<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat.rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat: no parent"))
}

/// CPU time this process (the load generator) has used so far.
pub fn own_cpu_time() -> anyhow::Result<Duration> {
    cpu_time(std::process::id())
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/status: no VmRSS"))?;
    Ok(kb * 1024)
}

/// The machine a run was measured on. Figures from different CPU models (or core counts)
/// are not comparable: a run is compared only with earlier runs of the same machine kind
/// ([`Machine::same_kind`]), and every table says which machine its figures come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo (e.g. "AMD EPYC"), or "unknown".
    pub cpu_model: String,
    /// CPUs this process may run on.
    pub cores: usize,
    pub memory_gib: f64,
    /// /proc/sys/kernel/osrelease.
    pub kernel: String,
}

impl Machine {
    /// The machine this process runs on.
    pub fn this() -> Self {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:").map(str::to_owned))
            })
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| cpu_model(&info))
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu_model,
            cores,
            memory_gib: (mem_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: kernel.trim().to_owned(),
        }
    }

    /// Same CPU model and core count: the figures of two such runs may be compared.
    pub fn same_kind(&self, other: &Machine) -> bool {
        self.cpu_model == other.cpu_model && self.cores == other.cores
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {} cores, {:.1} GiB, Linux {}",
            self.cpu_model, self.cores, self.memory_gib, self.kernel
        )
    }
}

/// The first `model name` of a /proc/cpuinfo text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// The PostgreSQL server a chat run stored into, and the settings that decide what a
/// durable insert costs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PostgresSettings {
    /// `server_version`.
    pub version: String,
    pub fsync: String,
    pub synchronous_commit: String,
    pub full_page_writes: String,
    pub shared_buffers: String,
    pub wal_level: String,
    pub commit_delay: String,
}

impl PostgresSettings {
    /// Reads the settings through `client`.
    pub async fn read(client: &tokio_postgres::Client) -> anyhow::Result<Self> {
        let mut out = PostgresSettings::default();
        for (name, field) in [
            ("server_version", &mut out.version),
            ("fsync", &mut out.fsync),
            ("synchronous_commit", &mut out.synchronous_commit),
            ("full_page_writes", &mut out.full_page_writes),
            ("shared_buffers", &mut out.shared_buffers),
            ("wal_level", &mut out.wal_level),
            ("commit_delay", &mut out.commit_delay),
        ] {
            // SHOW takes no parameters; `name` is one of the constants above.
            let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
            *field = row.get(0);
        }
        Ok(out)
    }
}

impl std::fmt::Display for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PostgreSQL {} (fsync {}, synchronous_commit {}, full_page_writes {}, shared_buffers {}, wal_level {}, commit_delay {})",
            self.version,
            self.fsync,
            self.synchronous_commit,
            self.full_page_writes,
            self.shared_buffers,
            self.wal_level,
            self.commit_delay
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cpu_model_is_the_first_model_name() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(super::cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(super::cpu_model("processor\t: 0\n"), None);
    }

    #[test]
    fn machines_of_one_kind_share_model_and_cores() {
        let a = super::Machine {
            cpu_model: "AMD EPYC".into(),
            cores: 2,
            memory_gib: 23.4,
            kernel: "6.1.0".into(),
        };
        let other_kernel = super::Machine {
            kernel: "6.12.0".into(),
            memory_gib: 24.0,
            ..a.clone()
        };
        assert!(a.same_kind(&other_kernel));
        assert!(!a.same_kind(&super::Machine {
            cores: 4,
            ..a.clone()
        }));
        assert!(!a.same_kind(&super::Machine {
            cpu_model: "Intel(R) Xeon(R)".into(),
            ..a.clone()
        }));
        assert_eq!(a.to_string(), "AMD EPYC, 2 cores, 23.4 GiB, Linux 6.1.0");
    }

    #[test]
    fn a_cpu_snapshot_counts_below_a_clock_tick() {
        let pid = std::process::id();
        let before = super::CpuSnapshot::take(pid).unwrap();
        // Spin until the snapshot has seen 15 ms of CPU, however long a shared machine
        // takes to give them (10 s at most).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let used = loop {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            let used = super::CpuSnapshot::take(pid).unwrap().since(&before);
            if used >= std::time::Duration::from_millis(15) {
                break used;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "{used:?}"
            );
        };
        std::hint::black_box(x);
        // Not a whole number of 10 ms ticks, which is what /proc/<pid>/stat would give.
        assert!(!used.as_nanos().is_multiple_of(10_000_000), "{used:?}");
    }

    #[test]
    fn a_process_tree_counts_its_reaped_and_live_children() {
        let pid = std::process::id();
        assert_eq!(
            super::parent(pid).unwrap(),
            std::os::unix::process::parent_id()
        );
        // A child that burns CPU and is reaped: its time moves into our cutime.
        let before = super::tree_cpu_time(pid).unwrap();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let after = super::tree_cpu_time(pid).unwrap();
        assert!(
            after.saturating_sub(before) >= std::time::Duration::from_millis(10),
            "{before:?} → {after:?}"
        );
    }

    #[test]
    fn own_cpu_time_and_rss_are_read() {
        let pid = std::process::id();
        assert!(super::rss_bytes(pid).unwrap() > 0);
        // Burn a little CPU so at least one tick is counted.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(super::own_cpu_time().unwrap() > std::time::Duration::ZERO);
    }
}

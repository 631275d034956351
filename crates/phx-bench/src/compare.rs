//! Regression tracking: results are filed under `<date>-<commit>[-dirty]-<scenario>`, and
//! each run is compared figure by figure with an earlier `results.json` (the newest one of
//! the same size, or one given with `--compare`), so a change that slows the fan-out or
//! grows memory shows at once.
//!
//! The comparison reads both files as JSON rather than as `Report`s, so results written
//! by older or newer versions of phx-bench still compare on the figures they share.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::proc_stats::Machine;

/// Which way a figure should move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Time, CPU, memory, latency.
    Lower,
    /// Throughput.
    Higher,
}

/// One named figure of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub better: Better,
}

/// One figure in both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub name: String,
    pub old: f64,
    pub new: f64,
    /// (new − old) / old in %; infinite when old is 0 and new is not.
    pub percent: f64,
    /// Moved the bad way by more than the threshold.
    pub worse: bool,
    /// Moved the good way by more than the threshold.
    pub better: bool,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key)?.as_f64()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The figures worth tracking in a results.json, named so the same figure has the same
/// name in every run. Repeated runs (fan-out pairs) are reduced to their median first.
pub fn figures(report: &Value) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut push = |name: String, value: Option<f64>, better: Better| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            out.push(Figure {
                name,
                value,
                better,
            });
        }
    };
    let list = |key: &str| -> Vec<Value> {
        report
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let server = |v: &Value| {
        v.get("server")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    for c in list("connections") {
        let s = server(&c);
        push(
            format!("connections [{s}] KiB per connection"),
            num(&c, "bytes_per_connection").map(|b| b / 1024.0),
            Better::Lower,
        );
        push(
            format!("connections [{s}] connect+join/s"),
            num(&c, "connect_join_per_sec"),
            Better::Higher,
        );
        push(
            format!("connections [{s}] server CPU µs per connection"),
            num(&c, "server_cpu_us_per_connection"),
            Better::Lower,
        );
    }
    let fanout = list("fanout");
    let mut servers: Vec<String> = Vec::new();
    for f in &fanout {
        if !servers.contains(&server(f)) {
            servers.push(server(f));
        }
    }
    for s in servers {
        let runs: Vec<&Value> = fanout.iter().filter(|f| server(f) == s).collect();
        let m = |key: &str| median(runs.iter().filter_map(|f| num(f, key)).collect());
        push(
            format!("fanout [{s}] server CPU ns per delivered (median)"),
            m("server_cpu_ns_per_delivered"),
            Better::Lower,
        );
        push(
            format!("fanout [{s}] delivered/s (median)"),
            m("delivered_per_sec"),
            Better::Higher,
        );
        push(
            format!("fanout [{s}] p99 ms (median)"),
            m("p99_ms"),
            Better::Lower,
        );
    }
    push(
        "fanout CPU per delivered, phx-rs / floor".into(),
        num(report, "fanout_cpu_ratio_vs_floor"),
        Better::Lower,
    );
    if let Some(s) = report.get("storm").filter(|s| !s.is_null()) {
        for (key, name) in [
            ("rejoined_s", "all rejoined s"),
            ("states_written_s", "every presence_state received s"),
            ("server_cpu_to_states_s", "server CPU to the states s"),
            ("converged_s", "converged s"),
            ("server_cpu_s", "server CPU s"),
        ] {
            push(format!("storm {name}"), num(s, key), Better::Lower);
        }
    }
    if let Some(c) = report.get("chat").filter(|c| !c.is_null()) {
        push(
            "chat stored/s".into(),
            num(c, "stored_per_sec"),
            Better::Higher,
        );
        push("chat reply p99 ms".into(), num(c, "p99_ms"), Better::Lower);
        push(
            "chat CPU µs per message".into(),
            num(c, "server_cpu_us_per_message"),
            Better::Lower,
        );
        push(
            "chat PostgreSQL CPU µs per message".into(),
            num(c, "postgres_cpu_us_per_message"),
            Better::Lower,
        );
    }
    if let Some(c) = report.get("cluster").filter(|c| !c.is_null()) {
        push(
            "cluster / one node CPU per delivered".into(),
            num(c, "cpu_ratio"),
            Better::Lower,
        );
        push(
            "cluster / one node of a node's size CPU per delivered".into(),
            num(c, "cpu_ratio_same_per_node"),
            Better::Lower,
        );
        push(
            "cluster / 3 nodes not clustered CPU per delivered".into(),
            num(c, "cpu_ratio_unclustered"),
            Better::Lower,
        );
    }
    if let Some(g) = report.get("gateway").filter(|g| !g.is_null()) {
        gateway_figures(g, &mut push);
    }
    for m in list("latency_medians") {
        let shape = m.get("shape").and_then(Value::as_str).unwrap_or("?");
        let s = server(&m);
        for (key, name) in [
            ("p50_ms", "p50 ms"),
            ("p99_ms", "p99 ms"),
            ("p999_ms", "p99.9 ms"),
            ("max_ms", "max ms"),
            ("server_cpu_ns_per_delivered", "server CPU ns per delivered"),
        ] {
            push(
                format!("latency {shape} [{s}] {name} (median)"),
                num(&m, key),
                Better::Lower,
            );
        }
    }
    out
}

/// The `gateway` scenario's figures: round trips per server and kind, the fan-out's
/// CPU per delivered message per server (median of the runs), and the ratios.
fn gateway_figures(g: &Value, push: &mut impl FnMut(String, Option<f64>, Better)) {
    let list = |key: &str| -> Vec<Value> {
        g.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("?").to_owned();
    for r in list("round_trips") {
        let (s, kind) = (text(&r, "server"), text(&r, "kind"));
        push(
            format!("gateway {kind} [{s}] p50 ms"),
            num(&r, "p50_ms"),
            Better::Lower,
        );
        push(
            format!("gateway {kind} [{s}] p99 ms"),
            num(&r, "p99_ms"),
            Better::Lower,
        );
        push(
            format!("gateway {kind} [{s}] server CPU µs per round trip"),
            num(&r, "server_cpu_us"),
            Better::Lower,
        );
        push(
            format!("gateway {kind} [{s}] backend CPU µs per round trip"),
            num(&r, "backend_cpu_us"),
            Better::Lower,
        );
    }
    let fanout = list("fanout");
    let mut servers: Vec<String> = Vec::new();
    for f in &fanout {
        if !servers.contains(&text(f, "server")) {
            servers.push(text(f, "server"));
        }
    }
    for s in servers {
        let cpu = fanout
            .iter()
            .filter(|f| text(f, "server") == s)
            .filter_map(|f| num(f, "server_cpu_ns_per_delivered"))
            .collect();
        push(
            format!("gateway fanout [{s}] server CPU ns per delivered (median)"),
            median(cpu),
            Better::Lower,
        );
    }
    push(
        "gateway fanout CPU per delivered, phx-gateway / phx-rs".into(),
        num(g, "fanout_cpu_ratio"),
        Better::Lower,
    );
    for r in list("ratios") {
        push(
            format!("gateway / phx-rs {}", text(&r, "name")),
            num(&r, "value"),
            Better::Lower,
        );
    }
}

/// Every figure found in both runs (in the new run's order), with its change and whether
/// it moved the bad (or good) way by more than `threshold_percent`.
pub fn compare(old: &Value, new: &Value, threshold_percent: f64) -> Vec<Change> {
    let before = figures(old);
    figures(new)
        .into_iter()
        .filter_map(|f| {
            let o = before.iter().find(|o| o.name == f.name)?;
            let percent = if o.value == 0.0 {
                if f.value == 0.0 {
                    0.0
                } else {
                    f64::INFINITY * f.value.signum()
                }
            } else {
                (f.value - o.value) / o.value.abs() * 100.0
            };
            let bad_way = match f.better {
                Better::Lower => percent,
                Better::Higher => -percent,
            };
            Some(Change {
                name: f.name,
                old: o.value,
                new: f.value,
                percent,
                worse: bad_way > threshold_percent,
                better: -bad_way > threshold_percent,
            })
        })
        .collect()
}

/// The comparison as a Markdown table (worse rows marked **worse**).
pub fn markdown(changes: &[Change], against: &str, threshold_percent: f64) -> String {
    let mut md = String::new();
    let worse = changes.iter().filter(|c| c.worse).count();
    let _ = writeln!(
        md,
        "## compared with {against}\n\n{} figures in both runs; {worse} worse by more than {threshold_percent} %.\n\n| figure | old | new | change | |\n|---|---|---|---|---|",
        changes.len()
    );
    for c in changes {
        let mark = if c.worse {
            "**worse**"
        } else if c.better {
            "better"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:+.1} % | {mark} |",
            c.name,
            short(c.old),
            short(c.new),
            c.percent
        );
    }
    md
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The newest `results.json` under `out` (by modification time) with this `size`, measured
/// on the same kind of machine (CPU model and cores: a slower CPU is not a regression),
/// other than the one in `except`. Results that do not say their machine (written before
/// machines were recorded) are never picked; `--compare` still compares with any file.
pub fn previous(out: &Path, size: &str, machine: &Machine, except: &Path) -> Option<PathBuf> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(out).ok()?.flatten() {
        let dir = entry.path();
        if dir == except {
            continue;
        }
        let file = dir.join("results.json");
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let Ok(modified) = meta.modified() else {
            continue;
        };
        let comparable = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| {
                v.get("size").and_then(Value::as_str) == Some(size)
                    && v.get("machine")
                        .and_then(|m| serde_json::from_value::<Machine>(m.clone()).ok())
                        .is_some_and(|m| m.same_kind(machine))
            });
        if comparable && best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, file));
        }
    }
    best.map(|(_, f)| f)
}

/// `YYYY-MM-DD` (UTC) of a UNIX time, without a date crate (days to civil date,
/// H. Hinnant's algorithm).
pub fn date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The checkout's short commit, with `-dirty` when it has uncommitted changes; `unknown`
/// outside a git checkout.
pub fn commit() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(hash) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    match git(&["status", "--porcelain"]) {
        Some(s) if s.is_empty() => hash,
        _ => format!("{hash}-dirty"),
    }
}

/// A fresh directory name under `out`: `<date>-<commit>-<scenario>`, with `-2`, `-3`…
/// when an earlier run of the same day and commit took it.
pub fn result_dir(out: &Path, date: &str, commit: &str, scenario: &str) -> PathBuf {
    let base = format!("{date}-{commit}-{scenario}");
    let mut dir = out.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = out.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(cpu_phx: f64, rate: f64, kib: f64, p99: f64) -> Value {
        json!({
            "size": "small",
            "connections": [
                {"server": "phx-rs", "bytes_per_connection": kib * 1024.0, "connect_join_per_sec": 9000.0, "server_cpu_us_per_connection": 50.0}
            ],
            "fanout": [
                {"server": "floor", "server_cpu_ns_per_delivered": 800.0, "delivered_per_sec": 1.0e6, "p99_ms": 5.0},
                {"server": "phx-rs", "server_cpu_ns_per_delivered": cpu_phx, "delivered_per_sec": rate, "p99_ms": 5.0},
                {"server": "phx-rs", "server_cpu_ns_per_delivered": cpu_phx + 100.0, "delivered_per_sec": rate, "p99_ms": 5.0},
                {"server": "phx-rs", "server_cpu_ns_per_delivered": cpu_phx - 100.0, "delivered_per_sec": rate, "p99_ms": 5.0}
            ],
            "storm": null,
            "latency_medians": [
                {"shape": "topic", "server": "phx-rs", "p50_ms": 1.0, "p99_ms": p99, "p999_ms": 9.0, "max_ms": 12.0, "server_cpu_ns_per_delivered": 900.0}
            ]
        })
    }

    fn find<'a>(changes: &'a [Change], name: &str) -> &'a Change {
        changes
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no figure {name:?} in {changes:?}"))
    }

    #[test]
    fn identical_runs_show_no_change() {
        let a = run(900.0, 1.0e6, 6.0, 4.0);
        let changes = compare(&a, &a, 10.0);
        assert!(!changes.is_empty());
        assert!(changes
            .iter()
            .all(|c| c.percent == 0.0 && !c.worse && !c.better));
    }

    #[test]
    fn more_cpu_memory_or_latency_is_worse_and_less_throughput_is_worse() {
        let old = run(1000.0, 1.0e6, 6.0, 4.0);
        let new = run(1200.0, 0.8e6, 6.3, 8.0);
        let c = compare(&old, &new, 10.0);
        let cpu = find(&c, "fanout [phx-rs] server CPU ns per delivered (median)");
        assert_eq!((cpu.old, cpu.new), (1000.0, 1200.0)); // medians of the three runs
        assert!((cpu.percent - 20.0).abs() < 1e-9 && cpu.worse);
        let rate = find(&c, "fanout [phx-rs] delivered/s (median)");
        assert!((rate.percent + 20.0).abs() < 1e-9 && rate.worse);
        // +5 % memory is inside the 10 % threshold.
        let kib = find(&c, "connections [phx-rs] KiB per connection");
        assert!(!kib.worse && !kib.better);
        let p99 = find(&c, "latency topic [phx-rs] p99 ms (median)");
        assert!((p99.percent - 100.0).abs() < 1e-9 && p99.worse);
        // The floor did not move.
        assert!(!find(&c, "fanout [floor] server CPU ns per delivered (median)").worse);
    }

    #[test]
    fn improvements_are_marked_better_not_worse() {
        let old = run(1000.0, 1.0e6, 8.0, 8.0);
        let new = run(800.0, 1.5e6, 6.0, 4.0);
        let c = compare(&old, &new, 10.0);
        assert!(c.iter().all(|c| !c.worse));
        assert!(find(&c, "fanout [phx-rs] delivered/s (median)").better);
        assert!(find(&c, "connections [phx-rs] KiB per connection").better);
    }

    #[test]
    fn figures_missing_from_either_run_are_left_out() {
        let old = json!({"size": "small", "chat": {"stored_per_sec": 4000.0, "p99_ms": 20.0}});
        let new = json!({"size": "small", "chat": {"stored_per_sec": 2000.0}, "fanout_cpu_ratio_vs_floor": 1.1});
        let c = compare(&old, &new, 10.0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "chat stored/s");
        assert!(c[0].worse);
    }

    #[test]
    fn gateway_figures_are_compared_by_server_and_kind() {
        let run = |gw_p99: f64, gw_fanout: f64| {
            json!({"gateway": {
                "round_trips": [
                    {"server": "phx-rs", "kind": "event", "p50_ms": 0.1, "p99_ms": 0.2, "server_cpu_us": 20.0, "backend_cpu_us": null},
                    {"server": "phx-gateway", "kind": "event", "p50_ms": 0.5, "p99_ms": gw_p99, "server_cpu_us": 60.0, "backend_cpu_us": 90.0}
                ],
                "fanout": [
                    {"server": "phx-rs", "server_cpu_ns_per_delivered": 1000.0},
                    {"server": "phx-gateway", "server_cpu_ns_per_delivered": gw_fanout},
                    {"server": "phx-gateway", "server_cpu_ns_per_delivered": gw_fanout + 500.0},
                    {"server": "phx-gateway", "server_cpu_ns_per_delivered": gw_fanout - 500.0}
                ],
                "fanout_cpu_ratio": gw_fanout / 1000.0,
                "ratios": [{"name": "event round trip p99", "value": gw_p99 / 0.2}]
            }})
        };
        let c = compare(&run(1.0, 1000.0), &run(2.0, 1300.0), 10.0);
        assert!(find(&c, "gateway event [phx-gateway] p99 ms").worse);
        assert!(!find(&c, "gateway event [phx-rs] p99 ms").worse);
        let fan = find(
            &c,
            "gateway fanout [phx-gateway] server CPU ns per delivered (median)",
        );
        assert_eq!((fan.old, fan.new), (1000.0, 1300.0));
        assert!(find(&c, "gateway fanout CPU per delivered, phx-gateway / phx-rs").worse);
        assert!(find(&c, "gateway / phx-rs event round trip p99").worse);
        // No backend CPU for phx-rs: not a figure.
        assert!(!c
            .iter()
            .any(|c| c.name == "gateway event [phx-rs] backend CPU µs per round trip"));
    }

    #[test]
    fn a_figure_rising_from_zero_is_an_infinite_change() {
        let old = json!({"fanout_cpu_ratio_vs_floor": 0.0});
        let new = json!({"fanout_cpu_ratio_vs_floor": 1.0});
        let c = compare(&old, &new, 10.0);
        assert!(c[0].percent.is_infinite() && c[0].worse);
    }

    #[test]
    fn the_markdown_marks_worse_rows() {
        let c = compare(
            &run(1000.0, 1.0e6, 6.0, 4.0),
            &run(1300.0, 1.0e6, 6.0, 4.0),
            10.0,
        );
        let md = markdown(&c, "old/results.json", 10.0);
        let row = md
            .lines()
            .find(|l| l.starts_with("| fanout [phx-rs] server CPU"))
            .unwrap_or_default();
        assert!(
            row.contains("+30.0 %") && row.contains("**worse**"),
            "{row}"
        );
        assert!(md.contains("1 worse by more than 10 %"), "{md}");
    }

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_795_859_555), "2026-11-28");
    }

    fn machine(cpu_model: &str) -> Machine {
        Machine {
            cpu_model: cpu_model.into(),
            cores: 2,
            memory_gib: 23.4,
            kernel: "6.1.0".into(),
        }
    }

    #[test]
    fn the_newest_earlier_run_of_the_same_size_is_found() {
        let out = std::env::temp_dir().join(format!("phx-bench-compare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let epyc = machine("AMD EPYC");
        // Modification times set explicitly: "newest" must not depend on the clock.
        let write = |name: &str, size: &str, modified: u64| {
            let dir = out.join(name);
            std::fs::create_dir_all(&dir).expect("temp dir");
            let file = dir.join("results.json");
            std::fs::write(&file, json!({ "size": size, "machine": epyc }).to_string())
                .expect("write");
            std::fs::File::options()
                .write(true)
                .open(&file)
                .and_then(|f| {
                    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(modified))
                })
                .expect("set mtime");
            dir
        };
        let older = write("a", "small", 1_000);
        let _other_size = write("b", "large", 3_000);
        let newer = write("c", "small", 2_000);
        let current = write("d", "small", 4_000);
        assert_eq!(
            previous(&out, "small", &epyc, &current),
            Some(newer.join("results.json"))
        );
        assert_eq!(
            previous(&out, "small", &epyc, &newer),
            Some(current.join("results.json"))
        );
        std::fs::remove_dir_all(&current).expect("cleanup");
        std::fs::remove_dir_all(&newer).expect("cleanup");
        assert_eq!(
            previous(&out, "small", &epyc, &current),
            Some(older.join("results.json"))
        );
        assert_eq!(previous(&out, "full", &epyc, &current), None);
        // Runs of another CPU model, or that do not say their machine, are not compared.
        assert_eq!(
            previous(&out, "small", &machine("Intel(R) Xeon(R)"), &current),
            None
        );
        let unsaid = out.join("e");
        std::fs::create_dir_all(&unsaid).expect("dir");
        std::fs::write(
            unsaid.join("results.json"),
            json!({ "size": "small", "machine": "2 cores, 23.4 GiB, Linux 6.1.0" }).to_string(),
        )
        .expect("write");
        assert_eq!(
            previous(&out, "small", &epyc, &current),
            Some(older.join("results.json"))
        );
        std::fs::remove_dir_all(&unsaid).expect("cleanup");
        let dir = result_dir(&out, "2026-11-28", "abc1234", "small");
        assert_eq!(dir, out.join("2026-11-28-abc1234-small"));
        std::fs::create_dir_all(&dir).expect("dir");
        assert_eq!(
            result_dir(&out, "2026-11-28", "abc1234", "small"),
            out.join("2026-11-28-abc1234-small-2")
        );
        std::fs::remove_dir_all(&out).expect("cleanup");
    }
}

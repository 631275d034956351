//! Results as JSON, a Markdown table, and the fan-out latency distribution as SVG.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::proc_stats::{Machine, PostgresSettings};
use crate::{chat, cluster, connections, fanout, gateway, latency, storm};

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Where the figures come from: a run is compared only with runs of the same kind of
    /// machine (CPU model and cores).
    pub machine: Machine,
    /// The PostgreSQL server of the chat scenario, when it ran.
    pub postgres: Option<PostgresSettings>,
    /// UTC date of the run and the checkout's short commit (`-dirty` with local changes).
    pub date: String,
    pub commit: String,
    pub size: String,
    pub connections: Vec<connections::Result>,
    pub fanout: Vec<fanout::Result>,
    /// Median of the per-run ratios below.
    pub fanout_cpu_ratio_vs_floor: Option<f64>,
    /// Server CPU per delivered message, phx-rs / floor, for each run pair.
    pub fanout_cpu_ratios: Vec<f64>,
    /// How far those ratios spread: (largest − smallest) / median.
    pub fanout_cpu_ratio_spread: Option<f64>,
    pub storm: Option<storm::Result>,
    pub chat: Option<chat::Result>,
    pub cluster: Option<cluster::Result>,
    /// phx-gateway with the Node backend against phx-rs.
    pub gateway: Option<gateway::Result>,
    /// Every run of the latency scenario.
    pub latency: Vec<latency::Result>,
    /// Their medians per shape and server.
    pub latency_medians: Vec<latency::Median>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# phx-bench ({})\n\nMachine: {}; {}, commit {}\n",
            self.size, self.machine, self.date, self.commit
        );
        if let Some(pg) = &self.postgres {
            let _ = writeln!(md, "Database: {pg}\n");
        }
        if !self.connections.is_empty() {
            let _ = writeln!(md, "## connections\n\n| server | sockets | rooms | RSS before | RSS after | per connection | connect+join/s | server CPU per connection |\n|---|---|---|---|---|---|---|---|");
            for c in &self.connections {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.0} | {:.0} µs |",
                    c.server,
                    c.connections,
                    c.rooms,
                    c.rss_before_mib,
                    c.rss_after_mib,
                    c.bytes_per_connection / 1024.0,
                    c.connect_join_per_sec,
                    c.server_cpu_us_per_connection
                );
            }
            md.push('\n');
        }
        if let Some(f) = self.fanout.first() {
            let _ = writeln!(
                md,
                "## fanout\n\n{} subscribers, {} publishers × {} messages (server broadcast endpoint).\n\n| server | run | delivered | msgs/s | p50 | p99 | p99.9 | server CPU | CPU/delivered | generator CPU |\n|---|---|---|---|---|---|---|---|---|---|",
                f.subscribers, f.publishers, f.messages_each
            );
            for f in &self.fanout {
                let _ = writeln!(
                    md,
                    "| {} | {} | {}{} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} ms | {:.0} ns | {:.0} ms |",
                    f.server,
                    f.run,
                    f.delivered,
                    if f.delivered < f.expected { format!(" of {}", f.expected) } else { String::new() },
                    f.delivered_per_sec,
                    f.p50_ms,
                    f.p99_ms,
                    f.p999_ms,
                    f.server_cpu_ms,
                    f.server_cpu_ns_per_delivered,
                    f.generator_cpu_ms
                );
            }
            if let Some(r) = self.fanout_cpu_ratio_vs_floor {
                let runs: Vec<String> = self
                    .fanout_cpu_ratios
                    .iter()
                    .map(|r| format!("{r:.2}×"))
                    .collect();
                let _ = writeln!(
                    md,
                    "\nServer CPU per delivered message, phx-rs / floor: **{r:.2}×** (median of runs: {}; spread {:.0} % of the median)",
                    runs.join(", "),
                    self.fanout_cpu_ratio_spread.unwrap_or(0.0) * 100.0
                );
            }
            md.push('\n');
        }
        if let Some(s) = &self.storm {
            let _ = writeln!(
                md,
                "## storm\n\n{} clients: first wave converged in {:.2} s; after all dropped at once, all rejoined in {:.2} s, every `presence_state` was received in {:.2} s (the server's side: server CPU {:.2} s), and every presence list converged in {:.2} s (converged: {}). Server CPU {:.2} s, generator CPU {:.2} s from the drop to convergence.\n",
                s.clients, s.initial_converged_s, s.rejoined_s, s.states_written_s, s.server_cpu_to_states_s, s.converged_s, s.all_converged, s.server_cpu_s, s.generator_cpu_s
            );
        }
        if let Some(c) = &self.chat {
            let _ = writeln!(
                md,
                "## chat (PostgreSQL)\n\n{} users in {} rooms for {:.0} s: {} messages stored ({:.0}/s; {} rows in the database), reply latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms; chat-app CPU {:.0} µs per stored message (PostgreSQL's not included).\n",
                c.users, c.rooms, c.seconds, c.stored, c.stored_per_sec, c.rows_in_database, c.p50_ms, c.p99_ms, c.p999_ms, c.server_cpu_us_per_message
            );
            if let Some(postgres) = c.postgres_cpu_us_per_message {
                let _ = writeln!(
                    md,
                    "CPU per stored message: chat app {:.0} µs, PostgreSQL {postgres:.0} µs, load generator {:.0} µs.\n",
                    c.server_cpu_us_per_message, c.generator_cpu_us_per_message
                );
            }
        }
        if let Some(c) = &self.cluster {
            if let Some(f) = c.fanout.first() {
                let _ = writeln!(
                    md,
                    "## cluster\n\n{} subscribers ({} per node in the cluster), {} publishers × {} messages posted to node 1; server CPU summed over the nodes and Redis.\n\n| servers | run | delivered | msgs/s | p50 | p99 | server CPU | CPU/delivered |\n|---|---|---|---|---|---|---|---|",
                    f.subscribers, f.subscribers / c.nodes.max(1), f.publishers, f.messages_each
                );
                for f in &c.fanout {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.0} ms | {:.0} ns |",
                        f.server,
                        f.run,
                        f.delivered,
                        f.delivered_per_sec,
                        f.p50_ms,
                        f.p99_ms,
                        f.server_cpu_ms,
                        f.server_cpu_ns_per_delivered
                    );
                }
                if let Some(r) = c.cpu_ratio {
                    let _ = writeln!(
                        md,
                        "\nCluster / one node, CPU per delivered message: **{r:.2}×** (median)."
                    );
                }
                if let Some(r) = c.cpu_ratio_same_per_node {
                    let _ = writeln!(
                        md,
                        "Cluster / one node with a node's share of the subscribers: **{r:.2}×** (median)."
                    );
                }
                if let Some(r) = c.cpu_ratio_unclustered {
                    let _ = writeln!(
                        md,
                        "Cluster / the same three nodes not clustered (each broadcast posted to each): **{r:.2}×** (median)."
                    );
                }
                for f in c.fanout.iter().filter(|f| !f.syscalls.is_empty()) {
                    let _ = writeln!(md, "\n{} run {}: {}", f.server, f.run, f.syscalls_line());
                }
                md.push('\n');
            }
            if let Some(h) = &c.hold {
                let _ = writeln!(
                    md,
                    "{} sockets held by {} nodes ({} failed to join); one broadcast reached {} of them in {:.0} ms.\n\n| node | sockets | RSS per socket | RSS |\n|---|---|---|---|",
                    h.sockets, c.nodes, h.failed, h.received, h.broadcast_ms
                );
                for (k, (sockets, per, rss)) in h.per_node.iter().enumerate() {
                    let _ = writeln!(
                        md,
                        "| {} | {sockets} | {:.1} KiB | {rss:.0} MiB |",
                        k + 1,
                        per / 1024.0
                    );
                }
                md.push('\n');
            }
        }
        if let Some(g) = &self.gateway {
            gateway_markdown(&mut md, g);
        }
        if let Some(first) = self.latency.first() {
            let _ = writeln!(
                md,
                "## latency at a fixed offered load\n\nOpen loop: latency runs from each message's scheduled send time, so a late send counts against it. The load generator's lag is reported, not subtracted: \"send lag\" is how late sends left against their schedule, \"generator lag\" how late a 1 ms timer woke in the generator (whose receivers share that runtime). Published via: topic shape, {}.\n\n| shape | server | run | subscribers | publishes/s | deliveries/s offered | delivered | p50 | p99 | p99.9 | max | p99 from actual send | send lag p99 / max | generator lag p99 / max | server CPU/delivered |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
                self.latency.iter().find(|r| r.shape == "topic").map_or(first.publish_via.as_str(), |r| r.publish_via.as_str())
            );
            for r in &self.latency {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {:.0} | {:.0} | {}{} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.0} ns |",
                    r.shape, r.server, r.run, r.subscribers, r.publishes_per_sec, r.offered_deliveries_per_sec,
                    r.delivered, if r.delivered < r.expected { format!(" of {}", r.expected) } else { String::new() },
                    r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms, r.p99_from_send_ms,
                    r.send_lag_p99_ms, r.send_lag_max_ms, r.generator_lag_p99_ms, r.generator_lag_max_ms,
                    r.server_cpu_ns_per_delivered
                );
            }
            let _ = writeln!(md, "\n| shape | server | runs | p50 | p99 | p99.9 | max | p99 from actual send | send lag p99 | deliveries missing (worst run) |\n|---|---|---|---|---|---|---|---|---|---|");
            for m in &self.latency_medians {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.2} ms | **{:.2} ms** | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
                    m.shape, m.server, m.runs, m.p50_ms, m.p99_ms, m.p999_ms, m.max_ms, m.p99_from_send_ms, m.send_lag_p99_ms, m.worst_missing
                );
            }
            md.push_str("\nMedians over the runs; target p99 ≤ 10 ms for the topic shape at 10 000 subscribers × 10/s.\n\n");
        }
        md
    }
}

/// The `gateway` scenario's tables.
fn gateway_markdown(md: &mut String, g: &gateway::Result) {
    let _ = writeln!(
        md,
        "## gateway\n\nphx-gateway forwarding every join and event to the Node contract backend (`examples/gateway/node/server.js`) against the same channels in Rust (conformance-server). Join: `room:*` join until its reply (a leave follows, in the CPU figures). Event: `echo` until its reply. CPU per round trip from /proc: the server process (conformance-server, or the gateway alone) and the Node backend apart.\n\n| server | round trip | sockets | count | per s | p50 | p99 | p99.9 | max | server CPU | Node CPU | generator CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &g.round_trips {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.0} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.1} µs | {} | {:.1} µs |",
            r.server,
            r.kind,
            r.clients,
            r.count,
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            r.server_cpu_us,
            r.backend_cpu_us.map_or("".into(), |us| format!("{us:.1} µs")),
            r.generator_cpu_us
        );
    }
    if !g.ratios.is_empty() {
        let _ = writeln!(md, "\n| phx-gateway / phx-rs | ratio |\n|---|---|");
        for r in &g.ratios {
            let _ = writeln!(md, "| {} | {:.2}× |", r.name, r.value);
        }
    }
    if let Some(f) = g.fanout.first() {
        let _ = writeln!(
            md,
            "\nFan-out: {} subscribers in `custom:fanout`; broadcasts posted to conformance-server's `/test/broadcast` and to the gateway's server API (`/api/broadcast`), no hook in the path.\n\n| server | run | delivered | msgs/s | p50 | p99 | server CPU | CPU/delivered | Node CPU | generator CPU |\n|---|---|---|---|---|---|---|---|---|---|",
            f.subscribers
        );
        for f in &g.fanout {
            let _ = writeln!(
                md,
                "| {} | {} | {}{} | {:.0} | {:.2} ms | {:.2} ms | {:.0} ms | {:.0} ns | {} | {:.0} ms |",
                f.server,
                f.run,
                f.delivered,
                if f.delivered < f.expected { format!(" of {}", f.expected) } else { String::new() },
                f.delivered_per_sec,
                f.p50_ms,
                f.p99_ms,
                f.server_cpu_ms,
                f.server_cpu_ns_per_delivered,
                f.backend_cpu_ms.map_or("".into(), |ms| format!("{ms:.0} ms")),
                f.generator_cpu_ms
            );
        }
        if let Some(r) = g.fanout_cpu_ratio {
            let runs: Vec<String> = g
                .fanout_cpu_ratios
                .iter()
                .map(|r| format!("{r:.2}×"))
                .collect();
            let _ = writeln!(
                md,
                "\nServer CPU per delivered message, phx-gateway / phx-rs: **{r:.2}×** (median of runs: {}; target ≤ 1.05×)",
                runs.join(", ")
            );
        }
    }
    md.push('\n');
}

impl Report {
    /// The fan-out latency of every run, merged per server (in order of first run).
    pub fn latency_series(&self) -> anyhow::Result<Vec<(String, Histogram<u64>)>> {
        let mut series: Vec<(String, Histogram<u64>)> = Vec::new();
        for f in &self.fanout {
            let Some(h) = &f.histogram else { continue };
            match series.iter_mut().find(|(name, _)| *name == f.server) {
                Some((_, merged)) => merged.add(h)?,
                None => series.push((f.server.clone(), h.clone())),
            }
        }
        Ok(series)
    }
}

/// How far `values` spread: (largest − smallest) / median; 0 for fewer than two.
pub fn spread(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match (sorted.first(), sorted.last(), sorted.get(sorted.len() / 2)) {
        (Some(lo), Some(hi), Some(mid)) if sorted.len() > 1 && *mid != 0.0 => (hi - lo) / mid,
        _ => 0.0,
    }
}

/// Latency percentile curves (x: percentile on a log scale of 1/(1-q), y: ms).
pub fn latency_svg(path: &Path, series: &[(String, Histogram<u64>)]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let quantiles: Vec<f64> = (0..=60)
        .map(|i| 1.0 - 10f64.powf(-(i as f64) / 20.0))
        .collect();
    let max_ms = series
        .iter()
        .map(|(_, h)| h.value_at_quantile(0.999) as f64 / 1e6)
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "fan-out latency by percentile (all runs)",
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..3.0, 0f64..max_ms)?;
    chart
        .configure_mesh()
        .x_labels(4) // 0, 1, 2, 3 → 0 %, 90 %, 99 %, 99.9 %
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{}%", (1.0 - 10f64.powf(-x)) * 100.0))
        .draw()?;
    for (i, (name, h)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = quantiles
            .iter()
            .map(|q| {
                (
                    -(1.0 - q).max(1e-3).log10(),
                    h.value_at_quantile(*q) as f64 / 1e6,
                )
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn spread_is_the_range_over_the_median() {
        assert_eq!(super::spread(&[1.0, 1.2, 0.9]), (1.2 - 0.9) / 1.0);
        assert_eq!(super::spread(&[1.05]), 0.0, "one pair has no spread");
        assert_eq!(super::spread(&[]), 0.0);
    }
}

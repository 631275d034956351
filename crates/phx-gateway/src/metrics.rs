//! The gateway's own series (docs/gateway.md, "Operating"), beside phx-server's. They go
//! to whatever `metrics` recorder is installed: the endpoint's Prometheus one when
//! `[server] metrics = true`, else nowhere.

use std::time::Duration;

/// `phx_gateway_hook_duration_seconds{hook, outcome}`.
pub fn hook_duration(hook: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::histogram!("phx_gateway_hook_duration_seconds", "hook" => hook, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// `phx_gateway_hook_queue{hook}`: calls waiting for a slot (notifications waiting).
pub fn hook_queue(hook: &'static str, waiting: usize) {
    metrics::gauge!("phx_gateway_hook_queue", "hook" => hook).set(waiting as f64);
}

/// `phx_gateway_hook_in_flight{hook}`.
pub fn hook_in_flight(hook: &'static str, delta: f64) {
    metrics::gauge!("phx_gateway_hook_in_flight", "hook" => hook).increment(delta);
}

/// `phx_gateway_breaker_open`.
pub fn breaker_open(open: bool) {
    metrics::gauge!("phx_gateway_breaker_open").set(if open { 1.0 } else { 0.0 });
}

/// `phx_gateway_notifications_dropped_total`.
pub fn notification_dropped(count: u64) {
    metrics::counter!("phx_gateway_notifications_dropped_total").increment(count);
}

/// `phx_gateway_jwks_fetches_total{outcome}`.
pub fn jwks_fetch(outcome: &'static str) {
    metrics::counter!("phx_gateway_jwks_fetches_total", "outcome" => outcome).increment(1);
}

/// Makes every series visible at zero from the start (a dashboard sees the gauge
/// before the first failure).
pub fn describe() {
    for hook in ["connect", "join", "event", "notify"] {
        hook_queue(hook, 0);
        metrics::gauge!("phx_gateway_hook_in_flight", "hook" => hook).set(0.0);
    }
    breaker_open(false);
    metrics::counter!("phx_gateway_notifications_dropped_total").absolute(0);
}

//! What the server counts, through the `metrics` facade (Phoenix's telemetry events).
//!
//! Handles are made once, when the endpoint is built, and kept: counting on a hot path is
//! then one atomic add on a handle, never a registry lookup. The fan-out counts once per
//! broadcast (deliveries added in one step), not once per subscriber. With no recorder
//! installed (the default), every handle is a no-op.
//!
//! [`EndpointBuilder::metrics`](crate::EndpointBuilder::metrics) installs a Prometheus
//! recorder and serves `GET /metrics`; an app with its own recorder installs it before
//! building the endpoint and gets the same series. The series, their labels and what
//! they count are listed in docs/operating.md ("Metrics").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::connect::Transport;

/// Why a socket closed, as a bounded label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CloseReason {
    /// The client closed or vanished.
    Client,
    /// No frame for the idle timeout.
    Idle,
    /// Its backlog outgrew the outbound bound (1013).
    SlowReader,
    /// Over its rate limit (1008).
    RateLimited,
    /// `disconnect` on its socket id (1001).
    Disconnect,
    /// The server is shutting down (1012).
    Shutdown,
    /// Bad frames (1002, 1007, 1009, 1011).
    ProtocolError,
    /// A channel closed or killed its own socket.
    Closed,
}

impl CloseReason {
    const ALL: [Self; 8] = [
        Self::Client,
        Self::Idle,
        Self::SlowReader,
        Self::RateLimited,
        Self::Disconnect,
        Self::Shutdown,
        Self::ProtocolError,
        Self::Closed,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Idle => "idle",
            Self::SlowReader => "slow_reader",
            Self::RateLimited => "rate_limited",
            Self::Disconnect => "disconnect",
            Self::Shutdown => "shutdown",
            Self::ProtocolError => "protocol_error",
            Self::Closed => "closed_by_channel",
        }
    }

    /// The reason behind a close code the server sent (`None`: the client's doing).
    pub(crate) fn from_code(code: Option<u16>) -> Self {
        match code {
            None => Self::Client,
            Some(1002) => Self::Idle,
            Some(1013) => Self::SlowReader,
            Some(1008) => Self::RateLimited,
            Some(1001) => Self::Disconnect,
            Some(1012) => Self::Shutdown,
            Some(1007 | 1009 | 1011) => Self::ProtocolError,
            Some(_) => Self::Closed,
        }
    }
}

fn transport_label(transport: Transport) -> &'static str {
    match transport {
        Transport::WebSocket => "websocket",
        Transport::LongPoll => "longpoll",
        Transport::Test => "test",
    }
}

/// Per-transport handles.
#[derive(Debug)]
struct PerTransport {
    open: Gauge,
    opened: Counter,
    messages_in: Counter,
    closed: HashMap<CloseReason, Counter>,
}

impl PerTransport {
    fn new(transport: Transport) -> Self {
        let label = transport_label(transport);
        Self {
            open: gauge!("phx_sockets_open", "transport" => label),
            opened: counter!("phx_sockets_opened_total", "transport" => label),
            messages_in: counter!("phx_messages_in_total", "transport" => label),
            closed: CloseReason::ALL
                .iter()
                .map(|reason| {
                    let counter = counter!(
                        "phx_sockets_closed_total",
                        "transport" => label,
                        "reason" => reason.label()
                    );
                    (*reason, counter)
                })
                .collect(),
        }
    }
}

/// The handles of one channel route (label: the route's pattern, such as `room:*`, so
/// the label set is bounded by the app's routes, never by its topics).
#[derive(Debug)]
pub(crate) struct RouteTelemetry {
    pub(crate) joined: Gauge,
    pub(crate) joins: Counter,
    pub(crate) join_errors: Counter,
    pub(crate) handle_in: Histogram,
}

/// Every handle of one endpoint.
#[derive(Debug)]
pub(crate) struct Telemetry {
    transports: [PerTransport; 3],
    /// Frames written to clients.
    pub(crate) messages_out: Counter,
    /// Broadcasts sent (by channels, the endpoint, other nodes).
    pub(crate) broadcasts: Counter,
    /// Frames a broadcast queued for subscribers, summed.
    pub(crate) deliveries: Counter,
    /// Frames not queued because their socket was full or gone.
    pub(crate) frames_dropped: Counter,
    /// Presence metas tracked on this node (its own and replicated ones).
    pub(crate) presence_entries: Gauge,
    /// Long-poll sessions alive.
    pub(crate) longpoll_sessions: Gauge,
    /// 1 while the cluster link is up (only with a cluster).
    pub(crate) cluster_link: Gauge,
    /// Joins of a topic no route matches.
    pub(crate) unmatched_joins: Counter,
    routes: Mutex<HashMap<String, Arc<RouteTelemetry>>>,
}

impl Telemetry {
    /// Handles on whatever recorder is installed now.
    pub(crate) fn new() -> Self {
        Self {
            transports: [
                PerTransport::new(Transport::WebSocket),
                PerTransport::new(Transport::LongPoll),
                PerTransport::new(Transport::Test),
            ],
            messages_out: counter!("phx_messages_out_total"),
            broadcasts: counter!("phx_broadcasts_total"),
            deliveries: counter!("phx_deliveries_total"),
            frames_dropped: counter!("phx_frames_dropped_total"),
            presence_entries: gauge!("phx_presence_entries"),
            longpoll_sessions: gauge!("phx_longpoll_sessions"),
            cluster_link: gauge!("phx_cluster_link_up"),
            unmatched_joins: counter!("phx_join_errors_total", "route" => "unmatched"),
            routes: Mutex::new(HashMap::new()),
        }
    }

    fn transport(&self, transport: Transport) -> &PerTransport {
        match transport {
            Transport::WebSocket => &self.transports[0],
            Transport::LongPoll => &self.transports[1],
            Transport::Test => &self.transports[2],
        }
    }

    /// A socket opened.
    pub(crate) fn socket_opened(&self, transport: Transport) {
        let t = self.transport(transport);
        t.opened.increment(1);
        t.open.increment(1.0);
    }

    /// A socket closed, for `reason`.
    pub(crate) fn socket_closed(&self, transport: Transport, reason: CloseReason) {
        let t = self.transport(transport);
        t.open.decrement(1.0);
        if let Some(counter) = t.closed.get(&reason) {
            counter.increment(1);
        }
    }

    /// A client message arrived (heartbeats included).
    pub(crate) fn message_in(&self, transport: Transport) {
        self.transport(transport).messages_in.increment(1);
    }

    /// The handles of the route with this pattern.
    pub(crate) fn route(&self, pattern: &str) -> Arc<RouteTelemetry> {
        let Ok(mut routes) = self.routes.lock() else {
            return Arc::new(RouteTelemetry::new(pattern));
        };
        routes
            .entry(pattern.to_owned())
            .or_insert_with(|| Arc::new(RouteTelemetry::new(pattern)))
            .clone()
    }
}

impl RouteTelemetry {
    fn new(pattern: &str) -> Self {
        let route = pattern.to_owned();
        Self {
            joined: gauge!("phx_channels_joined", "route" => route.clone()),
            joins: counter!("phx_joins_total", "route" => route.clone()),
            join_errors: counter!("phx_join_errors_total", "route" => route.clone()),
            handle_in: histogram!("phx_handle_in_duration_seconds", "route" => route),
        }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

//! Observability: request metrics and the Prometheus registry, the log ring,
//! query statistics, alerts and webhooks, process readings, the history the
//! dashboard plots (and the page itself), and the background tasks that feed
//! them.

pub mod alerts;
pub mod dashboard;
pub mod history;
pub mod log_ring;
pub mod metrics;
pub mod querystats;
pub mod sysinfo;
pub mod tasks;

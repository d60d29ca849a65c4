//! Monitoring (README, "Monitoring"): the Prometheus endpoint, `logseal
//! status` and the status files it reads, certificate and CRL deadlines.

pub mod encode;
pub mod expiry;
pub mod families;
pub mod metrics;
pub mod status;

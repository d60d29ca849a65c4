//! What the collector's metrics endpoint reports, read at each scrape from
//! the store (per host: last seal, last batch, silence, bytes), the sessions
//! and the counters the connections keep.

use crate::monitor::encode::{counter, counters, gauge, gauges, seconds};
use crate::transport::proto::Code;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Refusals sent to agents since the start, by [`Code`] (process-wide: one
/// collector per process).
pub static REFUSALS: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];

const CODES: [Code; 11] = [
    Code::Protocol,
    Code::Version,
    Code::FrameTooLarge,
    Code::NotYourChain,
    Code::UnknownChain,
    Code::Rejected,
    Code::Conflict,
    Code::NotEnrolled,
    Code::Storage,
    Code::Unavailable,
    Code::Revoked,
];

/// Counters the connections keep.
#[derive(Debug)]
pub struct Counts {
    /// Batches acknowledged (stored and durable).
    pub batches: AtomicU64,
    /// Records newly stored in acknowledged batches.
    pub records: AtomicU64,
    /// Seconds from a batch's arrival to its acknowledgement.
    pub ack_seconds: Histogram,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            batches: AtomicU64::new(0),
            records: AtomicU64::new(0),
            ack_seconds: Histogram::new(crate::util::units::latency_buckets()),
        }
    }
}

/// The collector's state, as the endpoint reads it.
pub(super) struct CollectorMetrics {
    pub(super) shared: Arc<super::Shared>,
    /// `heartbeat × silent_after`.
    pub(super) silent_after: Duration,
    /// The certificate and CRL files it uses.
    pub(super) certificates: Vec<crate::monitor::expiry::Watched>,
}

impl std::fmt::Debug for CollectorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CollectorMetrics")
    }
}

impl CollectorMetrics {
    /// A registry holding these metrics and the process-wide fsync histogram.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut r = crate::monitor::metrics::registry(
            Box::new(self.clone()),
            &self.certificates,
            "collector",
            "store",
        );
        r.register_with_unit(
            "collector_ack",
            "Time from a batch's arrival to its acknowledgement (verified, stored, fsynced)",
            Unit::Seconds,
            self.shared.counts.ack_seconds.clone(),
        );
        r
    }
}

impl Collector for CollectorMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let hosts = self.shared.store.survey(self.silent_after, false);
        encode_hosts(&mut enc, &hosts)?;
        gauge(
            &mut enc,
            "collector_hosts",
            "Hosts the store holds",
            None,
            hosts.len() as f64,
        )?;
        gauge(
            &mut enc,
            "collector_silent_hosts",
            "Hosts silent now",
            None,
            hosts.iter().filter(|h| h.silent).count() as f64,
        )?;
        gauge(
            &mut enc,
            "collector_silent_after",
            "The configured silence threshold (heartbeat × silent_after)",
            Some(Unit::Seconds),
            self.silent_after.as_secs_f64(),
        )?;
        gauge(
            &mut enc,
            "collector_store",
            "Bytes of chains in the store",
            Some(Unit::Bytes),
            hosts.iter().map(|h| h.store_bytes).sum::<u64>() as f64,
        )?;
        let (kept, held) = self.shared.store.quarantine_usage();
        counter(
            &mut enc,
            "collector_quarantined_batches",
            "Refused batches kept in quarantine since the start",
            kept,
        )?;
        gauge(
            &mut enc,
            "collector_quarantine",
            "Bytes the quarantine holds (counted against its limits)",
            Some(Unit::Bytes),
            held as f64,
        )?;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut enc,
            "collector_batches",
            "Batches stored and acknowledged",
            load(&self.shared.counts.batches),
        )?;
        counter(
            &mut enc,
            "collector_records",
            "Records newly stored in acknowledged batches",
            load(&self.shared.counts.records),
        )?;
        counters(
            &mut enc,
            "collector_refusals",
            "Refusals sent to agents, by reason",
            CODES
                .iter()
                .map(|c| ([("reason", c.name())], load(&REFUSALS[*c as usize]))),
        )?;
        gauges(
            &mut enc,
            "collector_connections",
            "Open connections, by state",
            None,
            [
                (
                    [("state", "handshake")],
                    self.shared.pre_auth.count() as f64,
                ),
                (
                    [("state", "session")],
                    self.shared.active.load(Ordering::Relaxed) as f64,
                ),
            ],
        )?;
        gauges(
            &mut enc,
            "collector_build_info",
            "The logseal version (always 1)",
            None,
            [([("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )?;
        Ok(())
    }
}

/// The per-host families.
fn encode_hosts(
    enc: &mut DescriptorEncoder,
    hosts: &[super::store::HostStatus],
) -> Result<(), std::fmt::Error> {
    let now = crate::util::timefmt::now_ns();
    let host = |h: &super::store::HostStatus| [("host", h.host.clone())];
    gauges(
        enc,
        "collector_host_last_seal_timestamp",
        "When each host last sealed a chain this collector holds (Unix time)",
        Some(Unit::Seconds),
        hosts
            .iter()
            .filter_map(|h| Some((host(h), seconds(h.last_seal_ns?)))),
    )?;
    gauges(
        enc,
        "collector_host_seal_age",
        "Seconds since each host last sealed a chain this collector holds",
        Some(Unit::Seconds),
        hosts.iter().filter_map(|h| {
            Some((
                host(h),
                seconds(now.saturating_sub(h.last_seal_ns?)).max(0.0),
            ))
        }),
    )?;
    gauges(
        enc,
        "collector_host_last_batch_timestamp",
        "When this collector last stored a batch of each host (Unix time, this run)",
        Some(Unit::Seconds),
        hosts
            .iter()
            .filter_map(|h| Some((host(h), seconds(h.last_batch_ns?)))),
    )?;
    gauges(
        enc,
        "collector_host_silent",
        "1 for a host with no seal for longer than heartbeat × silent_after that did not stop cleanly",
        None,
        hosts.iter().map(|h| (host(h), f64::from(u8::from(h.silent)))),
    )?;
    gauges(
        enc,
        "collector_host_stored",
        "Bytes of each host's chains in the store",
        Some(Unit::Bytes),
        hosts.iter().map(|h| (host(h), h.store_bytes as f64)),
    )?;
    Ok(())
}

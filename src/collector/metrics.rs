//! What the collector's metrics endpoint reports, read at each scrape from
//! the store (per host: last seal, last batch, silence, bytes), the sessions
//! and the counters the connections keep.

use crate::monitor::encode::seconds;
use crate::monitor::families::*;
use crate::transport::proto::Code;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
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
        let help = "Time from a batch's arrival to its acknowledgement (verified, stored, fsynced)";
        let ack = Some((help, self.shared.counts.ack_seconds.clone()));
        let own = Box::new(self.clone());
        crate::monitor::metrics::registry(own, &self.certificates, ("collector", "store"), ack)
    }
}

impl Collector for CollectorMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let hosts = self.shared.store.survey(self.silent_after, false);
        encode_hosts(&mut enc, &hosts)?;
        COLLECTOR_HOSTS.gauge(&mut enc, hosts.len() as f64)?;
        COLLECTOR_SILENT_HOSTS.gauge(&mut enc, hosts.iter().filter(|h| h.silent).count() as f64)?;
        COLLECTOR_SILENT_AFTER.gauge(&mut enc, self.silent_after.as_secs_f64())?;
        COLLECTOR_STORE.gauge(
            &mut enc,
            hosts.iter().map(|h| h.store_bytes).sum::<u64>() as f64,
        )?;
        let (kept, held) = self.shared.store.quarantine_usage();
        COLLECTOR_QUARANTINED_BATCHES.counter(&mut enc, kept)?;
        COLLECTOR_QUARANTINE.gauge(&mut enc, held as f64)?;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        COLLECTOR_BATCHES.counter(&mut enc, load(&self.shared.counts.batches))?;
        COLLECTOR_RECORDS.counter(&mut enc, load(&self.shared.counts.records))?;
        COLLECTOR_REFUSALS.counters(
            &mut enc,
            CODES
                .iter()
                .map(|c| ([("reason", c.name())], load(&REFUSALS[*c as usize]))),
        )?;
        COLLECTOR_CONNECTIONS.gauges(
            &mut enc,
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
        COLLECTOR_BUILD_INFO.gauges(&mut enc, [([("version", env!("CARGO_PKG_VERSION"))], 1.0)])?;
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
    COLLECTOR_HOST_LAST_SEAL_TIMESTAMP.gauges(
        enc,
        hosts
            .iter()
            .filter_map(|h| Some((host(h), seconds(h.last_seal_ns?)))),
    )?;
    COLLECTOR_HOST_SEAL_AGE.gauges(
        enc,
        hosts.iter().filter_map(|h| {
            Some((
                host(h),
                seconds(now.saturating_sub(h.last_seal_ns?)).max(0.0),
            ))
        }),
    )?;
    COLLECTOR_HOST_LAST_BATCH_TIMESTAMP.gauges(
        enc,
        hosts
            .iter()
            .filter_map(|h| Some((host(h), seconds(h.last_batch_ns?)))),
    )?;
    COLLECTOR_HOST_SILENT.gauges(
        enc,
        hosts
            .iter()
            .map(|h| (host(h), f64::from(u8::from(h.silent)))),
    )?;
    COLLECTOR_HOST_STORED.gauges(enc, hosts.iter().map(|h| (host(h), h.store_bytes as f64)))?;
    Ok(())
}

//! What the agent's metrics endpoint reports: read from the stamper's,
//! shipper's, inputs' and journal reader's counters at each scrape (nothing
//! on the hot path beyond the relaxed atomic adds those already make).
//!
//! Integrity health first: how long since the last seal, what is not sealed,
//! what is not acknowledged by a collector and since when. Then throughput
//! and losses.

use super::stamper::Stats;
use crate::chain::record::{LossReason, Source};
use crate::ingest::LossCounter;
use crate::monitor::encode::seconds;
use crate::monitor::families::*;
use crate::monitor::status::{AgentStatus, InputStatus, JournalStatus, AGENT_INTERVAL};
use crate::transport::shipper::ShipStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One input as the metrics name it.
#[derive(Debug)]
pub struct InputView {
    /// `udp://ADDR`, `tcp://ADDR`, `unix-dgram://PATH`, …
    pub name: String,
    /// What it counted as lost.
    pub loss: Arc<LossCounter>,
    /// For a UDP input: its socket's inode and the kernel's drop count at bind.
    pub udp: Option<(u64, u64)>,
}

/// The agent's state, as the endpoint reads it.
#[derive(Debug)]
pub struct AgentMetrics {
    /// The stamper's counters.
    pub stats: Arc<Stats>,
    /// The shipper's, when `[ship]` is set.
    pub ship: Option<Arc<ShipStats>>,
    /// The journald reader's, when `[journald]` is set.
    pub journal: Option<Arc<crate::ingest::journal::ReaderStats>>,
    /// Every syslog input.
    pub inputs: Vec<InputView>,
    /// `[spool] max_size`.
    pub spool_limit: u64,
    /// `[chain] heartbeat`: a seal older than this is late.
    pub heartbeat: std::time::Duration,
    /// The chain's host name.
    pub host: String,
    /// The chain's id.
    pub chain: String,
    /// Certificate files the agent uses.
    pub certificates: Vec<crate::monitor::expiry::Watched>,
}

impl AgentMetrics {
    /// A registry holding these metrics and the process-wide fsync histogram.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let ack = self.ship.as_ref().map(|s| {
            let help = "Time from sending a batch to a collector to its acknowledgement";
            (help, s.ack_seconds.clone())
        });
        let own = Box::new(self.clone());
        crate::monitor::metrics::registry(own, &self.certificates, ("agent", "spool"), ack)
    }
}

/// A counter's or gauge's value now.
fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Collector for AgentMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = crate::util::timefmt::now_ns();
        self.encode_chain(&mut enc, now)?;
        if let Some(sh) = &self.ship {
            self.encode_ship(&mut enc, sh, now)?;
        }
        self.encode_events(&mut enc)?;
        self.encode_inputs(&mut enc)?;
        if let Some(j) = &self.journal {
            self.encode_journal(&mut enc, j)?;
        }
        AGENT_BUILD_INFO.gauges(&mut enc, [([("version", env!("CARGO_PKG_VERSION"))], 1.0)])?;
        Ok(())
    }
}

/// The families, by what they are about.
impl AgentMetrics {
    /// Seals, the spool.
    fn encode_chain(&self, enc: &mut DescriptorEncoder, now: i64) -> Result<(), std::fmt::Error> {
        let st = &self.stats;
        let last_seal = st.last_seal_ns.load(Ordering::Relaxed);
        AGENT_LAST_SEAL_TIMESTAMP.gauge(enc, seconds(last_seal))?;
        AGENT_SEAL_AGE.gauge(enc, seconds(now.saturating_sub(last_seal)).max(0.0))?;
        AGENT_HEARTBEAT.gauge(enc, self.heartbeat.as_secs_f64())?;
        AGENT_UNSEALED_RECORDS.gauge(enc, load(&st.unsealed) as f64)?;
        AGENT_SPOOL.gauge(enc, load(&st.spool_bytes) as f64)?;
        AGENT_SPOOL_LIMIT.gauge(enc, self.spool_limit as f64)?;
        AGENT_SEALS.counter(enc, load(&st.seals))?;
        Ok(())
    }

    /// Shipping to collectors.
    fn encode_ship(
        &self,
        enc: &mut DescriptorEncoder,
        sh: &ShipStats,
        now: i64,
    ) -> Result<(), std::fmt::Error> {
        let st = &self.stats;
        AGENT_UNACKNOWLEDGED.gauge(enc, load(&st.unacked_bytes) as f64)?;
        AGENT_UNACKNOWLEDGED_RECORDS.gauge(enc, load(&st.unacked_records) as f64)?;
        let oldest = st.oldest_unacked_ns.load(Ordering::Relaxed);
        AGENT_OLDEST_UNACKNOWLEDGED_AGE.gauge(
            enc,
            if oldest == 0 {
                0.0
            } else {
                seconds(now.saturating_sub(oldest)).max(0.0)
            },
        )?;
        AGENT_COLLECTOR_UP.gauge(
            enc,
            f64::from(u8::from(sh.connected.load(Ordering::Relaxed))),
        )?;
        AGENT_LAST_ACK_TIMESTAMP.gauge(enc, seconds(sh.last_ack_ns.load(Ordering::Relaxed)))?;
        AGENT_SHIPPED_RECORDS.counter(enc, load(&sh.records))?;
        AGENT_SHIPPED_BATCHES.counter(enc, load(&sh.batches))?;
        AGENT_COLLECTOR_CONNECTS.counter(enc, load(&sh.connects))?;
        Ok(())
    }

    /// Events and losses chained.
    fn encode_events(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let st = &self.stats;
        let by_source = |a: &[std::sync::atomic::AtomicU64]| {
            Source::ALL
                .iter()
                .map(|s| ([("source", s.name())], load(&a[*s as usize])))
                .filter(|(_, v)| *v > 0)
                .collect::<Vec<_>>()
        };
        AGENT_EVENTS.counters(enc, by_source(&st.events_by_source))?;
        AGENT_EVENT_BYTES.counters(enc, by_source(&st.bytes_by_source))?;
        AGENT_UNPARSED_EVENTS.counter(enc, load(&st.unparsed))?;
        let by_reason = |a: &[std::sync::atomic::AtomicU64]| {
            LossReason::ALL
                .iter()
                .map(|r| ([("reason", r.name())], load(&a[*r as usize])))
                .collect::<Vec<_>>()
        };
        AGENT_LOSS_RECORDS.counters(enc, by_reason(&st.loss_records))?;
        AGENT_LOSS_EVENTS.counters(enc, by_reason(&st.loss_events))?;
        Ok(())
    }

    /// Drops by input.
    fn encode_inputs(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        AGENT_INPUT_DROPPED.counters(
            enc,
            self.inputs
                .iter()
                .map(|i| ([("input", i.name.as_str())], i.loss.total())),
        )?;
        let udp: Vec<_> = self
            .inputs
            .iter()
            .filter_map(|i| {
                let (inode, base) = i.udp?;
                let now = crate::ingest::listen::kernel_udp_drops(inode)?;
                Some(([("input", i.name.as_str())], now.saturating_sub(base)))
            })
            .collect();
        if !udp.is_empty() {
            AGENT_UDP_KERNEL_DROPS.counters(enc, udp)?;
        }
        Ok(())
    }

    /// The journald input.
    fn encode_journal(
        &self,
        enc: &mut DescriptorEncoder,
        j: &crate::ingest::journal::ReaderStats,
    ) -> Result<(), std::fmt::Error> {
        let st = &self.stats;
        AGENT_JOURNAL_ENTRIES_READ.counter(enc, load(&j.read))?;
        AGENT_JOURNAL_ENTRIES_SENT.counter(enc, load(&j.sent))?;
        if let Some(lag) = j.lag_seconds(
            load(&st.journal_chained_usec),
            load(&st.events_by_source[Source::Journald as usize]),
        ) {
            AGENT_JOURNAL_LAG.gauge(enc, lag)?;
        }
        let last = load(&j.last_read_usec);
        if last > 0 {
            AGENT_JOURNAL_LAST_READ_TIMESTAMP.gauge(enc, last as f64 / 1e6)?;
        }
        Ok(())
    }
}

impl AgentMetrics {
    /// The agent's status now (what `logseal status` reads), from what it
    /// publishes for its metrics.
    pub fn status(&self, running: bool) -> AgentStatus {
        let m = self;
        let st = &m.stats;
        let ns = |v: i64| (v != 0).then(|| crate::util::timefmt::rfc3339(v));
        let ship = m.ship.as_deref();
        AgentStatus {
            time: crate::util::timefmt::rfc3339(crate::util::timefmt::now_ns()),
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            running,
            interval_secs: AGENT_INTERVAL.as_secs(),
            host: m.host.clone(),
            chain: m.chain.clone(),
            heartbeat_secs: m.heartbeat.as_secs(),
            last_seal_time: ns(st.last_seal_ns.load(Ordering::Relaxed)),
            unsealed_records: st.unsealed.load(Ordering::Relaxed),
            events: st.events(),
            spool_bytes: st.spool_bytes.load(Ordering::Relaxed),
            spool_limit_bytes: m.spool_limit,
            shipping: ship.is_some(),
            collector_up: ship.is_some_and(|s| s.connected.load(Ordering::Relaxed)),
            last_ack_time: ship.and_then(|s| ns(s.last_ack_ns.load(Ordering::Relaxed))),
            unacknowledged_bytes: st.unacked_bytes.load(Ordering::Relaxed),
            unacknowledged_records: st.unacked_records.load(Ordering::Relaxed),
            oldest_unacknowledged_time: ns(st.oldest_unacked_ns.load(Ordering::Relaxed)),
            inputs: m
                .inputs
                .iter()
                .map(|i| InputStatus {
                    input: i.name.clone(),
                    dropped: i.loss.total(),
                })
                .collect(),
            journal: m.journal.as_deref().map(|j| JournalStatus {
                read: j.read.load(Ordering::Relaxed),
                sent: j.sent.load(Ordering::Relaxed),
                lag_seconds: j.lag_seconds(
                    st.journal_chained_usec.load(Ordering::Relaxed),
                    st.events_by_source[Source::Journald as usize].load(Ordering::Relaxed),
                ),
            }),
            certificates: crate::monitor::expiry::deadlines(&m.certificates),
        }
    }
}

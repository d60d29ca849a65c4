//! Writing metrics whose values are read from the process's state at each
//! scrape (the [`prometheus_client::collector::Collector`]s of the agent, the
//! collector and the certificate deadlines).

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Seconds since the Unix epoch of a time in ns (for `_timestamp_seconds`).
pub fn seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// Writes one gauge without labels (for [`prometheus_client::collector::Collector`]s
/// that read the process's state at each scrape).
pub fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: f64,
) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    let m = enc.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?;
    g.encode(m)
}

/// Writes one counter without labels (its name gets `_total`).
pub fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let c = ConstCounter::new(value);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

/// Writes a gauge with one row per label set.
pub fn gauges<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(
        name,
        help,
        unit.as_ref(),
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes a counter with one row per label set.
pub fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

//! Writing metrics whose values are read from the process's state at each
//! scrape (the [`prometheus_client::collector::Collector`]s of the agent, the
//! collector and the certificate deadlines).

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// Seconds since the Unix epoch of a time in ns (for `_timestamp_seconds`).
pub fn seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// A metric family: its name, help text and unit. Each endpoint declares its
/// families in [`crate::monitor::families`] and writes them through these
/// methods.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
}

impl Family {
    /// A family (a counter's name gets `_total` when written).
    pub const fn new(name: &'static str, help: &'static str, unit: Option<Unit>) -> Family {
        Family { name, help, unit }
    }

    /// Writes one gauge without labels.
    pub fn gauge(&self, enc: &mut DescriptorEncoder<'_>, value: f64) -> std::fmt::Result {
        ConstGauge::new(value).encode(self.descriptor(enc, MetricType::Gauge)?)
    }

    /// Writes one counter without labels.
    pub fn counter(&self, enc: &mut DescriptorEncoder<'_>, value: u64) -> std::fmt::Result {
        ConstCounter::new(value).encode(self.descriptor(enc, MetricType::Counter)?)
    }

    /// Writes a gauge with one row per label set.
    pub fn gauges<L: EncodeLabelSet>(&self, enc: Enc, rows: impl Rows<L, f64>) -> Written {
        self.rows(enc, MetricType::Gauge, rows, ConstGauge::new)
    }

    /// Writes a counter with one row per label set.
    pub fn counters<L: EncodeLabelSet>(&self, enc: Enc, rows: impl Rows<L, u64>) -> Written {
        self.rows(enc, MetricType::Counter, rows, ConstCounter::new)
    }

    /// Writes the family's descriptor, then one row per label set, each value
    /// made a `kind` metric by `metric`.
    fn rows<L: EncodeLabelSet, V, M: EncodeMetric>(
        &self,
        enc: Enc,
        kind: MetricType,
        rows: impl Rows<L, V>,
        metric: fn(V) -> M,
    ) -> Written {
        let mut m = self.descriptor(enc, kind)?;
        for (labels, v) in rows {
            metric(v).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn descriptor<'a>(
        &'a self,
        enc: &'a mut DescriptorEncoder<'_>,
        kind: MetricType,
    ) -> Result<MetricEncoder<'a>, std::fmt::Error> {
        enc.encode_descriptor(self.name, self.help, self.unit.as_ref(), kind)
    }
}

/// Where a family is written.
type Enc<'a, 'b> = &'a mut DescriptorEncoder<'b>;
/// What writing a family returns.
type Written = std::fmt::Result;

/// A family's rows: a label set and a value each.
pub trait Rows<L, V>: IntoIterator<Item = (L, V)> {}
impl<L, V, T: IntoIterator<Item = (L, V)>> Rows<L, V> for T {}

/// Declares metric families as constants, one line each (see
/// [`crate::monitor::families`]):
/// `CONSTANT = "name", none | seconds | bytes, "help";`.
macro_rules! families {
    ($($c:ident = $name:literal, $unit:ident, $help:literal;)*) => {
        $(#[doc = $help] pub const $c: $crate::monitor::encode::Family =
            $crate::monitor::encode::Family::new($name, $help, $crate::monitor::encode::families!(@$unit));)*
    };
    (@none) => { None };
    (@seconds) => { Some(prometheus_client::registry::Unit::Seconds) };
    (@bytes) => { Some(prometheus_client::registry::Unit::Bytes) };
}
pub(crate) use families;

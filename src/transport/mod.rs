//! Shipping records from agents to collectors: the wire protocol
//! (`docs/PROTOCOL.md`), its TLS configuration and the agent's shipper.

pub mod crl;
pub mod proto;
pub mod shipper;
pub mod tls;

//! Shipping records from agents to collectors: the wire protocol
//! (`docs/PROTOCOL.md`), its TLS configuration, the agent's shipper and the
//! receipts it keeps.

pub mod block;
pub mod crl;
pub mod proto;
pub mod receipts;
pub mod shipper;
pub mod tls;

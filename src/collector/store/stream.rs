//! The store's chains on a JetStream stream ([`crate::storage::jetstream`]):
//! read back when a host sends one, kept up with what other collectors
//! appended, and appended to only at the stream's own tip.

use super::{
    lock, refused, remember, visit_seal, Backing, Checked, HostInfo, Refused, Slot, Store,
};
use crate::chain::hash;
use crate::chain::record::decode_header_only;
use crate::chain::tip::Tip;
use crate::chain::ChainId;
use crate::storage::jetstream::{ChainMessage, JetStream, JetStreamError, Published};
use crate::transport::proto::Code;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Leaves remembered of a chain resumed from its last message.
const RESUME_RECENT: usize = 256;

fn unreachable_stream(e: JetStreamError) -> Refused {
    refused(
        Code::Storage,
        format!("reading the chain from the stream: {e}"),
    )
}

/// A chain resumed from its last message's tip, if that tip is the chain's
/// and ends where the message's records end.
fn resume(host: &str, chain: ChainId, m: &ChainMessage) -> Option<Slot> {
    let tip = m.tip.clone()?;
    let last_seq = decode_header_only(m.records.last()?).ok()?.seq;
    if tip.chain_id != chain || tip.host != host || tip.next_seq != last_seq.checked_add(1)? {
        return None;
    }
    let first = (last_seq + 1).checked_sub(m.records.len() as u64)?;
    // The last records' leaves, to recognise a re-sent one (an agent resends
    // from the position a collector answered, so few are needed; a message
    // may hold thousands).
    let mut recent = VecDeque::new();
    let skip = m.records.len().saturating_sub(RESUME_RECENT);
    for (i, r) in m.records.iter().enumerate().skip(skip) {
        remember(&mut recent, first + i as u64, hash::leaf(r));
    }
    Some(Slot {
        tip,
        log: Backing::Stream { last: m.stream_seq },
        recent,
        broken: None,
    })
}

impl Store {
    /// A chain read from the stream (`None`: the stream holds nothing of it):
    /// from the tip its last message carries, or, where that is missing or
    /// does not fit, from its Genesis through the tip check.
    pub(super) fn stream_slot(
        &self,
        jet: &JetStream,
        host: &str,
        chain: ChainId,
    ) -> Result<Option<Arc<Mutex<Slot>>>, Refused> {
        let _one_at_a_time = lock(&self.reloading);
        if let Some(s) = lock(&self.chains).get(&chain).cloned() {
            return Ok(Some(s));
        }
        let Some(last) = jet.last(host, chain).map_err(unreachable_stream)? else {
            return Ok(None);
        };
        let slot = match resume(host, chain, &last) {
            Some(s) => s,
            None => {
                tracing::info!(host, chain = %chain, "no usable tip on the chain's last message: reading it from its Genesis");
                let mut s = Slot {
                    tip: Tip::before_genesis(chain, host),
                    log: Backing::Stream { last: 0 },
                    recent: VecDeque::new(),
                    broken: None,
                };
                self.catch_up(&mut s)?;
                s
            }
        };
        if let Some(why) = &slot.broken {
            self.alert("stored-chain-damaged", host, Some(chain), why);
        }
        tracing::info!(host, chain = %chain, next_seq = slot.tip.next_seq, "chain read from the stream");
        let slot = Arc::new(Mutex::new(slot));
        lock(&self.chains).insert(chain, slot.clone());
        let mut hosts = lock(&self.hosts);
        let info = hosts.entry(host.to_string()).or_insert_with(HostInfo::new);
        if !info.chains.contains(&chain) {
            info.chains.push(chain);
        }
        Ok(Some(slot))
    }

    /// Brings every chain of the hosts this collector knows up to the stream
    /// (what other collectors stored since, or the chain's last message if
    /// it was not read yet), so that liveness and status judge a host by
    /// what the whole cluster holds of it, not by what reached this
    /// collector. One request per chain; a chain that cannot be read now is
    /// left as it is.
    pub(super) fn refresh_from_stream(&self, jet: &JetStream) {
        // Chains other collectors started since are known first.
        if let Err(e) = self.know_listed(jet) {
            tracing::warn!(error = %e, "listing the stream's chains");
        }
        let known: Vec<(String, Vec<ChainId>)> = lock(&self.hosts)
            .iter()
            .map(|(h, i)| (h.clone(), i.chains.clone()))
            .collect();
        let mut failed = 0;
        for (host, chains) in known {
            for chain in chains {
                let cached = lock(&self.chains).get(&chain).cloned();
                let ok = match cached {
                    Some(slot) => {
                        let mut s = lock(&slot);
                        s.broken.is_some() || self.catch_up(&mut s).is_ok()
                    }
                    None => self.stream_slot(jet, &host, chain).is_ok(),
                };
                failed += usize::from(!ok);
            }
        }
        if failed > 0 {
            tracing::warn!(
                chains = failed,
                "could not read chains from the stream for the status"
            );
        }
    }

    /// Adds the chains the stream lists to the hosts this collector knows;
    /// returns how many it lists.
    pub(super) fn know_listed(&self, jet: &JetStream) -> Result<usize, JetStreamError> {
        let listing = jet.chains()?;
        if listing.others > 0 {
            self.alert(
                "stream-foreign-subjects",
                "",
                None,
                &format!(
                    "{} subject(s) under the chains' prefix name no chain: {}",
                    listing.others,
                    listing.other_subjects.join(", ")
                ),
            );
        }
        let mut hosts = lock(&self.hosts);
        for (host, id) in &listing.chains {
            let info = hosts.entry(host.clone()).or_insert_with(HostInfo::new);
            if !info.chains.contains(id) {
                info.chains.push(*id);
            }
        }
        Ok(listing.chains.len())
    }

    /// Applies what other collectors appended to the chain since its slot's
    /// last message, through the tip check. A message that does not continue
    /// the chain marks it damaged (and raises an alert).
    pub(super) fn catch_up(&self, s: &mut Slot) -> Result<(), Refused> {
        let (Some(jet), Backing::Stream { mut last }) = (&self.jet, &s.log) else {
            return Ok(());
        };
        let (host, chain) = (s.tip.host.clone(), s.tip.chain_id);
        let before = s.tip.next_seq;
        while s.broken.is_none() {
            let m = match jet.next(&host, chain, last) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e @ JetStreamError::Message { .. }) => {
                    s.broken = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(unreachable_stream(e)),
            };
            for r in &m.records {
                let leaf = hash::leaf(r);
                if let Err(e) = s.tip.apply(r, &leaf) {
                    s.broken = Some(format!("stream message {}: {e}", m.stream_seq));
                    break;
                }
                remember(&mut s.recent, s.tip.next_seq - 1, leaf);
            }
            last = m.stream_seq;
            s.log = Backing::Stream { last };
        }
        if let Some(why) = &s.broken {
            self.alert("stored-chain-damaged", &host, Some(chain), why);
        }
        if s.tip.next_seq > before && before > 0 {
            tracing::info!(host, chain = %chain, from_seq = before, next_seq = s.tip.next_seq, "caught up with records other collectors stored on the stream");
        }
        Ok(())
    }

    /// Publishes checked records, one message per chunk, each only if the
    /// chain's last message is still the slot's. `Ok(false)`: the chain
    /// moved (the slot holds what was stored before that): catch up, check
    /// again.
    pub(super) fn publish(
        &self,
        jet: &JetStream,
        s: &mut Slot,
        host: &str,
        chain: ChainId,
        checked: Checked<'_>,
    ) -> Result<(bool, usize), JetStreamError> {
        let Checked { new, tip, cuts } = checked;
        let mut stored = 0;
        let mut start = 0;
        for (end, tip_after) in cuts.into_iter().chain([(new.len(), tip)]) {
            if end <= start {
                s.tip = tip_after;
                continue;
            }
            let Backing::Stream { last } = s.log else {
                return Ok((false, stored));
            };
            let records: Vec<&[u8]> = new[start..end].iter().map(|x| x.2).collect();
            match jet.publish(host, chain, new[start].0, &records, &tip_after, last)? {
                Published::Stored(seq) => {
                    s.log = Backing::Stream { last: seq };
                    for (q, l, _) in &new[start..end] {
                        remember(&mut s.recent, *q, *l);
                    }
                    s.tip = tip_after;
                    stored += end - start;
                }
                Published::Moved => return Ok((false, stored)),
            }
            start = end;
        }
        Ok((true, stored))
    }
}

/// [`Store::stored_seals`] on a stream: every message of the chain, in order.
pub(super) fn each_seal(
    jet: &JetStream,
    host: &str,
    chain: ChainId,
    last_epoch: u64,
    mut found: impl FnMut(u64, &[u8]) -> bool,
) {
    let mut last = 0;
    while let Ok(Some(m)) = jet.next(host, chain, last) {
        for r in &m.records {
            if visit_seal(chain, last_epoch, &mut found, r) {
                return;
            }
        }
        last = m.stream_seq;
    }
}

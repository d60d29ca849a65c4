//! Every metric family logseal writes, one table: the constant, the name
//! (after the `logseal_` prefix; a unit adds `_seconds` or `_bytes`, a counter
//! `_total`), the unit and the help text. README, "Monitoring", explains them.

use crate::monitor::encode::families;

families! {
    AGENT_BUILD_INFO = "agent_build_info", none, "The logseal version (always 1)";
    AGENT_LAST_SEAL_TIMESTAMP = "agent_last_seal_timestamp", seconds, "When the agent last sealed its chain (Unix time)";
    AGENT_SEAL_AGE = "agent_seal_age", seconds, "Seconds since the agent last sealed its chain";
    AGENT_HEARTBEAT = "agent_heartbeat", seconds, "The configured heartbeat: the chain is sealed at least this often";
    AGENT_UNSEALED_RECORDS = "agent_unsealed_records", none, "Records appended since the last seal";
    AGENT_SPOOL = "agent_spool", bytes, "Bytes in the spool's files";
    AGENT_SPOOL_LIMIT = "agent_spool_limit", bytes, "The spool's size cap ([spool] max_size)";
    AGENT_SEALS = "agent_seals", none, "Seals made since the start";
    AGENT_UNACKNOWLEDGED = "agent_unacknowledged", bytes, "Bytes of the spool durable and not yet acknowledged by a collector";
    AGENT_UNACKNOWLEDGED_RECORDS = "agent_unacknowledged_records", none, "Records of this run durable and not yet acknowledged (to a commit's precision)";
    AGENT_OLDEST_UNACKNOWLEDGED_AGE = "agent_oldest_unacknowledged_age", seconds, "Seconds since the oldest record not acknowledged became durable (0: none)";
    AGENT_COLLECTOR_UP = "agent_collector_up", none, "1 while a session with a collector is up";
    AGENT_LAST_ACK_TIMESTAMP = "agent_last_ack_timestamp", seconds, "When a collector last acknowledged a batch (Unix time; 0: not in this run)";
    AGENT_SHIPPED_RECORDS = "agent_shipped_records", none, "Records acknowledged by collectors";
    AGENT_SHIPPED_BATCHES = "agent_shipped_batches", none, "Batches acknowledged by collectors";
    AGENT_COLLECTOR_CONNECTS = "agent_collector_connects", none, "Sessions opened with collectors";
    AGENT_EVENTS = "agent_events", none, "Events chained, by source";
    AGENT_EVENT_BYTES = "agent_event_bytes", none, "Bytes of messages chained, by source";
    AGENT_UNPARSED_EVENTS = "agent_unparsed_events", none, "Raw events chained that do not start like syslog (flagged unparsed)";
    AGENT_LOSS_RECORDS = "agent_loss_records", none, "Loss records chained, by reason";
    AGENT_LOSS_EVENTS = "agent_loss_events", none, "Events the chained Loss records account for, by reason (0 where a count is unknown)";
    AGENT_INPUT_DROPPED = "agent_input_dropped", none, "Messages an input could not hand over (chained as Loss records)";
    AGENT_UDP_KERNEL_DROPS = "agent_udp_kernel_drops", none, "Datagrams the kernel dropped on a UDP input's full receive buffer since the start (chained as a Loss record at the stop)";
    AGENT_JOURNAL_ENTRIES_READ = "agent_journal_entries_read", none, "Journal entries read";
    AGENT_JOURNAL_ENTRIES_SENT = "agent_journal_entries_sent", none, "Journal entries passed to the stamper";
    AGENT_JOURNAL_LAG = "agent_journal_lag", seconds, "How far the chain is behind the journal: from the last entry chained to the journal's newest, in the entries' wall-clock time (0: everything chained)";
    AGENT_JOURNAL_LAST_READ_TIMESTAMP = "agent_journal_last_read_timestamp", seconds, "Wall-clock time of the last journal entry read (Unix time)";
    COLLECTOR_HOSTS = "collector_hosts", none, "Hosts the store holds";
    COLLECTOR_SILENT_HOSTS = "collector_silent_hosts", none, "Hosts silent now";
    COLLECTOR_SILENT_AFTER = "collector_silent_after", seconds, "The configured silence threshold (heartbeat × silent_after)";
    COLLECTOR_STORE = "collector_store", bytes, "Bytes of chains in the store";
    COLLECTOR_QUARANTINED_BATCHES = "collector_quarantined_batches", none, "Refused batches kept in quarantine since the start";
    COLLECTOR_QUARANTINE = "collector_quarantine", bytes, "Bytes the quarantine holds (counted against its limits)";
    COLLECTOR_BATCHES = "collector_batches", none, "Batches stored and acknowledged";
    COLLECTOR_RECORDS = "collector_records", none, "Records newly stored in acknowledged batches";
    COLLECTOR_REFUSALS = "collector_refusals", none, "Refusals sent to agents, by reason";
    COLLECTOR_CONNECTIONS = "collector_connections", none, "Open connections, by state";
    COLLECTOR_BUILD_INFO = "collector_build_info", none, "The logseal version (always 1)";
    COLLECTOR_HOST_LAST_SEAL_TIMESTAMP = "collector_host_last_seal_timestamp", seconds, "When each host last sealed a chain this collector holds (Unix time)";
    COLLECTOR_HOST_SEAL_AGE = "collector_host_seal_age", seconds, "Seconds since each host last sealed a chain this collector holds";
    COLLECTOR_HOST_LAST_BATCH_TIMESTAMP = "collector_host_last_batch_timestamp", seconds, "When this collector last stored a batch of each host (Unix time, this run)";
    COLLECTOR_HOST_SILENT = "collector_host_silent", none, "1 for a host with no seal for longer than heartbeat × silent_after that did not stop cleanly";
    COLLECTOR_HOST_STORED = "collector_host_stored", bytes, "Bytes of each host's chains in the store";
    CERTIFICATE_EXPIRY_TIMESTAMP = "certificate_expiry_timestamp", seconds, "When the earliest certificate in a file the process uses expires (Unix time)";
    CRL_NEXT_UPDATE_TIMESTAMP = "crl_next_update_timestamp", seconds, "When a CRL the process uses is due to be re-signed (Unix time)";
}

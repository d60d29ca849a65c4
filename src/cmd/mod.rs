//! One module per subcommand: its options (clap) and what it does. `main.rs`
//! only parses the command line and dispatches here. `anyhow` is used here
//! and nowhere else: the library modules return typed errors.

pub mod agent;
pub mod checkpoint;
pub mod collector;
pub mod inspect;
pub mod logging;
pub mod man;
pub mod pki;
pub mod quickstart;
pub mod stamp;
pub mod status;
pub mod store;
pub mod vectors;
pub mod verify;

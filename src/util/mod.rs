//! Small helpers shared by the stages.

pub mod config;
pub mod host;
pub mod stop;
pub mod timefmt;
pub mod units;

/// An I/O error said again with what was being done (and on what), its kind
/// kept: `map_err(in_doing(format_args!("opening {}", path.display())))`.
pub fn in_doing(
    what: std::fmt::Arguments<'_>,
) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

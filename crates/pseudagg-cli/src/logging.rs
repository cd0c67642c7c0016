use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::cli::LogFormat;

/// Logs go to stderr; the level comes from `PSEUDAGG_LOG` (default `info`). Logs carry counts,
/// hashes, paths and names of columns, never a value from the data.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("PSEUDAGG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(FmtSpan::CLOSE);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .init(),
    }
}

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::cli::LogFormat;

/// Logs go to stderr; the level comes from `PSEUDAGG_LOG` (default `info`). Logs carry counts,
/// hashes, paths and names of columns, never a value from the data.
pub(crate) fn init(format: LogFormat) {
    let mut filter =
        EnvFilter::try_from_env("PSEUDAGG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // The linear-program solver of `verify` traces every pivot: `PSEUDAGG_LOG=trace` gave 555 MB
    // for one small report. It speaks only at `warn` unless named in `PSEUDAGG_LOG` itself.
    let named = std::env::var("PSEUDAGG_LOG").is_ok_and(|v| v.contains("microlp"));
    if !named {
        filter = filter.add_directive("microlp=warn".parse().expect("a valid directive"));
    }
    // A span's close (with its busy and idle times) is a line for whoever debugs; at `info` a
    // scheduler sees the steps' own lines and the run's summary only.
    let span_events = if filter
        .max_level_hint()
        .is_some_and(|l| l >= tracing_subscriber::filter::LevelFilter::DEBUG)
    {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(span_events);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .init(),
    }
}

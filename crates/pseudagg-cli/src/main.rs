//! `pseudagg`: the command line. Parses arguments, sets up logging, runs one command, and maps the
//! outcome to an exit code: 0 success, 1 a check failed, 2 an error.

use std::process::ExitCode;

use clap::Parser;

mod batch;
mod cli;
mod commands;
mod governance;
mod logging;
mod preflight;

use cli::{Cli, LogFormat};

/// mimalloc keeps and reuses the memory of the read-ahead chunks; with the system allocator each
/// chunk's buffers are fresh pages, and a national run spends seconds in page faults.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The outcome of a command, as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitStatus {
    Success,
    /// A check found a violation.
    Failure,
    /// The command could not do its work.
    Error,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
        }
    }
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitStatus::Error
            } else {
                ExitStatus::Success
            };
            let _ = e.print();
            return code.into();
        }
    };
    let json = cli.log_format == LogFormat::Json;
    logging::init(cli.log_format);
    let protocol = cli.command.protocol_args().or(cli.protocol);
    let ctx = governance::Context::new(
        json,
        protocol.protocol,
        protocol.protocol_key,
        protocol.operator,
    );
    let outcome = std::panic::catch_unwind(|| commands::run(cli.command, &ctx));
    let status = match outcome {
        Ok(Ok(())) => ExitStatus::Success,
        Ok(Err(e)) => report(&e, json),
        Err(_) => ExitStatus::Error,
    };
    status.into()
}

/// Reports an error on stderr, as text or as a JSON log line, and picks the exit status.
#[allow(clippy::print_stderr)] // the binary's edge is where errors are printed
fn report(e: &anyhow::Error, json: bool) -> ExitStatus {
    if is_broken_pipe(e) {
        return ExitStatus::Success;
    }
    let failed_check = e
        .downcast_ref::<pseudagg_core::Error>()
        .is_some_and(pseudagg_core::Error::is_check_failure);
    if json {
        tracing::error!(error = %format!("{e:#}"), check_failed = failed_check, "command failed");
    } else {
        eprintln!("error: {e:#}");
    }
    if failed_check {
        ExitStatus::Failure
    } else {
        ExitStatus::Error
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(
                c.downcast_ref::<pseudagg_core::Error>(),
                Some(pseudagg_core::Error::Io { cause, .. })
                    if cause.kind() == std::io::ErrorKind::BrokenPipe
            )
    })
}

/// A panic is a bug. Its message could quote data, so only the place is shown.
#[allow(clippy::print_stderr)]
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!(
            "error: internal error{place}: pseudagg stopped unexpectedly and wrote nothing. \
             The message is withheld because it could contain data; please report this place."
        );
    }));
}

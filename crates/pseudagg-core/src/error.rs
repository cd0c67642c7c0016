use std::path::PathBuf;

use crate::Problems;

/// `Result` with pseudagg's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a pseudagg command, by category.
///
/// No variant ever holds a value read from an extract: messages name files, rows and columns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the combination of options is wrong.
    #[error("{0}")]
    Usage(String),
    /// A pipeline, report or request definition is invalid.
    #[error("{} is not a valid definition ({} problem{}):\n{problems}", file.display(), problems.total(), plural(problems.total()))]
    Definition { file: PathBuf, problems: Problems },
    /// A batch's pre-flight found problems before any data was read: each names its file and key.
    #[error("pre-flight of {} found {} problem{}; no data was read, nothing was written:\n{problems}", file.display(), problems.total(), plural(problems.total()))]
    Preflight { file: PathBuf, problems: Problems },
    /// An extract does not match its schema.
    #[error("{} does not match the schema `{schema}` ({} problem{}); nothing was written:\n{problems}", file.display(), problems.total(), plural(problems.total()))]
    Input {
        file: PathBuf,
        schema: String,
        problems: Problems,
    },
    /// The key file is missing, unsafe or malformed.
    #[error("{0}")]
    Key(String),
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        // Shown in the message. Not named `source`: thiserror would make it the error's source,
        // and a chain printout (`{:#}`) would say it twice.
        cause: std::io::Error,
    },
    /// A file has a broken structure (for example a corrupt Parquet footer).
    #[error("{} cannot be read: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    /// Another run holds the lock of the same output.
    #[error("{0}")]
    Locked(String),
    /// A check found a violation (exit code 1, not 2).
    #[error("{0}")]
    CheckFailed(String),
    /// A rule of data protection forbids what was asked (for example a time series).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// Shorthand for an [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            cause,
        }
    }

    /// Is this a failed check (exit code 1) rather than an error (exit code 2)?
    #[must_use]
    pub fn is_check_failure(&self) -> bool {
        matches!(self, Self::CheckFailed(_))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod io_message_tests {
    use super::Error;

    /// Issue 17: the OS error appeared twice ("... (os error 2): No such file ... (os error 2)")
    /// when the error was printed with its chain, as the CLI does.
    #[test]
    fn an_os_error_is_named_once_in_the_chain() {
        let e = Error::io(
            "open",
            "/nonexistent.csv",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        // The CLI prints the message and then each source in turn: there must be none.
        assert!(std::error::Error::source(&e).is_none());
        let shown = e.to_string();
        assert_eq!(shown.matches("not found").count(), 1, "{shown}");
        assert!(
            shown.starts_with("cannot open /nonexistent.csv: "),
            "{shown}"
        );
    }
}

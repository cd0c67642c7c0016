//! The rules around the outputs (seeds 000, 001, 003, 004):
//!
//! - [`keys`]: the key-id register of an output root, one key per month;
//! - [`lockfile`]: lock files that their holder removes when it is done;
//! - [`protocol`]: the tamper-evident run protocol, its retention and the monthly control sample;
//! - [`request`]: a Traeger's request for an aggregated report, complete and admissible or refused;
//! - [`sample`]: the random review sample of pseudonymised cases per RD;
//! - [`traeger`]: the steward's register of Traeger and the gEs each runs (a request's area).

pub mod keys;
pub mod lockfile;
pub mod protocol;
pub mod request;
pub mod sample;
pub mod traeger;

pub use keys::{KEY_REGISTER, KeyCheck, KeyRegister};
pub use lockfile::LockFile;
pub use protocol::{
    ChainKey, ChainReport, Entry, FileRef, OutputsReport, Protocol, Record, check_outputs,
    is_expired,
};
pub use request::Request;
pub use sample::{ReviewSample, draw};
pub use traeger::TraegerRegister;

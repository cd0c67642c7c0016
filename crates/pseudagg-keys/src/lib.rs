//! Keys and pseudonyms.
//!
//! The derivation is fixed so that the data owner can recompute any pseudonym with standard tools:
//!
//! - the master key is 32 random bytes, stored as 64 lower-case hex characters and a newline in a
//!   file only its owner may read (mode 0600);
//! - the key id is the first 16 hex characters of SHA-256 of the key bytes;
//! - the period key is HKDF-SHA256 (RFC 5869) of the master key, with an empty salt and the info
//!   `pseudagg:v1:{purpose}:{YYYY-MM}`, 32 bytes long;
//! - the pseudonym is the lower-case hex of HMAC-SHA256(period key, trimmed upper-cased identifier).
//!
//! One key per month and purpose makes pseudonyms unlinkable across months: no time series can be
//! built from them.
//!
//! ```
//! use pseudagg_keys::{MasterKey, Pseudonymiser};
//!
//! let key = MasterKey::from_bytes([7; 32]);
//! let march = Pseudonymiser::new(&key, "vkb", "2025-03".parse().unwrap());
//! let april = Pseudonymiser::new(&key, "vkb", "2025-04".parse().unwrap());
//! let p = march.pseudonym("325D123456");
//! assert_eq!(p.len(), 64);
//! assert_eq!(p, march.pseudonym(" 325d123456 "));
//! assert_ne!(p, april.pseudonym("325D123456"));
//! ```

mod key;
mod pseudonym;

pub use key::{KeyId, MasterKey, PROTOCOL_CHAIN_INFO, generate_key_file};
pub use pseudonym::{PSEUDONYM_LEN, Pseudonymiser, period_key_info};

//! Pseudonymisation pipelines.
//!
//! A pipeline is a TOML definition ([`PipelineDefinition`]): which input schema it reads, which rows
//! it keeps (a flag), which identifier becomes a keyed pseudonym, which personal field is generalised
//! (birth date to a five-year age band), and an explicit allow-list of the columns that are kept.
//! Everything not listed is dropped. [`Plan::build`] checks the whole definition against the schema
//! before any data is read and reports every problem at once; a definition that would keep a column
//! of class identifier, personal, staff or free-text is refused.
//!
//! [`run`] then streams the extract in batches through filter, pseudonymisation and generalisation,
//! and writes one Parquet dataset per partition (per RD) plus a `manifest.json`, atomically.
//!
//! ```
//! use pseudagg_pipeline::Plan;
//!
//! let definition = r#"
//!     name = "vkb"
//!     input-schema = "verbis-vkb"
//!     partition-by = "rd"
//!     keep = ["rd", "agentur_nr", "vorname"]
//!     [filter]
//!     column = "vkb_kennzeichen"
//!     equals = "J"
//!     [[pseudonymise]]
//!     column = "kundennummer"
//!     as = "pseudonym"
//! "#;
//! let err = Plan::from_toml(definition, "vkb.toml".as_ref()).unwrap_err();
//! assert!(err.to_string().contains("`vorname` is personal data"));
//! ```

mod definition;
mod kanon;
mod lookup;
mod manifest;
mod plan;
mod run;
mod transform;

pub use definition::{
    AgeBand, DaysBand, Filter, Generalise, KAnonymity, PipelineDefinition, Pseudonymise,
};
pub use lookup::{Found, LookupOptions, lookup};
pub use manifest::{
    ColumnNote, InputNote, KAnonymityNote, Manifest, PartitionCounts, PartitionRisk,
};
pub use plan::Plan;
pub use run::{RunOptions, RunOutcome, run};
pub use transform::{age_band_label, days_band_label};

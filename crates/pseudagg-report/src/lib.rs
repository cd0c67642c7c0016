//! opDs special reports (Sonderaufbereitungen).
//!
//! A report definition (`pipelines/gefluechtete.toml`) names a population, an optional dimension
//! whose categories split it (with a total), and indicators, each a count of rows; an indicator may
//! be declared a subset of another. All are expressions over the input schema's attribute and org
//! columns ([`expr`]), checked before any data is read; the Datenstand and personal columns are
//! refused, and dates can only be compared with the report month's end, so no time series can be
//! built.
//!
//! [`run`] counts per gE in one pass, adds RD and Bund totals, suppresses counts below the threshold
//! and every further cell needed so that no suppressed count can be computed or narrowed
//! ([`suppress`]), proves it with linear programs ([`audit`]), and writes for each recipient only
//! what it may see: `bund/`, `rd=<RD>/` and `ge=<nr>/`, each as Parquet, CSV and XLSX.

mod aggregate;
pub mod audit;
pub mod batch;
pub mod cover;
mod cuts;
pub mod definition;
pub mod expr;
pub mod joint;
pub mod layout;
pub mod lift;
mod lp;
mod output;
mod plan;
mod run;
pub mod suppress;
pub mod table;

pub use aggregate::{Counter, Counts, GeInfo, Partial, RowClass, read_register};
pub use output::footnotes;
pub use plan::ReportPlan;
pub use run::{
    AuditNote, DimensionNote, IndicatorNote, ReportManifest, ReportOptions, ReportOutcome,
    RequestScope, StructureNote, run,
};

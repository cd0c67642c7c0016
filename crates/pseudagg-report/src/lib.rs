//! opDs special reports (Sonderaufbereitungen).

pub mod expr;

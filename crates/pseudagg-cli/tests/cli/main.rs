//! End-to-end tests of the `pseudagg` binary. One test binary, modules by concern.

mod common;

/// The good path: output layout, readability by other tools, no leak, reruns, months.
mod pseudonymise;

/// pyarrow, pandas, polars and DuckDB read every output in one call.
mod clients;

/// A person's records of two months do not link through the attributes they keep.
mod linking;

/// Broken extracts: exit code 2, a message naming row and column but never the value, nothing written.
mod bad_inputs;

/// Key files, definitions and the generator at the command line.
mod commands;

/// opDs reports: recipients' scopes, suppression, workbooks, no time series.
mod reports;

/// The reports of one month protected together: a second definition cannot be differenced.
mod joint;

/// `pseudagg verify`: good output passes, planted violations are found by rule.
mod verify;

/// Protocol, requests, review sample and the monthly batch.
mod governance;

/// SIGKILL at random moments: the old output or the new one, never a mix.
mod crash;

/// Canaries in every sensitive field: none may reach any output, log or protocol.
mod canary;

/// The fuzzers' corpora and found crashes, replayed on stable in every run.
mod fuzz_corpus;

/// Every command of the README's usage blocks, run as written.
mod readme;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// pseudagg turns extracts that hold personal data into data that people outside the local office
/// may see: keyed pseudonyms per month, per-RD datasets, and nothing partial on failure.
///
/// Exit codes: 0 success, 1 a check failed, 2 an error (nothing was written).
/// Logging: PSEUDAGG_LOG sets the level (error, warn, info, debug, trace; default info).
#[derive(Debug, Parser)]
#[command(name = "pseudagg", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// Log lines on stderr as text for people or as JSON for schedulers.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "PSEUDAGG_LOG_FORMAT",
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,

    /// The protocol options given before the command (`pseudagg --protocol P run ...`), the old
    /// place; they are offered in the help of the commands that keep a protocol.
    #[command(flatten)]
    pub protocol: LegacyProtocolArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the run protocol is, how it is sealed, and who runs: offered by every command that
/// reads personal or pseudonymised data or the protocol itself, and by no other.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Protocol options")]
pub(crate) struct ProtocolArgs {
    /// The run protocol (JSON lines). Default: protocol.jsonl in the output root.
    #[arg(long, value_name = "FILE", env = "PSEUDAGG_PROTOCOL")]
    pub protocol: Option<PathBuf>,

    /// The protocol key (a key file from `pseudagg keygen`, kept apart from the pseudonym key):
    /// every record is sealed with an HMAC, and every seal read is checked. Without it a sealed
    /// protocol is refused.
    #[arg(long, value_name = "FILE", env = "PSEUDAGG_PROTOCOL_KEY_FILE")]
    pub protocol_key: Option<PathBuf>,

    /// Who runs the command, for the protocol. Default: the operating-system user.
    #[arg(long, value_name = "NAME", env = "PSEUDAGG_OPERATOR")]
    pub operator: Option<String>,
}

/// The same options before the command name, where they stood before: hidden, still accepted.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct LegacyProtocolArgs {
    #[arg(long = "protocol", value_name = "FILE", hide = true)]
    pub protocol: Option<PathBuf>,
    #[arg(long = "protocol-key", value_name = "FILE", hide = true)]
    pub protocol_key: Option<PathBuf>,
    #[arg(long = "operator", value_name = "NAME", hide = true)]
    pub operator: Option<String>,
}

impl ProtocolArgs {
    /// These options, each taken from before the command where it was not given after it.
    #[must_use]
    pub fn or(self, before: LegacyProtocolArgs) -> Self {
        Self {
            protocol: self.protocol.or(before.protocol),
            protocol_key: self.protocol_key.or(before.protocol_key),
            operator: self.operator.or(before.operator),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProtocolAction {
    /// Check the hash chain; names the first record that was edited, removed, inserted or moved.
    #[command(
        after_help = "Example: pseudagg protocol verify --protocol /data/biss/protocol.jsonl --head 3f1c... --outputs /data/biss"
    )]
    Verify {
        /// The head hash noted earlier (printed by this command): detects a cut or edited tail.
        #[arg(long)]
        head: Option<String>,
        /// The outputs' root whose every output (each `manifest.json`) must have its publication
        /// in the protocol, with the same hash (default: the protocol's folder).
        #[arg(long, value_name = "DIR")]
        outputs: Option<PathBuf>,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// Seal a protocol written before it had a key: checks its chain, then appends a `seal`
    /// record with the protocol key's MAC, which ties every earlier record to it. From then on
    /// every command on the protocol needs --protocol-key, and every record is sealed.
    #[command(
        after_help = "Example: pseudagg protocol seal --protocol /data/biss/protocol.jsonl --protocol-key /secure/protocol.key"
    )]
    Seal {
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// Remove records whose retention has ended (end of the calendar year after their year, and
    /// at least 12 months), leaving a checkpoint that keeps the rest verifiable.
    #[command(after_help = "Example: pseudagg protocol purge --protocol /data/biss/protocol.jsonl")]
    Purge {
        /// The day to purge as of, YYYY-MM-DD (default: today). Never after today, never before
        /// the newest record.
        #[arg(long)]
        today: Option<String>,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// Draw the monthly data-protection control sample: a share of the runs recorded in one
    /// calendar month (seed 004: 5 % of the last month's queries, checked by the team leads).
    #[command(
        after_help = "Example: pseudagg protocol sample --protocol /data/biss/protocol.jsonl --written-in 2025-04 --seed 7"
    )]
    Sample {
        /// The calendar month in which the drawn records were written, YYYY-MM (not the data
        /// month the runs were for). (`--month` is its old spelling.)
        #[arg(long = "written-in", alias = "month", value_name = "YYYY-MM")]
        month: String,
        /// Share of records, at least one.
        #[arg(long, default_value_t = 0.05)]
        fraction: f64,
        /// Seed of the draw.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KindArg {
    /// VerBIS extract for the VKB (one row per customer).
    VerbisVkb,
    /// opDs monthly snapshot (one row per person in SGB II).
    OpdsPerson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EncodingArg {
    #[value(name = "utf-8")]
    Utf8,
    #[value(name = "windows-1252")]
    Windows1252,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Pseudonymise a VerBIS extract into one Parquet dataset per RD.
    ///
    /// Reads the extract (CSV or Parquet, by its name), checks every cell against the pipeline's input
    /// schema, keeps the flagged rows, replaces the Kundennummer by its keyed pseudonym for this month,
    /// generalises the birth date, drops every other personal field, and writes
    /// OUT/<pipeline>/<month>/parquet/rd=<RD>/part-*.parquet and manifest.json. The output appears in one
    /// atomic step, replacing an earlier run of the same month; on any problem nothing is written.
    #[command(
        after_help = "Example: pseudagg pseudonymise --pipeline pipelines/vkb.toml --input testdata/verbis-vkb-2025-03.csv --month 2025-03 --key-file /secure/vkb.key --out /data/biss"
    )]
    Pseudonymise {
        /// The pipeline definition, for example pipelines/vkb.toml.
        #[arg(long)]
        pipeline: PathBuf,
        /// The extract: *.csv (separator `;`) or *.parquet.
        #[arg(long)]
        input: PathBuf,
        /// The Datenstand, YYYY-MM. Every row of the extract must hold exactly this month.
        #[arg(long)]
        month: String,
        /// The key file (64 hex characters, mode 0600). Never pass key material itself.
        #[arg(long, env = "PSEUDAGG_KEY_FILE", hide_env_values = true)]
        key_file: PathBuf,
        /// The output root folder.
        #[arg(long)]
        out: PathBuf,
        /// The CSV's character encoding.
        #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
        encoding: EncodingArg,
        /// Replace the key of a month that another key wrote before (a leaked key, say): every
        /// pseudonym of the month changes; recorded in the protocol and the key register
        /// (OUT/key-ids.json). Without it, another key than the month's is refused.
        #[arg(long)]
        new_key: bool,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// Build an aggregated opDs report per gE, RD and Bund, with small-cell suppression.
    ///
    /// Counts the population of the definition per Jobcenter, adds RD and federal totals, suppresses
    /// counts of 1 and 2 and every further cell they could be computed from, proves the protection
    /// with an interval audit (exit code 1 and nothing published if it fails), and writes
    /// OUT/<report>/<month>/{parquet,csv,xlsx}/recipient=<bund|rd-RD|ge-NR>/ for the recipients,
    /// all/ with every published cell once and manifest.json with the audit for the data steward.
    #[command(
        after_help = "Example: pseudagg report --definition pipelines/gefluechtete.toml --input testdata/opds-person-2025-03.csv --month 2025-03 --ge-register testdata/ge-register.csv --out /data/reports"
    )]
    Report {
        /// The report definition, for example pipelines/gefluechtete.toml.
        #[arg(long)]
        definition: PathBuf,
        /// The opDs extract: *.csv or *.parquet.
        #[arg(long)]
        input: PathBuf,
        /// The Datenstand, YYYY-MM: exactly one month.
        #[arg(long)]
        month: String,
        /// The output root folder.
        #[arg(long)]
        out: PathBuf,
        /// The CSV's character encoding.
        #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
        encoding: EncodingArg,
        /// A Traeger's request (TOML): required for a report to a Traeger. Only the request's gEs
        /// are written, to OUT/<report>/requests/<reference>/<month>/.
        #[arg(long, requires = "traeger_register")]
        request: Option<PathBuf>,
        /// With --request: the steward's Traeger register (TOML), which gives each Traeger's area;
        /// a request's gEs outside its requester's registered area are refused.
        #[arg(long, value_name = "FILE", env = "PSEUDAGG_TRAEGER_REGISTER")]
        traeger_register: Option<PathBuf>,
        /// The register of gEs (CSV `ge_nr;rd;ge_name`): every gE of it is in the report, with
        /// zeros where nobody is counted; a gE of the extract outside it is an error. Without
        /// it, the gEs are those on any row of the extract.
        #[arg(long)]
        ge_register: Option<PathBuf>,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// Check a definition, or a batch configuration's pre-flight, without reading any data row.
    ///
    /// With --config: the pre-flight of `pseudagg run` (every definition against its schema, every
    /// input's existence and header row or Parquet schema, gE registers, the key file and its key
    /// id against the month's earlier runs, the protocol, the writable output root); each problem
    /// names its file and configuration key. Without --month, inputs whose path holds {month}
    /// are not checked.
    #[command(
        after_help = "Example: pseudagg check --config pipelines/monthly.toml --month 2025-03"
    )]
    Check {
        /// A pipeline definition.
        #[arg(long, required_unless_present_any = ["definition", "config"])]
        pipeline: Option<PathBuf>,
        /// A report definition.
        #[arg(long, conflicts_with_all = ["pipeline", "config"])]
        definition: Option<PathBuf>,
        /// A batch configuration (pipelines/monthly.toml): its whole pre-flight.
        #[arg(long, conflicts_with = "pipeline")]
        config: Option<PathBuf>,
        /// With --config: the month to check for, YYYY-MM.
        #[arg(long, requires = "config")]
        month: Option<String>,
        /// With --config: the key file; overrides the configuration's `key-file`.
        #[arg(
            long,
            env = "PSEUDAGG_KEY_FILE",
            hide_env_values = true,
            requires = "config"
        )]
        key_file: Option<PathBuf>,
        /// With --config: the run will give --new-key.
        #[arg(long, requires = "config")]
        new_key: bool,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// Write a new random key file (mode 0600) and print its key id. Never overwrites a file.
    #[command(after_help = "Example: pseudagg keygen --out /secure/vkb.key")]
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate a synthetic extract: deterministic for the same options, realistic per the contract.
    #[command(
        after_help = "Example: pseudagg gen-testdata --kind opds-person --rows 550000 --month 2025-03 --out opds.parquet"
    )]
    GenTestdata {
        /// Which extract.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Number of rows.
        #[arg(long)]
        rows: u64,
        /// The Datenstand, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Seed of the random generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// File format; by default from the name of --out. (`--format` is its old spelling.)
        #[arg(long = "file-format", alias = "format", value_enum)]
        format: Option<FormatArg>,
        /// Where to write.
        #[arg(long)]
        out: PathBuf,
        /// The CSV's character encoding.
        #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
        encoding: EncodingArg,
        /// Start a UTF-8 CSV with a byte-order mark.
        #[arg(long)]
        bom: bool,
        /// VerBIS: the share of flagged cases (1.0: every case, the worst case for pseudonymise).
        #[arg(long, default_value_t = 0.12)]
        flagged_share: f64,
    },
    /// Check an output independently of the code that wrote it: exit 0 pass, 1 violation, 2 error.
    ///
    /// DIR is one month of a dataset (OUT/vkb/2025-03) or of a report (OUT/gefluechtete/2025-03).
    /// Checks the manifest (hashes, unlisted files), columns, values (Kundennummer, BG-Nummer,
    /// e-mail, phone, IBAN), pseudonyms, partitions, k-anonymity; for reports the published values,
    /// the interval audit of every scope, the month's released reports together, one month, and
    /// CSV against Parquet. With --month, DIR is an output root and every output of that month in
    /// it is verified. Findings name file, row, column and rule, never the value.
    #[command(
        after_help = "Example: pseudagg verify /data/biss/vkb/2025-03 --input testdata/verbis-vkb-2025-03.csv --key-file /secure/vkb.key --against /data/biss/vkb/2025-02 --format json\n\nExample: pseudagg verify /data/reports --month 2025-03 (every output of the month, the reports together)"
    )]
    Verify {
        /// The output folder of one month (or give it as --dataset DIR, as `sample` takes it);
        /// with --month, the output root.
        #[arg(value_name = "DIR", required_unless_present = "dataset")]
        dir: Option<PathBuf>,
        /// DIR is an output root: verify every output of this month in it (OUT/<name>/<month>
        /// and each request's OUT/<report>/requests/<reference>/<month>), the reports together.
        #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["dataset", "against"])]
        month: Option<String>,
        /// The output folder of one month, as an option.
        #[arg(long, value_name = "DIR", conflicts_with = "dir")]
        dataset: Option<PathBuf>,
        /// The original extract: no sensitive input value may reappear in the output.
        #[arg(long)]
        input: Option<PathBuf>,
        /// The input CSV's character encoding. (`--input-encoding` is its old spelling.)
        #[arg(
            long = "encoding",
            alias = "input-encoding",
            value_name = "ENCODING",
            value_enum,
            default_value_t = EncodingArg::Utf8
        )]
        input_encoding: EncodingArg,
        /// The key file: every pseudonym must recompute from its input row (needs --input).
        #[arg(long, env = "PSEUDAGG_KEY_FILE", hide_env_values = true)]
        key_file: Option<PathBuf>,
        /// Another month's output of the same pipeline: no pseudonym may appear in both, and few
        /// records may match exactly one of its records on the kept attributes.
        #[arg(long)]
        against: Option<PathBuf>,
        /// With --against: the largest share of records that may link one-to-one to the other
        /// month on their kept attributes (default 0.05).
        #[arg(long, value_name = "SHARE", requires = "against", value_parser = share)]
        max_linkable: Option<f64>,
        /// A summary for people, or every finding as JSON for CI.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// Draw the random review sample: at least N cases per RD, reproducible from the seed.
    ///
    /// Writes `rd;pseudonym` (CSV) for the Zentrale's review; all cases of an RD with fewer than N.
    #[command(
        after_help = "Example: pseudagg sample --dataset /data/biss/vkb/2025-03 --per-rd 10 --seed 20250331 --out /data/biss/review-2025-03.csv"
    )]
    Sample {
        /// One month of a pseudonymised dataset, for example OUT/vkb/2025-03. (`--input` is its
        /// old spelling.)
        #[arg(long = "dataset", alias = "input", value_name = "DIR")]
        input: PathBuf,
        /// Cases per RD.
        #[arg(long, default_value_t = 10)]
        per_rd: usize,
        /// Seed of the draw; the same seed draws the same cases.
        #[arg(long)]
        seed: u64,
        /// Where to write the sample (CSV). Never overwrites a file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// The owner's look-up: the customer behind pseudonyms of one month, logged in the protocol.
    ///
    /// After the RD's review the gE or agency that owns a case finds it for the dialogue on the
    /// findings. The pseudonyms of the extract's kept cases are computed again with the month's key;
    /// for each asked pseudonym the customer number, or `not-found`, is written (CSV, mode 0600,
    /// never over an existing file). The protocol records operator, reason and counts, never a
    /// value. At most --max pseudonyms per call; a pseudonym of another month (a `month` column in
    /// the list) is refused.
    #[command(
        after_help = "Example: pseudagg reidentify --pipeline pipelines/vkb.toml --input testdata/verbis-vkb-2025-03.csv --month 2025-03 --key-file /secure/vkb.key --pseudonyms befunde.csv --reason \"Befund RD NRW vom 12.04.\" --out /secure/fall.csv --protocol /data/biss/protocol.jsonl"
    )]
    Reidentify {
        /// The pipeline that wrote the pseudonyms, for example pipelines/vkb.toml.
        #[arg(long)]
        pipeline: PathBuf,
        /// The month's extract the output was made from: *.csv or *.parquet.
        #[arg(long)]
        input: PathBuf,
        /// The Datenstand, YYYY-MM, of the extract and the pseudonyms.
        #[arg(long)]
        month: String,
        /// The key file the output was made with (mode 0600).
        #[arg(long, env = "PSEUDAGG_KEY_FILE", hide_env_values = true)]
        key_file: PathBuf,
        /// The pseudonyms asked for: a `;`-separated CSV with a `pseudonym` column (the review
        /// sample is one) and optionally a `month` column.
        #[arg(long)]
        pseudonyms: PathBuf,
        /// Why the cases are looked up (the review's finding, the dialogue); goes to the protocol.
        #[arg(long)]
        reason: String,
        /// Where to write the answer (CSV `pseudonym;column;value;status`). Never overwrites a file.
        #[arg(long)]
        out: PathBuf,
        /// The most pseudonyms one call may look up.
        #[arg(long, default_value_t = 50)]
        max: usize,
        /// The CSV's character encoding.
        #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
        encoding: EncodingArg,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// The run protocol: check its chain, purge expired records, draw the monthly control sample.
    #[command(
        after_help = "Example: pseudagg protocol verify --protocol /data/biss/protocol.jsonl --protocol-key /secure/protocol.key"
    )]
    Protocol {
        #[command(subcommand)]
        action: ProtocolAction,
    },
    /// Run a month end to end for a scheduler: pseudonymise, reports, verify, review sample,
    /// protocol. Outputs are published only after every step passed; exit 1 or 2 names the step.
    #[command(
        after_help = "Example: pseudagg run --config pipelines/monthly.toml --month 2025-03 --key-file /secure/vkb.key --log-format json"
    )]
    Run {
        /// The batch configuration, for example pipelines/monthly.toml.
        #[arg(long)]
        config: PathBuf,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// The key file; overrides the configuration's `key-file`.
        #[arg(long, env = "PSEUDAGG_KEY_FILE", hide_env_values = true)]
        key_file: Option<PathBuf>,
        /// Only the pre-flight (as `check --config`): print what was checked and what a run
        /// would do; reads no data row and writes nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replace the key of a month that another key wrote before (a leaked key, say): every
        /// pseudonym of the month changes; recorded in the protocol and the key register.
        #[arg(long)]
        new_key: bool,
        #[command(flatten)]
        protocol_args: ProtocolArgs,
    },
    /// Run the VKB pipeline on the embedded sample with a throw-away key, and summarise.
    #[command(after_help = "Example: pseudagg demo --out demo-output")]
    Demo {
        /// The output root folder.
        #[arg(long, default_value = "demo-output")]
        out: PathBuf,
    },
    /// Print a shell completion script on stdout.
    #[command(after_help = "Example: pseudagg completions bash > /etc/bash_completion.d/pseudagg")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout.
    #[command(after_help = "Example: pseudagg man > /usr/local/share/man/man1/pseudagg.1")]
    Man,
}

impl Command {
    /// The protocol options the command was given (none for a command that keeps no protocol).
    #[must_use]
    pub fn protocol_args(&self) -> ProtocolArgs {
        match self {
            Self::Pseudonymise { protocol_args, .. }
            | Self::Report { protocol_args, .. }
            | Self::Check { protocol_args, .. }
            | Self::Verify { protocol_args, .. }
            | Self::Sample { protocol_args, .. }
            | Self::Reidentify { protocol_args, .. }
            | Self::Run { protocol_args, .. }
            | Self::Protocol {
                action:
                    ProtocolAction::Verify { protocol_args, .. }
                    | ProtocolAction::Seal { protocol_args }
                    | ProtocolAction::Purge { protocol_args, .. }
                    | ProtocolAction::Sample { protocol_args, .. },
            } => protocol_args.clone(),
            Self::Keygen { .. }
            | Self::GenTestdata { .. }
            | Self::Demo { .. }
            | Self::Completions { .. }
            | Self::Man => ProtocolArgs::default(),
        }
    }
}

/// A share from 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("a share from 0 to 1, for example 0.05".into()),
    }
}

//! pyarrow, pandas, polars and DuckDB read every output with the README's one-call recipes (the
//! ```python blocks of *Reading the outputs*, run as written), and
//! get exactly the rows, the sums and the keys that the manifests give: nothing twice, nothing
//! missing, no column that clashes with a folder key.
//!
//! The readers are real Python clients at pinned versions (`tests/clients/requirements.txt`).
//! `.ci/run` installs them into a throwaway venv and names its interpreter in `PSEUDAGG_PYTHON`;
//! without it, the first test makes such a venv below the cargo target folder (once; it needs
//! `python3` and PyPI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{SAMPLE_VKB, key_file, pseudonymise_vkb, report_of_three_rds};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// The interpreter with the pinned clients.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var_os("PSEUDAGG_PYTHON") {
            return PathBuf::from(p);
        }
        let requirements = Path::new(CLIENTS).join("requirements.txt");
        let pins = std::fs::read_to_string(&requirements).unwrap();
        let tag = pseudagg_io::sha256_hex(pins.as_bytes());
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("client-venv-{}", &tag[..12]));
        let python = venv.join("bin/python");
        if !venv.join("ready").exists() {
            let _ = std::fs::remove_dir_all(&venv);
            let run = |cmd: &mut Command| {
                let out = cmd.output().expect(
                    "python3 runs (or set PSEUDAGG_PYTHON to a Python with tests/clients/requirements.txt installed)",
                );
                assert!(
                    out.status.success(),
                    "setting up the client venv failed (set PSEUDAGG_PYTHON to a Python with tests/clients/requirements.txt installed):\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run(Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements));
            std::fs::write(venv.join("ready"), "").unwrap();
        }
        python
    })
}

/// An output root with the sample's VKB month and a report of three RDs, written once.
fn outputs() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("clients-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let key = key_file(&dir, [7; 32]);
        let r = pseudonymise_vkb(Path::new(SAMPLE_VKB), "2025-03", &key, &out, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        report_of_three_rds(&dir, &out);
        out
    })
}

fn reads_every_output(client: &str) {
    let out = outputs();
    let result = Command::new(python())
        .arg(Path::new(CLIENTS).join("read_outputs.py"))
        .arg(client)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .arg(out)
        .output()
        .expect("the client script runs");
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{client} read the outputs wrongly with the README's recipe:\n{stdout}{}",
        String::from_utf8_lossy(&result.stderr)
    );
    // Every check of the script ran: 5 on the dataset, 6 on the steward's files, 2 on the
    // recipients and the Bund, 3 per recipient (the Bund, 3 RDs and their gEs), 2 on one RD's
    // folder alone.
    let passed: usize = stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("gefluechtete/2025-03/manifest.json")).unwrap(),
    )
    .unwrap();
    let scopes = manifest["scopes"].as_array().unwrap().len();
    assert_eq!(passed, 5 + 6 + 2 + 3 * scopes + 2, "{stdout}");
}

#[test]
fn pyarrow_reads_every_output() {
    reads_every_output("pyarrow");
}

#[test]
fn pandas_reads_every_output() {
    reads_every_output("pandas");
}

#[test]
fn polars_reads_every_output() {
    reads_every_output("polars");
}

#[test]
fn duckdb_reads_every_output() {
    reads_every_output("duckdb");
}

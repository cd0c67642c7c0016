//! Crash safety: `pseudonymise`, `report` and `run` killed with SIGKILL at random moments, 50 times
//! each. Afterwards the target holds the complete earlier output or the complete new one, never a
//! mix; `verify` passes on it; the protocol's chain holds; and the next run cleans up what the
//! killed ones left.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Extract, SAMPLE_OPDS, SAMPLE_VKB, key_file, tree};

const KILLS: usize = 50;

/// A small deterministic generator (xorshift), so that a failure can be replayed.
struct Moments(u64);

impl Moments {
    fn next_below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.0 % nanos)
    }
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pseudagg"));
    c.args(args)
        .env("PSEUDAGG_LOG", "warn")
        .env_remove("PSEUDAGG_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Runs `args` to the end and returns how long that took.
fn full_run(args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = command(args).status().unwrap();
    assert!(status.success(), "{args:?}");
    started.elapsed()
}

/// Starts `args`, kills it with SIGKILL after a random moment within `window`, and waits for it.
fn kill_at_random(args: &[&str], moments: &mut Moments, window: Duration) -> bool {
    let mut child = command(args).spawn().unwrap();
    std::thread::sleep(moments.next_below(window));
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
    killed
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// `pseudagg verify` on `dir`, with a throw-away protocol.
fn verifies(dir: &Path, scratch: &Path) -> bool {
    Command::new(env!("CARGO_BIN_EXE_pseudagg"))
        .args(["verify", dir.to_str().unwrap(), "--protocol"])
        .arg(scratch.join("verify-protocol.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn chain_holds(protocol: &Path) -> bool {
    Command::new(env!("CARGO_BIN_EXE_pseudagg"))
        .args([
            "protocol",
            "verify",
            "--protocol",
            protocol.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn leftovers(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_keys()
        .filter(|k| k.contains("staging") || k.contains(".blanking") || k.contains(".purging"))
        .collect()
}

#[test]
fn pseudonymise_killed_at_random_leaves_the_old_or_the_new_dataset() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["old", "new"] {
        fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let old_key = key_file(&dir.path().join("old"), [31; 32]);
    let new_key = key_file(&dir.path().join("new"), [32; 32]);
    let out = dir.path().join("out");
    let args = |key: &PathBuf| -> Vec<String> {
        [
            "pseudonymise",
            "--pipeline",
            crate::common::VKB_PIPELINE,
            "--input",
            SAMPLE_VKB,
            "--month",
            "2025-03",
            "--key-file",
            key.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            // The two keys take turns on purpose, to tell the old dataset from the new one.
            "--new-key",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let old: Vec<String> = args(&old_key);
    let new: Vec<String> = args(&new_key);
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let new: Vec<&str> = new.iter().map(String::as_str).collect();
    let target = out.join("vkb/2025-03");
    let window = full_run(&new).mul_f64(1.3);
    let new_id = manifest(&target)["key_id"].as_str().unwrap().to_owned();
    full_run(&old);
    let old_id = manifest(&target)["key_id"].as_str().unwrap().to_owned();
    assert_ne!(old_id, new_id);

    let mut moments = Moments(0x5eed_0001);
    let mut interrupted = 0;
    for i in 0..KILLS {
        interrupted += usize::from(kill_at_random(&new, &mut moments, window));
        let id = manifest(&target)["key_id"].as_str().unwrap().to_owned();
        assert!(
            id == old_id || id == new_id,
            "kill {i}: a manifest of neither run"
        );
        assert!(
            verifies(&target, dir.path()),
            "kill {i}: the dataset in place does not verify"
        );
        assert!(
            chain_holds(&out.join("protocol.jsonl")),
            "kill {i}: the protocol broke"
        );
    }
    assert!(
        interrupted >= KILLS / 5,
        "only {interrupted} of {KILLS} runs were interrupted"
    );
    full_run(&new);
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    assert_eq!(manifest(&target)["key_id"], new_id.as_str());
}

#[test]
fn report_killed_at_random_leaves_the_old_or_the_new_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = Extract::read(SAMPLE_OPDS);
    let rd = input.col("rd");
    input
        .rows
        .retain(|r| ["SAC", "SAT"].contains(&r[rd].as_str()));
    let old_input = input.write(&dir.path().join("old.csv"));
    input.rows.truncate(input.rows.len() - 20);
    let new_input = input.write(&dir.path().join("new.csv"));
    let out = dir.path().join("out");
    let definition = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/gefluechtete.toml"
    );
    let args = |input: &Path| -> Vec<String> {
        [
            "report",
            "--definition",
            definition,
            "--input",
            input.to_str().unwrap(),
            "--month",
            "2025-03",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let (old, new) = (args(&old_input), args(&new_input));
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let new: Vec<&str> = new.iter().map(String::as_str).collect();
    let target = out.join("gefluechtete/2025-03");
    let window = full_run(&new).mul_f64(1.3);
    let new_sha = manifest(&target)["input"]["sha256"].clone();
    full_run(&old);
    let old_sha = manifest(&target)["input"]["sha256"].clone();
    assert_ne!(old_sha, new_sha);

    let mut moments = Moments(0x5eed_0002);
    let mut interrupted = 0;
    for i in 0..KILLS {
        interrupted += usize::from(kill_at_random(&new, &mut moments, window));
        let sha = manifest(&target)["input"]["sha256"].clone();
        assert!(
            sha == old_sha || sha == new_sha,
            "kill {i}: a manifest of neither run"
        );
        assert!(
            verifies(&target, dir.path()),
            "kill {i}: the report in place does not verify"
        );
    }
    assert!(
        interrupted >= KILLS / 5,
        "only {interrupted} of {KILLS} runs were interrupted"
    );
    full_run(&new);
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}

#[test]
fn run_killed_at_random_publishes_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [33; 32]);
    let mut input = Extract::read(SAMPLE_OPDS);
    let rd = input.col("rd");
    input.rows.retain(|r| r[rd] == "SAC");
    let opds = input.write(&dir.path().join("opds.csv"));
    let pipelines = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");
    let config = dir.path().join("monthly.toml");
    fs::write(
        &config,
        format!(
            "out = \"out\"\n[[pseudonymise]]\npipeline = \"{pipelines}/vkb.toml\"\ninput = \"{SAMPLE_VKB}\"\n\
             [[report]]\ndefinition = \"{pipelines}/gefluechtete.toml\"\ninput = \"{}\"\n\
             [review-sample]\nper-rd = 10\nseed = 1\n",
            opds.display()
        ),
    )
    .unwrap();
    let args = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--month",
        "2025-03",
        "--key-file",
        key.to_str().unwrap(),
    ];
    let out = dir.path().join("out");
    let published = |out: &Path| -> BTreeMap<String, Vec<u8>> {
        tree(out)
            .into_iter()
            .filter(|(k, _)| {
                // Staging folders a kill left behind (hidden, cleaned by the next run) are no output.
                !k.starts_with("protocol.jsonl") && !k.split('/').any(|c| c.starts_with('.'))
            })
            .collect()
    };
    let window = full_run(&args).mul_f64(1.3);
    let complete = published(&out);
    fs::remove_dir_all(&out).unwrap();

    let mut moments = Moments(0x5eed_0003);
    let mut interrupted = 0;
    for i in 0..KILLS {
        interrupted += usize::from(kill_at_random(&args, &mut moments, window));
        let now = published(&out);
        // Outputs appear one by one, each whole: every file present is the complete run's.
        for (name, bytes) in &now {
            assert!(
                complete.get(name) == Some(bytes),
                "kill {i}: {name} is partial or foreign"
            );
        }
        let folders: Vec<&String> = now
            .keys()
            // The output folders' manifests (a recipient folder's `_manifest.json` is part of its report).
            .filter(|k| k.ends_with("/manifest.json") || k.as_str() == "manifest.json")
            .collect();
        for m in folders {
            let dir_of = out.join(m.trim_end_matches("manifest.json"));
            assert!(
                verifies(&dir_of, dir.path()),
                "kill {i}: {m} does not verify"
            );
        }
        if out.join("protocol.jsonl").exists() {
            assert!(
                chain_holds(&out.join("protocol.jsonl")),
                "kill {i}: the protocol broke"
            );
        }
    }
    assert!(
        interrupted >= KILLS / 5,
        "only {interrupted} of {KILLS} runs were interrupted"
    );
    full_run(&args);
    assert_eq!(published(&out), complete);
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}

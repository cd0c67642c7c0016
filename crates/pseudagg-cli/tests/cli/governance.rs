//! The rules around the outputs at the command line: the protocol, requests of the Traeger, the
//! review sample, and the monthly batch.

#![allow(clippy::many_single_char_names, clippy::too_many_lines)] // scenario tests, step by step

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::{Extract, SAMPLE_OPDS, SAMPLE_VKB, key_file, pseudagg, tree};

const PIPELINES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");

/// The opDs sample cut to three RDs, so that reports stay quick; written once per process.
fn small_opds() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("governance-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut input = Extract::read(SAMPLE_OPDS);
        let rd = input.col("rd");
        input
            .rows
            .retain(|r| ["SAC", "SAT", "BB"].contains(&r[rd].as_str()));
        input.write(&dir.join("opds-person-2025-03.csv"))
    })
}

fn records(protocol: &Path) -> Vec<Value> {
    fs::read_to_string(protocol)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn protocol_verify(protocol: &Path, extra: &[&str]) -> crate::common::Output {
    let mut args = vec![
        "protocol",
        "verify",
        "--protocol",
        protocol.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pseudagg(&args)
}

/// `protocol purge` as of 2099: every record has expired.
/// Moves every record of an unsealed protocol `years` back in time and recomputes its hash
/// chain, as a protocol of long ago would be; then purges it as of today.
fn purge_aged(protocol: &Path, years: i32) -> crate::common::Output {
    use sha2::Digest as _;
    let text = fs::read_to_string(protocol).unwrap();
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_owned();
        let at = line.find("\"time\":\"").unwrap() + 8;
        let year: i32 = line[at..at + 4].parse().unwrap();
        line.replace_range(at..at + 4, &(year - years).to_string());
        if !line.contains("\"kind\":\"checkpoint\"") {
            let at = line.find("\"prev\":\"").unwrap() + 8;
            line.replace_range(at..at + 64, &prev);
        }
        prev = hex::encode(sha2::Sha256::digest(line.as_bytes()));
        out.push_str(&line);
        out.push('\n');
    }
    fs::write(protocol, out).unwrap();
    pseudagg(&[
        "protocol",
        "purge",
        "--protocol",
        protocol.to_str().unwrap(),
    ])
}

/// Issue 17 §5: a purge as of a day ahead of today deleted records written minutes earlier.
#[test]
fn a_purge_ahead_of_today_or_before_the_newest_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [29; 32]);
    let out = dir.path().join("out");
    assert_eq!(pseudonymise_into(&out, &key).code, 0);
    let protocol = out.join("protocol.jsonl");
    let before = fs::read_to_string(&protocol).unwrap();
    let purge = |today: &str| {
        pseudagg(&[
            "protocol",
            "purge",
            "--protocol",
            protocol.to_str().unwrap(),
            "--today",
            today,
        ])
    };
    let r = purge("2099-01-01");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is after today"), "{}", r.stderr);
    let r = purge("2001-01-01");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("before the protocol's newest record"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_to_string(&protocol).unwrap(),
        before,
        "nothing removed"
    );
    // As of today nothing of today's records is past its retention.
    let r = pseudagg(&[
        "protocol",
        "purge",
        "--protocol",
        protocol.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("0 record(s)"), "{}", r.stdout);
    assert_eq!(records(&protocol).len(), records_of(&before) + 1);
}

fn records_of(text: &str) -> usize {
    text.lines().count()
}

#[test]
fn every_command_on_data_is_in_the_protocol_without_data_and_tampering_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [21; 32]);
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let k = key.to_str().unwrap();
    let vkb = format!("{PIPELINES}/vkb.toml");
    let args = [
        "--pipeline",
        &vkb,
        "--input",
        SAMPLE_VKB,
        "--month",
        "2025-03",
        "--key-file",
        k,
        "--out",
        o,
    ];
    let mut pseudonymise = vec!["pseudonymise", "--operator", "steward-a"];
    pseudonymise.extend(args);
    assert_eq!(pseudagg(&pseudonymise).code, 0);
    assert_eq!(pseudagg(&["verify", &format!("{o}/vkb/2025-03")]).code, 0);
    // A failed run is recorded too.
    let r = pseudagg(&[
        "pseudonymise",
        "--pipeline",
        &vkb,
        "--input",
        SAMPLE_VKB,
        "--month",
        "2025-04",
        "--key-file",
        k,
        "--out",
        o,
    ]);
    assert_eq!(r.code, 2);

    let protocol = out.join("protocol.jsonl");
    let recs = records(&protocol);
    // The publication is announced before the output goes live, and the run's record names it.
    assert_eq!(recs[0]["kind"], "publish");
    assert_eq!(recs[0]["command"], "pseudonymise");
    assert_eq!(recs[1]["details"]["publish_seq"], recs[0]["seq"]);
    assert_eq!(recs[1]["details"]["published"], true);
    let commands: Vec<(&str, &str)> = recs
        .iter()
        .filter(|r| r["kind"] == "run")
        .map(|r| {
            (
                r["command"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        commands,
        [
            ("pseudonymise", "ok"),
            ("verify", "ok"),
            ("pseudonymise", "error")
        ]
    );
    let first = recs.iter().find(|r| r["kind"] == "run").unwrap();
    assert_eq!(first["operator"], "steward-a");
    assert_eq!(first["subject"], "vkb");
    assert_eq!(first["month"], "2025-03");
    assert_eq!(first["rows_in"], 2000);
    assert_eq!(first["key_id"].as_str().unwrap().len(), 16);
    assert_eq!(first["inputs"][0]["path"], "verbis-vkb-2025-03.csv");
    assert!(
        first["outputs"].as_array().unwrap().len() >= 11,
        "manifest and the 10 RD files"
    );
    // The announcement opens the chain; the record links to it.
    assert_eq!(recs[0]["prev"].as_str().unwrap(), "0".repeat(64));
    assert_ne!(first["prev"].as_str().unwrap(), "0".repeat(64));

    // No personal value, no key.
    let text = fs::read_to_string(&protocol).unwrap();
    let input = Extract::sample_vkb();
    for col in ["kundennummer", "nachname", "email", "fachkraft_name"] {
        for row in 0..50 {
            let v = input.get(row, col);
            if v.len() >= 4 {
                assert!(!text.contains(v), "{col} of row {row} is in the protocol");
            }
        }
    }
    let key_hex = fs::read_to_string(&key).unwrap();
    assert!(!text.contains(key_hex.trim()), "the key");

    let ok = protocol_verify(&protocol, &[]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let head = ok
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap()
        .to_owned();
    assert_eq!(protocol_verify(&protocol, &["--head", &head]).code, 0);

    // Someone edits the second record: the third no longer links to it.
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let edited = lines[1].replace("\"ok\"", "\"check-failed\"");
    assert_ne!(edited, lines[1]);
    fs::write(&protocol, format!("{}\n{edited}\n{}\n", lines[0], lines[2])).unwrap();
    let r = protocol_verify(&protocol, &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("line 3: does not link to line 2"),
        "{}",
        r.stdout
    );

    // Cutting the last record is invisible to the chain, but not to the noted head.
    fs::write(&protocol, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    assert_eq!(protocol_verify(&protocol, &[]).code, 0);
    let r = protocol_verify(&protocol, &["--head", &head]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("head differs"), "{}", r.stderr);

    // Records of three years ago are past their retention: purged, they leave a verifiable
    // checkpoint.
    let r = purge_aged(&protocol, 3);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("2 record(s)"), "{}", r.stdout);
    let kinds: Vec<String> = records(&protocol)
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["checkpoint", "purge"]);
    assert_eq!(protocol_verify(&protocol, &[]).code, 0);

    // The control sample of the records written this month, recorded; `--month` is the old
    // spelling of `--written-in` and still works.
    for spelling in ["--written-in", "--month"] {
        let r = pseudagg(&[
            "protocol",
            "sample",
            "--protocol",
            protocol.to_str().unwrap(),
            spelling,
            &chrono_month(),
            "--seed",
            "3",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let last = records(&protocol).pop().unwrap();
        assert_eq!(last["kind"], "control-sample");
        assert_eq!(last["details"]["written_in"], chrono_month().as_str());
        assert!(last.get("month").is_none(), "no data month: {last}");
    }
}

/// The current month, as the records are stamped with the time they are written.
fn chrono_month() -> String {
    let out = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const REQUEST: &str = r#"
reference = "SAC-86101-2025-001"
requester = "Stadt Leipzig, kommunaler Traeger des Jobcenters Leipzig"
requester-id = "stadt-leipzig"
purpose = "Steuerung der Integrationskurse"
legal-basis = "§ 44b Abs. 3 SGB II i.V.m. § 6 Abs. 1 Nr. 2 SGB II"
use-of-data = "Abstimmung des Kursangebots"
data = "aggregated"
alternative-sources = "Statistik der BA"
alternative-sources-result = "nicht auf gE-Ebene"
month = "2025-03"
scope = ["86101"]

[data-protection-review]
date = "2025-04-02"
reviewer = "DSB"
"#;

fn report_with_request(dir: &Path, request: &str) -> crate::common::Output {
    let register = format!("{PIPELINES}/traeger-register.toml");
    report_with_request_and(dir, request, &["--traeger-register", &register])
}

/// A report on `request`, with `extra` options.
fn report_with_request_and(dir: &Path, request: &str, extra: &[&str]) -> crate::common::Output {
    let path = dir.join("request.toml");
    fs::write(&path, request).unwrap();
    let definition = format!("{PIPELINES}/gefluechtete.toml");
    let (input, out) = (small_opds(), dir.join("out"));
    let mut args = vec![
        "report",
        "--definition",
        &definition,
        "--input",
        input.to_str().unwrap(),
        "--month",
        "2025-03",
        "--out",
        out.to_str().unwrap(),
        "--request",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pseudagg(&args)
}

#[test]
fn a_complete_request_gets_only_its_ge_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let r = report_with_request(dir.path(), REQUEST);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let target = dir
        .path()
        .join("out/gefluechtete/requests/SAC-86101-2025-001/2025-03");
    let files: Vec<String> = tree(&target).into_keys().collect();
    assert!(
        files.iter().all(
            |f| ["manifest.json", "release.json", "manifests/ge-86101.json"].contains(&f.as_str())
                || f.contains("/recipient=ge-86101/")
                || f.starts_with("all/")
        ),
        "{files:?}"
    );
    // What the Traeger receives: its three tables and a manifest of hashes, month, definition
    // and scope. No audit (issue 18: the intervals gave true values away). Beside them the
    // steward's manifest, release record and file of all cells (here the gE's two tables again).
    assert_eq!(files.len(), 8, "{files:?}");
    // The steward's release record beside it names only what the Traeger received.
    let release: Value =
        serde_json::from_slice(&fs::read(target.join("release.json")).unwrap()).unwrap();
    let areas: Vec<&Value> = release["areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["area"])
        .collect();
    assert_eq!(areas, [&Value::from("ge=86101")]);
    assert_eq!(release["request"], "SAC-86101-2025-001");
    let own: Value =
        serde_json::from_slice(&fs::read(target.join("manifests/ge-86101.json")).unwrap()).unwrap();
    let keys: Vec<&String> = own.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "files",
            "kind",
            "manifest_version",
            "month",
            "report",
            "report_sha256",
            "request",
            "scope",
            "tool"
        ]
    );
    assert_eq!(own["scope"], "ge-86101");
    assert_eq!(own["files"].as_array().unwrap().len(), 3);
    let m: Value =
        serde_json::from_slice(&fs::read(target.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["request"], "SAC-86101-2025-001");
    assert_eq!(m["scopes"], serde_json::json!(["ge-86101"]));
    assert!(
        m["audit"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["ge_nr"] == "86101")
    );
    assert!(
        !dir.path().join("out/gefluechtete/2025-03").exists(),
        "no full report"
    );
    let recs = records(&dir.path().join("out/protocol.jsonl"));
    assert_eq!(recs[0]["request"], "SAC-86101-2025-001");
    // And what was sent passes verify.
    assert_eq!(pseudagg(&["verify", target.to_str().unwrap()]).code, 0);
}

#[test]
fn incomplete_or_inadmissible_requests_are_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let incomplete: String = REQUEST
        .lines()
        .filter(|l| {
            !l.starts_with("purpose") && !l.starts_with("legal-basis") && !l.starts_with("reviewer")
        })
        .fold(String::new(), |mut acc, l| {
            let _ = writeln!(acc, "{l}");
            acc
        });
    let r = report_with_request(dir.path(), &incomplete);
    assert_eq!(r.code, 2);
    for key in [
        "`purpose`",
        "`legal-basis`",
        "`data-protection-review.reviewer`",
    ] {
        assert!(r.stderr.contains(key), "{key}: {}", r.stderr);
    }
    assert!(r.stderr.contains("3 problems"), "{}", r.stderr);

    let outside = REQUEST.replace("scope = [\"86101\"]", "scope = [\"86101\", \"81101\"]");
    let r = report_with_request(dir.path(), &outside);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("outside the requester's area in the Traeger register (81101)"),
        "{}",
        r.stderr
    );

    // Issue 17 §5: a requester that declares another body's gE as its own area gets nothing
    // (on the old main, `requester-ges = ["86101", "86102"]` with that scope was answered).
    let self_declared = REQUEST
        .replace(
            "requester-id = \"stadt-leipzig\"",
            "requester-id = \"stadt-leipzig\"\nrequester-ges = [\"86101\", \"86102\"]",
        )
        .replace("scope = [\"86101\"]", "scope = [\"86102\"]");
    let r = report_with_request(dir.path(), &self_declared);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`requester-ges`: claims 1 gE(s)"),
        "{}",
        r.stderr
    );
    let unknown = REQUEST.replace("stadt-leipzig", "stadt-halle");
    let r = report_with_request(dir.path(), &unknown);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not in the Traeger register"),
        "{}",
        r.stderr
    );
    // And without the register, no request is answered at all.
    let r = report_with_request_and(dir.path(), REQUEST, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--traeger-register"), "{}", r.stderr);

    let individual = REQUEST.replace("data = \"aggregated\"", "data = \"individual\"");
    let r = report_with_request(dir.path(), &individual);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("individual data is refused"),
        "{}",
        r.stderr
    );

    let months = REQUEST.replace("month = \"2025-03\"", "month = [\"2025-02\", \"2025-03\"]");
    let r = report_with_request(dir.path(), &months);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("one request is one month"),
        "{}",
        r.stderr
    );
    assert!(
        !dir.path().join("out/gefluechtete").exists(),
        "nothing written"
    );
}

fn dataset(dir: &Path) -> PathBuf {
    let key = key_file(dir, [22; 32]);
    let out = dir.join("out");
    let r = crate::common::pseudonymise_vkb(Path::new(SAMPLE_VKB), "2025-03", &key, &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    out.join("vkb/2025-03")
}

fn sample(input: &Path, per_rd: &str, seed: &str, out: &Path) -> crate::common::Output {
    pseudagg(&[
        "sample",
        "--input",
        input.to_str().unwrap(),
        "--per-rd",
        per_rd,
        "--seed",
        seed,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn the_review_sample_has_its_minimum_per_rd_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(dir.path());
    let a = dir.path().join("a.csv");
    let r = sample(&d, "15", "42", &a);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = fs::read_to_string(&a).unwrap();
    let mut per_rd: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let (rd, p) = line.split_once(';').unwrap();
        assert_eq!(p.len(), 64);
        *per_rd.entry(rd.to_owned()).or_default() += 1;
    }
    let m: Value = serde_json::from_slice(&fs::read(d.join("manifest.json")).unwrap()).unwrap();
    for (rd, c) in m["partitions"].as_object().unwrap() {
        let available = c["rows_out"].as_u64().unwrap() as usize;
        assert_eq!(
            per_rd.get(rd).copied().unwrap_or(0),
            available.min(15),
            "rd={rd}"
        );
    }
    assert!(
        r.stdout.contains("all cases of"),
        "SAC has 14 cases: {}",
        r.stdout
    );
    assert_eq!(
        text.lines().next(),
        Some("rd;pseudonym"),
        "pseudonyms and RD only"
    );

    let b = dir.path().join("b.csv");
    assert_eq!(sample(&d, "15", "42", &b).code, 0);
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&b).unwrap(),
        "same seed, same draw"
    );
    let c = dir.path().join("c.csv");
    assert_eq!(sample(&d, "15", "43", &c).code, 0);
    assert_ne!(fs::read(&a).unwrap(), fs::read(&c).unwrap());
    let r = sample(&d, "15", "42", &a);
    assert_eq!(r.code, 2, "an existing file is never overwritten");
    let recs = records(&dir.path().join("out/protocol.jsonl"));
    let samples: Vec<&Value> = recs.iter().filter(|r| r["command"] == "sample").collect();
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[0]["details"]["seed"], 42);
    assert_eq!(samples[3]["outcome"], "error");
}

fn batch_config(dir: &Path, opds: &Path) -> PathBuf {
    let config = dir.join("monthly.toml");
    fs::write(
        &config,
        format!(
            r#"out = "out"
[[pseudonymise]]
pipeline = "{PIPELINES}/vkb.toml"
input = "{vkb}"
[[report]]
definition = "{PIPELINES}/gefluechtete.toml"
input = "{opds}"
[review-sample]
per-rd = 10
seed = 7
"#,
            vkb = SAMPLE_VKB.replace("2025-03", "{month}"),
            opds = opds.display()
        ),
    )
    .unwrap();
    config
}

fn run_batch(config: &Path, key: &Path) -> crate::common::Output {
    run_batch_with(config, key, &["--log-format", "json"], &[])
}

/// `run` of March with `extra` options and environment.
fn run_batch_with(
    config: &Path,
    key: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> crate::common::Output {
    let mut args = vec![
        "run",
        "--config",
        config.to_str().unwrap(),
        "--month",
        "2025-03",
        "--key-file",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    crate::common::pseudagg_env(&args, env)
}

/// The published outputs, without the protocol and lock files.
fn published(out: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(out)
        .into_iter()
        .filter(|(k, _)| {
            !k.starts_with("protocol.jsonl") && Path::new(k).extension().is_none_or(|e| e != "lock")
        })
        .collect()
}

#[test]
fn the_monthly_batch_runs_every_step_and_a_rerun_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [23; 32]);
    let config = batch_config(dir.path(), small_opds());
    let r = run_batch(&config, &key);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for line in r.stderr.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    let out = dir.path().join("out");
    let first = published(&out);
    assert!(first.contains_key("vkb/2025-03/manifest.json"));
    assert!(first.contains_key("gefluechtete/2025-03/manifest.json"));
    assert!(first.contains_key("review-samples/vkb-2025-03.csv"));
    assert!(
        !first.keys().any(|k| k.contains("staging")),
        "{:?}",
        first.keys()
    );
    let recs = records(&out.join("protocol.jsonl"));
    // The batch announces everything it publishes before any of it goes live.
    assert_eq!(recs[0]["kind"], "publish");
    assert_eq!(recs[0]["outputs"].as_array().unwrap().len(), 3);
    assert_eq!(
        recs.last().unwrap()["details"]["publish_seq"],
        recs[0]["seq"]
    );
    let steps: Vec<String> = recs
        .iter()
        .filter(|r| r["kind"] == "run")
        .map(|r| {
            format!(
                "{} {}",
                r["command"].as_str().unwrap(),
                r["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "pseudonymise ok",
            "verify ok",
            "report ok",
            "verify ok",
            "sample ok",
            "run ok"
        ]
    );

    // Issue 17 §3: the scheduler gets the run's summary as JSON on stdout and as one final JSON
    // event, with each step's counts, and the protocol's head as `protocol verify` prints it.
    let summary: Value = serde_json::from_str(&r.stdout).expect("stdout is the JSON summary");
    let verified = protocol_verify(&out.join("protocol.jsonl"), &[]);
    assert!(
        verified
            .stdout
            .contains(summary["protocol_head"].as_str().unwrap()),
        "{}\n{summary}",
        verified.stdout
    );
    assert_eq!(summary["outcome"], "ok");
    assert_eq!(summary["protocol_record"], recs.last().unwrap()["seq"]);
    let summary_steps = summary["steps"].as_array().unwrap();
    assert_eq!(summary_steps.len(), 5);
    let pseudonymise = &summary_steps[0];
    let manifest: Value = serde_json::from_slice(&first["vkb/2025-03/manifest.json"]).unwrap();
    assert_eq!(pseudonymise["rows_in"], manifest["rows_in"]);
    let blanked: u64 = manifest["k_anonymity"]["partitions"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["values_blanked"].as_u64().unwrap())
        .sum();
    assert_eq!(pseudonymise["values_blanked"], blanked);
    let report = &summary_steps[2];
    let manifest: Value =
        serde_json::from_slice(&first["gefluechtete/2025-03/manifest.json"]).unwrap();
    let s = &manifest["suppression"];
    assert_eq!(report["cells"], s["cells"]);
    assert_eq!(
        report["suppressed"].as_u64().unwrap(),
        s["primary"].as_u64().unwrap() + s["secondary"].as_u64().unwrap()
    );
    let last_event: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last_event["message"], "run summary", "{last_event}");
    assert_eq!(last_event["protocol_head"], summary["protocol_head"]);

    let r = run_batch(&config, &key);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        published(&out),
        first,
        "a rerun of the month gives the same bytes"
    );
    assert_eq!(protocol_verify(&out.join("protocol.jsonl"), &[]).code, 0);

    // For people: a table of the steps; at the default level no span's close line.
    let r = run_batch_with(&config, &key, &[], &[("PSEUDAGG_LOG", "info")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("close"), "{}", r.stderr);
    for part in [
        "rows in",
        "suppressed",
        "blanked",
        "report gefluechtete",
        "protocol ",
        "head ",
    ] {
        assert!(r.stdout.contains(part), "{part}: {}", r.stdout);
    }
}

#[test]
fn a_second_run_of_the_same_month_is_refused_while_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [24; 32]);
    let config = batch_config(dir.path(), small_opds());
    let out = dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    // Hold the month's lock as a running batch would.
    let lock = fs::File::create(out.join(".pseudagg-run-2025-03.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let r = run_batch(&config, &key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("another run of 2025-03 is in progress"),
        "{}",
        r.stderr
    );
    assert!(!out.join("vkb").exists(), "nothing touched");
    drop(lock);
    assert_eq!(
        run_batch(&config, &key).code,
        0,
        "runs once the lock is free"
    );
    // Issue 17 §3: a finished run leaves no lock file behind, neither its month's nor the
    // protocol's.
    let locks: Vec<String> = crate::common::tree(&out)
        .into_keys()
        .filter(|f| Path::new(f).extension().is_some_and(|e| e == "lock"))
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
}

#[test]
fn a_failing_step_is_named_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [25; 32]);
    let good = batch_config(dir.path(), small_opds());
    assert_eq!(run_batch(&good, &key).code, 0);
    let out = dir.path().join("out");
    let before = published(&out);
    // The opDs extract of this month has the right columns but a broken row: the pre-flight
    // passes, and the report step fails after pseudonymise passed.
    let mut input = Extract::read(small_opds().to_str().unwrap());
    input.set(3, "beschaeftigung", "Z9");
    let broken = input.write(&dir.path().join("broken.csv"));
    let config = batch_config(dir.path(), &broken);
    let r = run_batch(&config, &key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("step `report gefluechtete` failed"),
        "{}",
        r.stderr
    );
    assert_eq!(
        published(&out),
        before,
        "the earlier month's outputs are untouched"
    );
    let last: Vec<String> = records(&out.join("protocol.jsonl"))
        .iter()
        .rev()
        .take(2)
        .map(|r| {
            format!(
                "{} {}",
                r["command"].as_str().unwrap(),
                r["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(last, ["run error", "report error"]);
}

/// Issue 17 §1: `run` learned of a typo'd definition only after pseudonymise and its verify
/// had run, and named the wrong step. Now the pre-flight finds every problem first, each at its
/// configuration key, and nothing is read or written.
#[test]
fn the_pre_flight_names_every_problem_at_its_key_before_any_data_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [26; 32]);
    let good = batch_config(dir.path(), small_opds());
    let text = fs::read_to_string(&good)
        .unwrap()
        .replace("gefluechtete.toml", "gefluechtet.toml")
        .replace("per-rd = 10", "per-rd = 10\nper-gE = 3");
    let config = dir.path().join("typo.toml");
    fs::write(&config, text).unwrap();
    // An extract of another kind as the report's input: its header does not fit the schema.
    let wrong = dir.path().join("wrong-header.csv");
    fs::write(&wrong, "kundennummer;rd;ge_nr\nA;B;C\n").unwrap();

    let check = |args: &[&str]| {
        let mut all = vec!["check", "--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        pseudagg(&all)
    };
    let r = check(&["--month", "2025-03", "--key-file", key.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("pre-flight of"), "{}", r.stderr);
    assert!(
        r.stderr.contains("at `report[1].definition`:")
            && r.stderr.contains("gefluechtet.toml does not exist"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("at `review-sample.per-gE`: is not a known key"),
        "{}",
        r.stderr
    );

    // `run` does the same pre-flight first: nothing is pseudonymised, no folder or protocol made.
    let r = run_batch(&config, &key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("report[1].definition"), "{}", r.stderr);
    assert!(!r.stderr.contains("verify vkb"), "{}", r.stderr);
    assert!(!dir.path().join("out").exists(), "nothing was written");

    // Without a key, and with an input whose header is wrong: each named at its key.
    let other = dir.path().join("other");
    fs::create_dir_all(&other).unwrap();
    let config2 = batch_config(&other, &wrong);
    let r = pseudagg(&[
        "check",
        "--config",
        config2.to_str().unwrap(),
        "--month",
        "2025-03",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("at `key-file`: no key file"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("at `report[1].input`:")
            && r.stderr
                .contains("wrong-header.csv, column `bg_nummer`: is missing"),
        "{}",
        r.stderr
    );
    // The values of the wrong extract never appear, only its column names.
    assert!(!r.stderr.contains(";A;"), "{}", r.stderr);

    // A batch configuration given as a pipeline is named as such.
    let r = pseudagg(&["check", "--pipeline", good.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("is a batch configuration"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("check --config"), "{}", r.stderr);

    // The good configuration passes the pre-flight; a dry run says what a run would do, and
    // writes nothing.
    let r = check_config(&good, &key, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("pre-flight passed for 2025-03"),
        "{}",
        r.stdout
    );
    let r = check_config(&good, &key, &["run", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("a run would:"), "{}", r.stdout);
    assert!(r.stdout.contains("pseudonymise"), "{}", r.stdout);
    assert!(!dir.path().join("out").exists(), "a dry run writes nothing");
}

/// `pseudagg check --config CONFIG --month 2025-03 --key-file KEY`; with `["run", extra...]`
/// as `extra`, the same options to `run` instead, followed by the rest.
fn check_config(config: &Path, key: &Path, extra: &[&str]) -> crate::common::Output {
    let (command, rest) = match extra.split_first() {
        Some((&"run", rest)) => ("run", rest),
        _ => ("check", extra),
    };
    let mut args = vec![
        command,
        "--config",
        config.to_str().unwrap(),
        "--month",
        "2025-03",
        "--key-file",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(rest);
    pseudagg(&args)
}

/// The pre-flight compares the key with the one that wrote the month before: a run with another
/// key would change every pseudonym of the month.
#[test]
fn the_pre_flight_refuses_another_key_than_the_months_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [27; 32]);
    let config = batch_config(dir.path(), small_opds());
    assert_eq!(run_batch(&config, &key).code, 0);
    let out = dir.path().join("out");
    let before = published(&out);
    let other_dir = dir.path().join("other");
    fs::create_dir_all(&other_dir).unwrap();
    let other = key_file(&other_dir, [28; 32]);
    let r = run_batch(&config, &other);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is not the key that wrote vkb 2025-03 before"),
        "{}",
        r.stderr
    );
    assert_eq!(published(&out), before, "nothing was touched");
    // The same key passes, and says so.
    let r = check_config(&config, &key, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("the same key as before"), "{}", r.stdout);
}

/// Issue 17 §5: a month run with another key than before changed every pseudonym of the month
/// without a word. The output root's key register keeps each month's key id; another key is
/// refused unless --new-key is given, and then the change is recorded.
#[test]
fn a_month_keeps_its_key_unless_a_new_key_is_given_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let first_dir = dir.path().join("a");
    let second_dir = dir.path().join("b");
    fs::create_dir_all(&first_dir).unwrap();
    fs::create_dir_all(&second_dir).unwrap();
    let first = key_file(&first_dir, [41; 32]);
    let second = key_file(&second_dir, [42; 32]);
    let out = dir.path().join("out");
    assert_eq!(pseudonymise_into(&out, &first).code, 0);
    let register: Value =
        serde_json::from_slice(&fs::read(out.join("key-ids.json")).unwrap()).unwrap();
    let first_id = register["months"]["2025-03"].as_str().unwrap().to_owned();
    let manifest = out.join("vkb/2025-03/manifest.json");
    let before = fs::read(&manifest).unwrap();

    let r = pseudonymise_into(&out, &second);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "is not the key that wrote vkb 2025-03 before (id {first_id}"
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--new-key"), "{}", r.stderr);
    assert_eq!(fs::read(&manifest).unwrap(), before, "nothing was replaced");

    let r = crate::common::pseudonymise_vkb(
        Path::new(SAMPLE_VKB),
        "2025-03",
        &second,
        &out,
        &["--new-key"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let register: Value =
        serde_json::from_slice(&fs::read(out.join("key-ids.json")).unwrap()).unwrap();
    let second_id = register["months"]["2025-03"].as_str().unwrap();
    assert_ne!(second_id, first_id);
    let last = records(&out.join("protocol.jsonl"))
        .into_iter()
        .rev()
        .find(|r| r["command"] == "pseudonymise" && r["outcome"] == "ok")
        .unwrap();
    assert_eq!(last["details"]["new_key"]["replaces"], first_id.as_str());
    assert_eq!(last["key_id"], second_id);
}

fn pseudonymise_into(out: &Path, key: &Path) -> crate::common::Output {
    crate::common::pseudonymise_vkb(Path::new(SAMPLE_VKB), "2025-03", key, out, &[])
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata(path).unwrap().ino()
}

/// Issue 18: with a damaged protocol the run exited 2 and published anyway, so personal data was
/// processed with no record. Now the protocol is checked before any data is read.
#[test]
fn a_damaged_protocol_stops_the_run_before_anything_is_written() {
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [31; 32]);
    let out = dir.path().join("out");
    assert_eq!(pseudonymise_into(&out, &key).code, 0);
    let protocol = out.join("protocol.jsonl");
    let good = fs::read_to_string(&protocol).unwrap();
    let manifest = out.join("vkb/2025-03/manifest.json");
    let damages: [(&str, Damage); 5] = [
        (
            "a garbage line",
            Box::new(|p| fs::write(p, format!("{good}garbage\n")).unwrap()),
        ),
        (
            "a last line cut half-way",
            Box::new(|p| {
                let cut = &good[..good.len() - 40];
                fs::write(p, cut).unwrap();
            }),
        ),
        (
            "a blank line",
            Box::new(|p| fs::write(p, format!("{good}\n")).unwrap()),
        ),
        (
            "an edited record",
            Box::new(|p| {
                fs::write(
                    p,
                    good.replacen("\"outcome\":\"pending\"", "\"outcome\":\"ok\"", 1),
                )
                .unwrap();
            }),
        ),
        (
            "a link to /dev/null",
            Box::new(|p| {
                fs::remove_file(p).unwrap();
                std::os::unix::fs::symlink("/dev/null", p).unwrap();
            }),
        ),
    ];
    for (what, damage) in &damages {
        let _ = fs::remove_file(&protocol);
        fs::write(&protocol, &good).unwrap();
        damage(&protocol);
        let before = inode(&manifest);
        let r = pseudonymise_into(&out, &key);
        assert_eq!(r.code, 2, "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("protocol verify") || r.stderr.contains("not a regular file"),
            "{what}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("Nothing was read or written"),
            "{what}: {}",
            r.stderr
        );
        assert_eq!(inode(&manifest), before, "{what}: the output was replaced");
        assert!(
            !tree(&out).keys().any(|k| k.contains("staging")),
            "{what}: a staging folder was left"
        );
    }
    // The link was not written through.
    assert!(
        fs::symlink_metadata(&protocol)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Restored from its backup, the protocol lets the run go on.
    fs::remove_file(&protocol).unwrap();
    fs::write(&protocol, &good).unwrap();
    assert_eq!(pseudonymise_into(&out, &key).code, 0);
}

/// A run killed between its announcement and its record leaves a `publish` record alone; the next
/// command settles it, saying whether the output went live.
#[test]
fn an_unconfirmed_publication_is_settled_on_the_next_run() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [33; 32]);
    let out = dir.path().join("out");
    assert_eq!(pseudonymise_into(&out, &key).code, 0);
    let protocol = out.join("protocol.jsonl");
    let manifest = std::path::absolute(out.join("vkb/2025-03/manifest.json")).unwrap();
    let live_hash = hex::encode(Sha256::digest(fs::read(&manifest).unwrap()));
    // Two announcements without a record, chained as pseudagg writes them: one whose output is
    // in place, one whose output never arrived.
    for sha in [live_hash.as_str(), &"0".repeat(64)] {
        let text = fs::read_to_string(&protocol).unwrap();
        let last = text.lines().last().unwrap();
        let seq = serde_json::from_str::<Value>(last).unwrap()["seq"]
            .as_u64()
            .unwrap()
            + 1;
        let record = serde_json::json!({
            "seq": seq,
            "time": "2025-04-01T00:00:00Z",
            "kind": "publish",
            "operator": "test",
            "command": "pseudonymise",
            "subject": "vkb",
            "month": "2025-03",
            "outputs": [{"path": manifest.display().to_string(), "sha256": sha}],
            "outcome": "pending",
            "prev": hex::encode(Sha256::digest(last.as_bytes())),
        });
        fs::write(&protocol, format!("{text}{record}\n")).unwrap();
    }
    assert_eq!(protocol_verify(&protocol, &[]).code, 0);
    // Any command on data settles them first.
    let r = pseudagg(&["verify", out.join("vkb/2025-03").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let recs = records(&protocol);
    let settled: Vec<&Value> = recs
        .iter()
        .filter(|r| r["details"]["recovered"] == true)
        .collect();
    assert_eq!(settled.len(), 2);
    assert_eq!(settled[0]["outcome"], "ok");
    assert_eq!(settled[0]["details"]["published"], "all");
    assert_eq!(settled[1]["outcome"], "error");
    assert_eq!(settled[1]["details"]["published"], "none");
    // Settled once, not again.
    assert_eq!(
        pseudagg(&["verify", out.join("vkb/2025-03").to_str().unwrap()]).code,
        0
    );
    let again = records(&protocol);
    assert_eq!(
        again
            .iter()
            .filter(|r| r["details"]["recovered"] == true)
            .count(),
        2
    );
    assert_eq!(protocol_verify(&protocol, &[]).code, 0);
}

/// Issue 18 §2: an emptied protocol passed `protocol verify` ("0 records, the chain holds"). Now
/// every output under the root (each `manifest.json`) must have its publication in the protocol
/// with the same hash, also after a purge, and also when the root was moved (`--outputs`).
#[test]
fn an_output_without_its_record_in_the_protocol_fails_protocol_verify() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [23; 32]);
    let out = dir.path().join("out");
    assert_eq!(pseudonymise_into(&out, &key).code, 0);
    let r = report(&out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let protocol = out.join("protocol.jsonl");
    let ok = protocol_verify(&protocol, &[]);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout
            .contains(&format!("outputs under {}: 2\n", out.display())),
        "{}",
        ok.stdout
    );
    let text = fs::read_to_string(&protocol).unwrap();

    // Emptied: the chain of nothing holds, but two outputs have no record.
    fs::write(&protocol, "").unwrap();
    let r = protocol_verify(&protocol, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    for output in [
        "vkb/2025-03/manifest.json",
        "gefluechtete/2025-03/manifest.json",
    ] {
        assert!(
            r.stdout
                .contains(&format!("{output}: no record of the protocol published it")),
            "{}",
            r.stdout
        );
    }
    assert!(r.stderr.contains("2 of 2 outputs"), "{}", r.stderr);
    fs::write(&protocol, &text).unwrap();

    // An output changed after it was published.
    let manifest = out.join("vkb/2025-03/manifest.json");
    let original = fs::read(&manifest).unwrap();
    let mut changed = original.clone();
    changed.extend_from_slice(b"\n");
    fs::write(&manifest, &changed).unwrap();
    let r = protocol_verify(&protocol, &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("vkb/2025-03/manifest.json: differs from every publication"),
        "{}",
        r.stdout
    );
    fs::write(&manifest, &original).unwrap();

    // The root moved elsewhere: matched by the path below the root.
    let moved = dir.path().join("archive");
    fs::rename(&out, &moved).unwrap();
    let protocol = moved.join("protocol.jsonl");
    let elsewhere = dir.path().join("protocol-copy.jsonl");
    fs::copy(&protocol, &elsewhere).unwrap();
    let r = protocol_verify(&elsewhere, &["--outputs", moved.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // A purge removes the publications' records; its checkpoint carries them forward.
    let r = purge_aged(&protocol, 3);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!records(&protocol).iter().any(|r| r["kind"] == "publish"));
    let r = protocol_verify(&protocol, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

fn report(out: &Path) -> crate::common::Output {
    pseudagg(&[
        "report",
        "--definition",
        &format!("{PIPELINES}/gefluechtete.toml"),
        "--input",
        small_opds().to_str().unwrap(),
        "--month",
        "2025-03",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// The fixed vector's case (key bytes 0..32, vkb, 2025-03, 325D123456, from
/// testdata/vectors/pseudonym_vector.py) among three flagged NRW rows.
fn vector_case(dir: &Path) -> (PathBuf, PathBuf) {
    let key = key_file(dir, std::array::from_fn(|i| i as u8));
    let mut input = Extract::sample_vkb().only("rd", "NRW").head(3);
    input.set(0, "kundennummer", "325D123456");
    for row in 0..3 {
        input.set(row, "vkb_kennzeichen", "J");
    }
    (input.write(&dir.join("verbis-vkb-2025-03.csv")), key)
}

const VECTOR_PSEUDONYM: &str = "78f0399c47c50cb7fe24900a9391b415a79563dd14e7aa7d46e30e178974358e";

fn reidentify(
    dir: &Path,
    input: &Path,
    key: &Path,
    asked: &str,
    extra: &[&str],
) -> crate::common::Output {
    let list = dir.join("asked.csv");
    fs::write(&list, asked).unwrap();
    let mut args = vec![
        "reidentify",
        "--pipeline",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/vkb.toml"),
        "--input",
        input.to_str().unwrap(),
        "--month",
        "2025-03",
        "--key-file",
        key.to_str().unwrap(),
        "--pseudonyms",
        list.to_str().unwrap(),
        "--reason",
        "Befund der RD NRW zum Fall 1",
    ];
    let out = dir.join("answer.csv");
    let protocol = dir.join("protocol.jsonl");
    args.extend([
        "--out",
        out.to_str().unwrap(),
        "--protocol",
        protocol.to_str().unwrap(),
    ]);
    args.extend_from_slice(extra);
    pseudagg(&args)
}

/// Issue 17 §6: the owner finds the case behind a pseudonym of the review, logged, bounded.
#[test]
fn the_owner_looks_up_the_case_behind_a_pseudonym_and_it_is_logged() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (input, key) = vector_case(dir.path());
    let unknown = "ab".repeat(32);
    let r = reidentify(
        dir.path(),
        &input,
        &key,
        &format!("rd;pseudonym\nNRW;{VECTOR_PSEUDONYM}\nNRW;{unknown}\nNRW;{VECTOR_PSEUDONYM}\n"),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let answer = dir.path().join("answer.csv");
    assert_eq!(
        fs::read_to_string(&answer).unwrap(),
        format!(
            "pseudonym;column;value;status\n{VECTOR_PSEUDONYM};kundennummer;325D123456;found\n{unknown};;;not-found\n"
        )
    );
    assert_eq!(
        fs::metadata(&answer).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Logged with operator, reason and counts; the customer number appears nowhere in it.
    let protocol = fs::read_to_string(dir.path().join("protocol.jsonl")).unwrap();
    assert!(!protocol.contains("325D123456"), "{protocol}");
    let record: Value = serde_json::from_str(protocol.lines().last().unwrap()).unwrap();
    assert_eq!(record["command"], "reidentify");
    assert_eq!(record["details"]["reason"], "Befund der RD NRW zum Fall 1");
    assert_eq!(record["details"]["asked"], 2);
    assert_eq!(record["details"]["found"], 1);
    assert!(!record["operator"].as_str().unwrap().is_empty());
    assert!(!r.stderr.contains("325D123456") && !r.stdout.contains("325D123456"));
    // The answer is never overwritten.
    let again = reidentify(
        dir.path(),
        &input,
        &key,
        &format!("pseudonym\n{VECTOR_PSEUDONYM}\n"),
        &[],
    );
    assert_eq!(again.code, 2, "{}", again.stderr);
}

#[test]
fn a_look_up_of_too_many_or_of_another_month_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, key) = vector_case(dir.path());
    let many: String = std::iter::once("pseudonym\n".to_owned())
        .chain((0..3).map(|i| format!("{}\n", format!("{i:x}").repeat(64))))
        .collect();
    let r = reidentify(dir.path(), &input, &key, &many, &["--max", "2"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("at most 2 per call"), "{}", r.stderr);
    // A refused attempt is recorded too.
    let protocol = fs::read_to_string(dir.path().join("protocol.jsonl")).unwrap();
    let record: Value = serde_json::from_str(protocol.lines().last().unwrap()).unwrap();
    assert_eq!(record["command"], "reidentify");
    assert_ne!(record["outcome"], "ok");
    assert_eq!(record["details"]["asked"], 3);
    let other = format!("month;pseudonym\n2025-02;{VECTOR_PSEUDONYM}\n");
    let r = reidentify(dir.path(), &input, &key, &other, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("line 2") && r.stderr.contains("month 2025-02"),
        "{}",
        r.stderr
    );
    assert!(
        !dir.path().join("answer.csv").exists(),
        "something was written"
    );
}

/// Issue 18 §6: the hash chain had no key, so whoever could write the protocol could rewrite a
/// record and recompute every hash after it. Sealed with a protocol key, a rewrite is found, and
/// a sealed protocol is neither written nor trusted without its key.
#[test]
fn a_sealed_protocol_is_written_and_trusted_only_with_its_key() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [31; 32]);
    let keys = dir.path().join("protocol-keys");
    fs::create_dir_all(keys.join("other")).unwrap();
    let protocol_key = key_file(&keys, [47; 32]);
    let other_key = key_file(&keys.join("other"), [53; 32]);
    let out = dir.path().join("out");
    let protocol = out.join("protocol.jsonl");
    let p = protocol.to_str().unwrap();
    let with_key = ["--protocol-key", protocol_key.to_str().unwrap()];
    let run = |extra: &[&str]| {
        crate::common::pseudonymise_vkb(Path::new(SAMPLE_VKB), "2025-03", &key, &out, extra)
    };

    // A protocol written before it had a key.
    assert_eq!(pseudonymise_into(&out, &key).code, 0);
    let unsealed = fs::read_to_string(&protocol).unwrap();
    // The key alone does not take it over: it is checked, then sealed on purpose.
    let r = run(&with_key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("protocol seal"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(&protocol).unwrap(), unsealed);
    let r = pseudagg(&["protocol", "seal", "--protocol", p]);
    assert_eq!(r.code, 2, "seal needs the key: {}", r.stderr);
    let r = pseudagg(&[
        "protocol",
        "seal",
        "--protocol",
        p,
        with_key[0],
        with_key[1],
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sealed_records = records(&protocol);
    assert_eq!(sealed_records.last().unwrap()["kind"], "seal");

    // Checked with its key it holds; without it, it is not taken as checked.
    let r = protocol_verify(&protocol, &with_key);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("every seal checked"), "{}", r.stdout);
    let r = protocol_verify(&protocol, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--protocol-key"), "{}", r.stderr);

    // A run without the key is refused before it reads data; with it, its records are sealed.
    let r = run(&[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is sealed"), "{}", r.stderr);
    let r = run(&with_key);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = records(&protocol);
    assert!(all.len() > sealed_records.len());
    assert!(
        all[sealed_records.len() - 1..].iter().all(|r| r["mac"]
            .as_str()
            .is_some_and(|m| m.starts_with("hmac-sha256:"))),
        "every record from the seal on carries a MAC"
    );
    // The pseudonym key's own file is refused as the protocol key.
    let r = run(&["--protocol-key", key.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("same key file"), "{}", r.stderr);

    // Another key: every seal is named as not this key's.
    let r = protocol_verify(&protocol, &["--protocol-key", other_key.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not with the given key"), "{}", r.stdout);

    // Someone who may write the file but has no key: edits the first record and recomputes every
    // hash. The chain holds; the seal does not.
    let text = fs::read_to_string(&protocol).unwrap();
    let mut prev = "0".repeat(64);
    let mut rewritten = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut line = if i == 0 {
            line.replacen("\"outcome\":\"pending\"", "\"outcome\":\"error\"", 1)
        } else {
            line.to_owned()
        };
        let at = line.find("\"prev\":\"").unwrap() + 8;
        line.replace_range(at..at + 64, &prev);
        prev = hex::encode(Sha256::digest(line.as_bytes()));
        rewritten.push_str(&line);
        rewritten.push('\n');
    }
    assert_ne!(rewritten, text);
    fs::write(&protocol, &rewritten).unwrap();
    let r = protocol_verify(&protocol, &with_key);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("MAC does not match"), "{}", r.stdout);
    let r = run(&with_key);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(&protocol).unwrap(),
        rewritten,
        "nothing was appended"
    );
}

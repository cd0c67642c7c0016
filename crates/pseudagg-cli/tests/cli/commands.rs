use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::common::{SAMPLE_OPDS, SAMPLE_VKB, VKB_PIPELINE, key_file, pseudagg, pseudagg_env};

#[test]
fn keygen_writes_a_private_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    let r = pseudagg(&["keygen", "--out", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(text.len(), 65);
    assert!(r.stdout.contains("key id "), "{}", r.stdout);
    assert!(
        !r.stdout.contains(text.trim()) && !r.stderr.contains(text.trim()),
        "key material printed"
    );

    let again = pseudagg(&["keygen", "--out", path.to_str().unwrap()]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

fn run_with_key(key: &str, env: &[(&str, &str)]) -> crate::common::Output {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut args = vec![
        "pseudonymise",
        "--pipeline",
        VKB_PIPELINE,
        "--input",
        SAMPLE_VKB,
        "--month",
        "2025-03",
        "--out",
        out.to_str().unwrap(),
    ];
    if !key.is_empty() {
        args.extend_from_slice(&["--key-file", key]);
    }
    let r = pseudagg_env(&args, env);
    if r.code != 0 {
        assert!(!out.exists(), "output written despite a key problem");
    }
    r
}

#[test]
fn unsafe_or_malformed_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [1; 32]);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let r = run_with_key(key.to_str().unwrap(), &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("mode 0644") && r.stderr.contains("chmod 600"),
        "{}",
        r.stderr
    );

    let bad = dir.path().join("bad.key");
    fs::write(&bad, "zz".repeat(32)).unwrap();
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
    let r = run_with_key(bad.to_str().unwrap(), &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not lower-case hex") && !r.stderr.contains(&"zz".repeat(32)),
        "{}",
        r.stderr
    );

    let r = run_with_key(dir.path().join("nope.key").to_str().unwrap(), &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("does not exist")
            && r.stderr.contains("restored from its backup")
            && !r.stderr.contains("keygen --out"),
        "{}",
        r.stderr
    );

    // Issue 18: the key's hex itself given as the key file was printed, in text and JSON logs.
    let secret = hex::encode(
        (0u8..32)
            .map(|i| i.wrapping_mul(37) ^ 0x5a)
            .collect::<Vec<u8>>(),
    );
    for env in [vec![], vec![("PSEUDAGG_KEY_FILE", secret.as_str())]] {
        let flag = if env.is_empty() { secret.as_str() } else { "" };
        let r = run_with_key(flag, &env);
        assert_eq!(r.code, 2);
        assert!(
            !r.stderr.contains(&secret[..32]) && !r.stdout.contains(&secret[..32]),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("withheld"), "{}", r.stderr);
    }

    let r = run_with_key("", &[]);
    assert_eq!(r.code, 2, "a missing key is a usage error");
    assert!(r.stderr.contains("--key-file"), "{}", r.stderr);
}

#[test]
fn key_file_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [1; 32]);
    let r = run_with_key("", &[("PSEUDAGG_KEY_FILE", key.to_str().unwrap())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hex = fs::read_to_string(&key).unwrap();
    assert!(!r.stderr.contains(hex.trim()));
}

#[test]
fn check_reports_a_valid_pipeline_and_every_problem_of_a_bad_one() {
    let r = pseudagg(&["check", "--pipeline", VKB_PIPELINE]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("valid") && r.stdout.contains("pseudonym"),
        "{}",
        r.stdout
    );

    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(VKB_PIPELINE)
        .unwrap()
        .replace(
            "\"rd\",\n",
            "\"rd\",\n    \"nachname\",\n    \"teamleitung_id\",\n",
        )
        .replace("column = \"kundennummer\"", "column = \"kundenummer\"")
        .replace(
            "partition-by = \"rd\"",
            "partition-by = \"rd\"\nsecret-mode = true",
        );
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, text).unwrap();
    let r = pseudagg(&["check", "--pipeline", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    for expected in [
        "(4 problems)",
        "`nachname` is personal data",
        "`teamleitung_id` is personal data of staff",
        "`kundenummer` is not a column",
        "at `secret-mode`",
    ] {
        assert!(
            r.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            r.stderr
        );
    }
}

#[test]
fn bad_month_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [1; 32]);
    let out = dir.path().join("out");
    let r = pseudagg(&[
        "pseudonymise",
        "--pipeline",
        VKB_PIPELINE,
        "--input",
        SAMPLE_VKB,
        "--month",
        "2025-3",
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("YYYY-MM"), "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn committed_samples_are_what_the_generator_makes() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, sample) in [("verbis-vkb", SAMPLE_VKB), ("opds-person", SAMPLE_OPDS)] {
        let path = dir.path().join(format!("{kind}.csv"));
        let r = pseudagg(&[
            "gen-testdata",
            "--kind",
            kind,
            "--rows",
            "2000",
            "--month",
            "2025-03",
            "--seed",
            "1",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            fs::read(&path).unwrap() == fs::read(sample).unwrap(),
            "testdata/{kind}-2025-03.csv is stale: regenerate it with the command in testdata/README.md"
        );
    }
}

#[test]
fn generated_data_is_realistic() {
    let x = crate::common::Extract::sample_vkb();
    let text = fs::read_to_string(SAMPLE_VKB).unwrap();
    for needle in ["ß", "ü", "ö", "ä", "-", "'"] {
        assert!(text.contains(needle), "no {needle} in the sample");
    }
    let flagged = x
        .rows
        .iter()
        .filter(|r| r[x.col("vkb_kennzeichen")] == "J")
        .count();
    assert!((100..=400).contains(&flagged), "{flagged} of 2000 flagged");
    let notes: Vec<&str> = x
        .rows
        .iter()
        .map(|r| r[x.col("vermerk")].as_str())
        .collect();
    assert!(notes.iter().any(|n| n.contains(';')) && notes.iter().any(|n| n.contains('"')));
    assert!(
        x.rows.iter().any(|r| {
            let note = &r[x.col("vermerk")];
            note.contains(&r[x.col("nachname")])
                && note.contains(&r[x.col("telefon")])
                && !r[x.col("telefon")].is_empty()
        }),
        "no note names the customer and a phone number"
    );
    let rds: std::collections::BTreeSet<&str> =
        x.rows.iter().map(|r| r[x.col("rd")].as_str()).collect();
    assert_eq!(rds.len(), 10);
    let mut per_ge = std::collections::HashMap::new();
    let opds = crate::common::Extract::read(SAMPLE_OPDS);
    for r in &opds.rows {
        *per_ge.entry(r[opds.col("ge_nr")].clone()).or_insert(0) += 1;
    }
    assert!(
        per_ge.values().any(|&n| n == 1) && per_ge.values().any(|&n| n == 2),
        "no tiny gEs"
    );
    assert!(per_ge.values().any(|&n| n > 40), "no big gEs");
}

#[test]
fn every_command_has_help() {
    for cmd in ["pseudonymise", "check", "keygen", "gen-testdata", "demo"] {
        let r = pseudagg(&[cmd, "--help"]);
        assert_eq!(r.code, 0, "{cmd}");
        assert!(r.stdout.contains("Usage: pseudagg"), "{cmd}: {}", r.stdout);
    }
    let r = pseudagg(&["--help"]);
    assert!(
        r.stdout
            .contains("Exit codes: 0 success, 1 a check failed, 2 an error"),
        "{}",
        r.stdout
    );
}

/// Issue 17 §2: every command's `--help` ends with an example; the log format stands under
/// "Global options", and the protocol options are offered, under their own heading, only by the
/// commands that keep a protocol. Given before the command, where they used to stand, they still
/// work.
#[test]
fn every_help_ends_with_an_example_and_offers_only_its_options() {
    let commands: &[&[&str]] = &[
        &["pseudonymise"],
        &["report"],
        &["check"],
        &["keygen"],
        &["gen-testdata"],
        &["verify"],
        &["sample"],
        &["reidentify"],
        &["protocol"],
        &["protocol", "verify"],
        &["protocol", "seal"],
        &["protocol", "purge"],
        &["protocol", "sample"],
        &["run"],
        &["demo"],
        &["completions"],
        &["man"],
    ];
    let keeps_protocol = |c: &[&str]| {
        !matches!(
            c,
            ["keygen" | "gen-testdata" | "demo" | "completions" | "man" | "protocol"]
        )
    };
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let r = pseudagg(&args);
        assert_eq!(r.code, 0, "{c:?}: {}", r.stderr);
        let last_paragraph = r
            .stdout
            .trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap_or_default();
        assert!(
            last_paragraph.starts_with("Example: pseudagg "),
            "{c:?}: the help does not end with an example:\n{}",
            r.stdout
        );
        assert!(r.stdout.contains("Global options:"), "{c:?}");
        assert_eq!(
            r.stdout.contains("Protocol options:") && r.stdout.contains("--protocol <FILE>"),
            keeps_protocol(c),
            "{c:?}:\n{}",
            r.stdout
        );
    }
    // The old place, before the command, still reaches the protocol.
    let dir = tempfile::tempdir().unwrap();
    let protocol = dir.path().join("p.jsonl");
    let r = pseudagg(&[
        "--protocol",
        protocol.to_str().unwrap(),
        "--operator",
        "steward-7",
        "protocol",
        "sample",
        "--written-in",
        "2025-04",
        "--seed",
        "1",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&protocol).unwrap();
    assert!(text.contains("\"operator\":\"steward-7\""), "{text}");
    // And not offered where it means nothing.
    let r = pseudagg(&["keygen", "--out", "x.key", "--protocol", "p.jsonl"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// Issue 17 §2: completions and the man page come from the same clap definition as `--help`.
#[test]
fn completions_and_the_man_page_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let r = pseudagg(&["completions", shell]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        for word in ["pseudonymise", "reidentify", "pseudonyms", "ge-register"] {
            assert!(r.stdout.contains(word), "{shell} completion lacks {word}");
        }
    }
    let r = pseudagg(&["man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with(".ie") && r.stdout.contains(".TH pseudagg 1"));
    assert!(r.stdout.contains("reidentify") && r.stdout.contains("verify"));
    let r = pseudagg(&["completions", "cmd.exe"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// Issue 17 §2: one vocabulary. `sample` and `verify` both take the month's folder as `--dataset`,
/// `verify`'s extract encoding is `--encoding` as everywhere, and `gen-testdata`'s file format is
/// `--file-format` (`--format` is the output format of `verify`). The old spellings still work
/// for scripts, hidden from the help.
#[test]
fn renamed_options_keep_their_old_spelling_as_hidden_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gen_with = |flag: &str, out: &str| {
        let path = d.join(out);
        let r = pseudagg(&[
            "gen-testdata",
            "--kind",
            "verbis-vkb",
            "--rows",
            "50",
            "--month",
            "2025-03",
            flag,
            "csv",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{flag}: {}", r.stderr);
        fs::read(path).unwrap()
    };
    assert_eq!(
        gen_with("--file-format", "a.txt"),
        gen_with("--format", "b.txt")
    );

    let key = key_file(d, [7; 32]);
    let out = d.join("out");
    let r = crate::common::pseudonymise_vkb(
        std::path::Path::new(SAMPLE_VKB),
        "2025-03",
        &key,
        &out,
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ds = out.join("vkb/2025-03");
    let sample_with = |flag: &str, file: &str| {
        let path = d.join(file);
        let r = pseudagg(&[
            "sample",
            flag,
            ds.to_str().unwrap(),
            "--seed",
            "4",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{flag}: {}", r.stderr);
        fs::read(path).unwrap()
    };
    assert_eq!(
        sample_with("--dataset", "s1.csv"),
        sample_with("--input", "s2.csv")
    );

    for args in [
        vec![
            "verify",
            "--dataset",
            ds.to_str().unwrap(),
            "--input",
            SAMPLE_VKB,
            "--encoding",
            "utf-8",
        ],
        vec![
            "verify",
            ds.to_str().unwrap(),
            "--input",
            SAMPLE_VKB,
            "--input-encoding",
            "utf-8",
        ],
    ] {
        let r = pseudagg(&args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    for (command, old) in [
        ("verify", "--input-encoding <"),
        ("sample", "--input <"),
        ("gen-testdata", "--format <"),
    ] {
        let help = pseudagg(&[command, "--help"]).stdout;
        assert!(!help.contains(old), "{command} --help shows {old}");
    }
}

//! Issue 17 §4: the README runs as written. Every command of its usage blocks (the ```sh blocks
//! after "## Using it") runs here in order, in a sandbox folder that holds the committed samples
//! and a copy of `pipelines/`, with the absolute places a steward would use (`/secure`, `/data`,
//! `/etc`, the man folder) moved below it. A command that fails, or a README command that names a
//! file nobody ships, fails this test, so the README cannot drift from the program.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const README: &str = include_str!("../../../../README.md");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shell commands of the usage blocks, continuation lines joined, comments dropped.
fn usage_commands(readme: &str) -> Vec<String> {
    let usage = &readme[readme.find("## Using it").expect("a usage section")..];
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in usage.lines() {
        if line.trim_start().starts_with("```") {
            in_block = line.trim() == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let code = without_comment(line);
        let code = code.trim_end();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(code);
        let command = std::mem::take(&mut pending).trim().to_owned();
        if !command.is_empty() {
            commands.push(command);
        }
    }
    commands
}

/// `line` without a `# comment` that stands outside quotes after white space.
fn without_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_readme_parses_into_the_commands_it_shows() {
    let commands = usage_commands(README);
    assert!(commands.len() >= 20, "{commands:#?}");
    // pseudagg's own commands, and a file made for the look-up with `head`.
    assert!(
        commands
            .iter()
            .all(|c| c.starts_with("pseudagg ") || c.starts_with("head ")),
        "{commands:#?}"
    );
    assert_eq!(
        without_comment(r#"pseudagg x --reason "a # b"   # the note"#),
        r#"pseudagg x --reason "a # b"   "#
    );
}

#[test]
fn every_usage_command_of_the_readme_runs_as_written() {
    let sandbox = tempfile::tempdir().unwrap();
    let root = sandbox.path();
    // What a clone has: the samples and the example files (a copy, so that `../monthly-output`
    // of pipelines/monthly.toml stays in the sandbox).
    std::os::unix::fs::symlink(repo().join("testdata"), root.join("testdata")).unwrap();
    copy_dir(&repo().join("pipelines"), &root.join("pipelines"));
    let moved = [
        ("/secure/", "secure"),
        ("/data/", "data"),
        ("/etc/", "etc"),
        ("/usr/local/share/man/man1/", "man1"),
    ];
    for (_, dir) in moved {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::create_dir_all(root.join("etc/pseudagg")).unwrap();
    fs::create_dir_all(root.join("etc/bash_completion.d")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_pseudagg")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let commands = usage_commands(README);
    for written in &commands {
        let mut command = written.clone();
        for (from, dir) in moved {
            command = command.replace(from, &format!("{}/{dir}/", root.display()));
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(root)
            .env("PATH", &path)
            .env("PSEUDAGG_LOG", "warn")
            .env_remove("PSEUDAGG_KEY_FILE")
            .env_remove("PSEUDAGG_PROTOCOL_KEY_FILE")
            .env_remove("PSEUDAGG_PROTOCOL")
            .env_remove("PSEUDAGG_TRAEGER_REGISTER")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the README's command failed ({}):\n{written}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        // The refused request is refused, for the reasons the example file was written with.
        if written.contains("incomplete-example.toml") {
            assert!(stdout.contains("refused: exit 2"), "{stdout}\n{stderr}");
            for key in [
                "`purpose`",
                "`legal-basis`",
                "`data-protection-review.date`",
                "(86102)",
            ] {
                assert!(stderr.contains(key), "{key}: {stderr}");
            }
        }
    }
    // What the blocks promise is there.
    for file in [
        "secure/vkb.key",
        "secure/cases.csv",
        "data/biss/vkb/2025-03/manifest.json",
        "data/biss/vkb/2025-02/manifest.json",
        "data/reports/gefluechtete/2025-03/manifest.json",
        "data/reports/gefluechtete/requests/SAC-86101-2025-001/2025-03/manifests/ge-86101.json",
        "monthly-output/vkb/2025-03/manifest.json",
        "etc/bash_completion.d/pseudagg",
        "man1/pseudagg.1",
        "review.csv",
        "verify.json",
        "run-2025-03.json",
    ] {
        assert!(root.join(file).exists(), "{file} missing");
    }
    assert!(
        !root
            .join("data/reports/gefluechtete/requests/SAC-86101-2025-002")
            .exists(),
        "the incomplete request got nothing"
    );
    // The look-up found the three cases behind the findings' pseudonyms.
    let cases = fs::read_to_string(root.join("secure/cases.csv")).unwrap();
    assert_eq!(
        cases.lines().filter(|l| l.ends_with(";found")).count(),
        3,
        "{cases}"
    );
}

//! The `andromede` binary as a user types it, without a cluster: bad arguments and
//! missing or broken configs are refused with a message that says what to do, and
//! nothing is written. (The commands against a running cluster are exercised with the
//! node in `andromede-node`'s `binaries` test.)

use std::path::Path;
use std::process::{Command, Output};

const ANDROMEDE: &str = env!("CARGO_BIN_EXE_andromede");

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(ANDROMEDE)
        .args(args)
        .current_dir(dir)
        .env_remove("ANDROMEDE_CONFIG")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_arguments_are_refused_with_usage_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = run(&["frobnicate"], dir.path());
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("Usage"), "{}", stderr(&unknown));
    let missing = run(&["put"], dir.path());
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("required"),
        "{}",
        stderr(&missing)
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn a_missing_or_broken_config_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("andromede.toml");
    let config = config.to_str().unwrap();
    let missing = run(&["--config", config, "ls", "photos"], dir.path());
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("andromede init"),
        "{}",
        stderr(&missing)
    );
    std::fs::write(dir.path().join("andromede.toml"), "bootstrap = 7\n").unwrap();
    let broken = run(&["--config", config, "ls", "photos"], dir.path());
    assert!(!broken.status.success());
    assert!(
        stderr(&broken).contains("andromede.toml"),
        "{}",
        stderr(&broken)
    );
}

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let help = run(&["--help"], dir.path());
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["init", "mb", "rb", "ls", "put", "get", "stat", "rm"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
}

use clap::CommandFactory;

use super::*;

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn zero_jobs_is_refused_with_the_fix() {
    for command in ["build", "bench"] {
        let mut argv = vec!["cargo-xtask", command];
        if command == "bench" {
            argv.push("build");
        }
        argv.extend(["-j", "0"]);
        let err = Cli::try_parse_from(&argv).unwrap_err().to_string();
        let first = err.lines().next().unwrap();
        assert_eq!(
            first,
            "error: invalid value '0' for '--jobs <N>': make needs at least one job: \
             give -j 1 or more, or leave -j out for one per CPU",
            "{command}"
        );
    }
    let cli = Cli::try_parse_from(["cargo-xtask", "build", "-j", "3"]).unwrap();
    assert!(matches!(
        cli.command,
        Command::Build(Build { jobs: Some(3), .. })
    ));
}

#[test]
fn no_wait_and_attach_timeout_parse() {
    let cli = Cli::try_parse_from([
        "cargo-xtask",
        "run",
        "--no-wait",
        "--wait-gdb",
        "--attach-timeout",
        "3",
        "--",
        "true",
    ])
    .unwrap();
    assert!(cli.global.no_wait);
    let Command::Run(run) = cli.command else {
        panic!("run")
    };
    assert_eq!(run.attach_timeout, 3);
}

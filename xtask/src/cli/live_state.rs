//! The commands that read a guest's memory while it runs, or once dumped:
//! `drgn` and `dump`.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use super::{AccelArg, TargetArgs};

#[derive(Args, Debug)]
pub struct Drgn {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Read the guest that a `run`, `debug` or `trace` of this build directory has up
    #[arg(long, conflicts_with = "core")]
    pub attach: bool,
    /// With --attach and several guests up: the QMP socket of the one to read
    #[arg(long, value_name = "SOCKET", requires = "attach")]
    pub qmp: Option<PathBuf>,
    /// Read a vmcore (from `dump`, or `study-dump` in gdb) instead of a live guest
    #[arg(long, value_name = "FILE")]
    pub core: Option<PathBuf>,
    /// Evaluate CODE, with the study helpers imported, instead of a prompt
    #[arg(short = 'e', value_name = "CODE")]
    pub code: Option<String>,
    /// A drgn script and its arguments (or, with -e, CODE's arguments)
    #[arg(value_name = "SCRIPT")]
    pub script: Vec<String>,
    /// Accelerator, as for `run`
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// Seconds before a booted guest is killed
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// The command the booted guest runs while drgn reads it, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Dump {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The vmcore to write (ELF, with the guest's VMCOREINFO: `drgn --core FILE` reads it)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Dump at the first stop in FUNC (gdb, after the prologue, in CMD's own task)
    #[arg(long, value_name = "FUNC", conflicts_with = "attach")]
    pub at: Option<String>,
    /// Without --at: seconds to wait after CMD starts
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = seconds, allow_hyphen_values = true)]
    pub after: Duration,
    /// Dump the guest that a `run`, `debug` or `trace` of this build directory has up
    #[arg(long)]
    pub attach: bool,
    /// With --attach and several guests up: the QMP socket of the one to dump
    #[arg(long, value_name = "SOCKET", requires = "attach")]
    pub qmp: Option<PathBuf>,
    /// Accelerator, as for `run` (with --at: TCG)
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// The command the guest runs, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `--after SECS`: a finite number of seconds, 0 or more (`inf`, `NaN` and
/// negatives are not a wait).
fn seconds(text: &str) -> Result<Duration, String> {
    let why = "give a number of seconds, 0 or more (e.g. --after 1.5)";
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number: {why}"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a wait: {why}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn after(value: &str) -> Result<Duration, String> {
        let argv = [
            "cargo-xtask",
            "dump",
            "core",
            "--after",
            value,
            "--",
            "true",
        ];
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Command::Dump(dump),
                ..
            }) => Ok(dump.after),
            Ok(_) => unreachable!("dump parses as dump"),
            Err(e) => Err(e.to_string()),
        }
    }

    /// What `Duration::from_secs_f64` panics on is refused by the parser,
    /// in one line that names the flag and the fix.
    #[test]
    fn after_takes_only_a_finite_wait() {
        assert_eq!(after("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(after("0"), Ok(Duration::ZERO));
        for bad in ["inf", "-inf", "NaN", "-1", "1e300", "soon"] {
            let err = after(bad).unwrap_err();
            let first = err.lines().next().unwrap();
            assert!(
                first.starts_with(&format!(
                    "error: invalid value '{bad}' for '--after <SECS>': "
                )) && first.ends_with("give a number of seconds, 0 or more (e.g. --after 1.5)"),
                "{err}"
            );
        }
    }
}

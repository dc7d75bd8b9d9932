//! One install step: a command whose own output (apt's and dpkg's, pip's,
//! cargo's) goes whole to a log under target/setup/, while a progress
//! display (util::progress) reads it line by line and says how far the
//! step is. The done line names the log; a failure is an error that names
//! it and shows its last lines.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{bail, Result};
use xshell::Cmd;

use crate::util::{
    exec::{describe, Exec},
    progress::Progress,
};

/// Where the steps' logs go, under the project's target/.
pub const LOG_DIR: &str = "target/setup";

/// The log of the step `name`: `target/setup/NAME.log` under `root`.
pub fn log(root: &Path, name: &str) -> PathBuf {
    root.join(LOG_DIR).join(format!("{name}.log"))
}

/// How many of the log's last lines a failure shows.
const TAIL: usize = 12;

/// Runs `cmd` through the executor (echoed; under `--dry-run` only
/// echoed), each line of its output to `log` and to `on_line`, which
/// moves `progress`.
pub fn run(
    exec: &Exec,
    cmd: Cmd<'_>,
    log: &Path,
    mut progress: Progress,
    mut on_line: impl FnMut(&mut Progress, &str),
) -> Result<()> {
    let text = cmd.to_string();
    let mut sink = exec.create(log)?;
    let status = exec.stream(cmd, |line| {
        let _ = writeln!(sink, "{line}");
        on_line(&mut progress, line);
    })?;
    drop(sink);
    let Some(status) = status else {
        return Ok(());
    };
    let shown = log.strip_prefix(std::env::current_dir()?).unwrap_or(log);
    if !status.success() {
        // The display goes before the error line.
        drop(progress);
        let written = std::fs::read_to_string(log).unwrap_or_default();
        bail!("{}", failure(&text, &describe(status), shown, &written));
    }
    progress.finish_saying(&format!("its output is in {}", shown.display()));
    Ok(())
}

/// `` `CMD` failed (exit status 100); its output is in LOG, which ends: ``
/// and the log's last lines, each as a terminal showed it last (after its
/// last carriage return: dpkg redraws its "Reading database" count).
fn failure(cmd: &str, status: &str, log: &Path, written: &str) -> String {
    let lines: Vec<&str> = written
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l).trim_end())
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(TAIL)..];
    let mut text = format!(
        "`{cmd}` failed ({status}); its output is in {}, which ends:",
        log.display()
    );
    for line in tail {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

#[cfg(test)]
mod tests {
    use xshell::cmd;

    use super::*;
    use crate::util::progress::Shown;

    /// A real command that fails: the error names the command and the log,
    /// and shows the log's last lines as a terminal would.
    #[test]
    fn a_failed_step_names_its_log_and_shows_its_end() {
        let dir = std::env::temp_dir().join(format!("xtask-step-{}", std::process::id()));
        let log = dir.join("apt-get-install.log");
        let exec = Exec::new(false, false).unwrap();
        let sh = exec.sh();
        let script = "printf 'Reading database ... 5%%\\rReading database ... 100%%\\n'; \
                      for i in $(seq 1 20); do echo line $i; done; \
                      echo 'E: Unable to locate package nosuch' >&2; exit 100";
        let mut seen = 0;
        let progress = Progress::new("apt-get install", "", Some(100), Shown::Off);
        let error = run(&exec, cmd!(sh, "sh -c {script}"), &log, progress, |_, _| {
            seen += 1
        })
        .unwrap_err()
        .to_string();
        let written = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(seen, 22);
        assert_eq!(written.lines().count(), 22);
        let mut lines = error.lines();
        let first = lines.next().unwrap();
        assert!(first.starts_with("`sh -c "), "{first}");
        assert!(
            first.ends_with(&format!(
                "` failed (exit status 100); its output is in {}, which ends:",
                log.display()
            )),
            "{first}"
        );
        let tail: Vec<&str> = lines.collect();
        assert_eq!(tail.len(), TAIL);
        assert_eq!(tail[0], "  line 10");
        assert_eq!(tail[TAIL - 1], "  E: Unable to locate package nosuch");
        // dpkg's redrawn count reads as its last state.
        assert_eq!(
            failure("x", "exit status 1", Path::new("l"), "a 5%\ra 100%\n"),
            "`x` failed (exit status 1); its output is in l, which ends:\n  a 100%"
        );
    }
}

//! The one executor every shell-out goes through: it echoes each command
//! shell-quoted, knows about `--dry-run`, and writes generated files.

use std::{
    ffi::OsString,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::fsutil;

/// A command as data: built by pure functions, run by [`Exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
}

impl Command {
    pub fn new(program: impl Into<String>) -> Command {
        Command {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Command {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Command {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Command {
        self.dir = Some(dir.into());
        self
    }

    /// The command as a user would paste it into a POSIX shell.
    pub fn to_shell(&self) -> String {
        let mut words = Vec::new();
        if let Some(dir) = &self.dir {
            words.push(format!("cd {} &&", quote(&dir.display().to_string())));
        }
        for (key, value) in &self.env {
            words.push(format!("{key}={}", quote(value)));
        }
        words.push(quote(&self.program));
        words.extend(self.args.iter().map(|a| quote(a)));
        words.join(" ")
    }

    fn to_xshell<'a>(&self, sh: &'a Shell) -> xshell::Cmd<'a> {
        let mut cmd = sh.cmd(&self.program).args(&self.args).quiet();
        for (key, value) in &self.env {
            cmd = cmd.env(key, value);
        }
        cmd
    }

    /// A std command with no echo: for timing, where the echo is noise.
    pub fn to_std_plain(&self) -> std::process::Command {
        let sh = Shell::new().expect("a shell needs only the current directory");
        self.to_std(&sh)
    }

    fn to_std(&self, sh: &Shell) -> std::process::Command {
        let mut std_cmd: std::process::Command = self.to_xshell(sh).into();
        if let Some(dir) = &self.dir {
            std_cmd.current_dir(dir);
        }
        std_cmd
    }
}

/// POSIX shell quoting: bare when every character is safe, else single quotes.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

pub struct Exec {
    pub sh: Shell,
    pub dry_run: bool,
    pub verbose: bool,
}

impl Exec {
    pub fn new(dry_run: bool, verbose: bool) -> Result<Exec> {
        Ok(Exec {
            sh: Shell::new()?,
            dry_run,
            verbose,
        })
    }

    fn echo(&self, cmd: &Command) {
        eprintln!("$ {}", cmd.to_shell());
    }

    /// Runs `cmd` with inherited stdio; a non-zero exit is an error.
    pub fn run(&self, cmd: &Command) -> Result<()> {
        if self.dry_run {
            self.echo(cmd);
            return Ok(());
        }
        let status = self.status(cmd)?;
        if !status.success() {
            bail!("`{}` failed: {}", cmd.to_shell(), describe(status));
        }
        Ok(())
    }

    /// Runs `cmd` with inherited stdio and returns its exit status.
    pub fn status(&self, cmd: &Command) -> Result<ExitStatus> {
        if self.dry_run {
            self.echo(cmd);
            return Ok(ExitStatus::default());
        }
        self.to_std_echoed(cmd, false)
            .status()
            .with_context(|| format!("cannot start `{}`", cmd.program))
    }

    /// Runs `cmd` even under `--dry-run`: for read-only queries whose answer
    /// decides what the dry run prints.
    pub fn query(&self, cmd: &Command) -> Result<std::process::Output> {
        if self.verbose {
            self.echo(cmd);
        }
        cmd.to_std(&self.sh)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot start `{}`", cmd.program))
    }

    /// Runs `cmd`, capturing its output; a non-zero exit is an error that
    /// carries the tail of the output.
    pub fn capture(&self, cmd: &Command) -> Result<std::process::Output> {
        self.echo(cmd);
        if self.dry_run {
            return Ok(std::process::Output {
                status: ExitStatus::default(),
                stdout: Vec::new(),
                stderr: Vec::new(),
            });
        }
        let output = cmd
            .to_std(&self.sh)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot start `{}`", cmd.program))?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr).into_owned()
                + &String::from_utf8_lossy(&output.stdout);
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "`{}` failed: {}\n{}",
                cmd.to_shell(),
                describe(output.status),
                tail.join("\n")
            );
        }
        Ok(output)
    }

    /// Runs `cmd` with stdout and stderr merged into one line stream, handing
    /// each line to `on_line`. Used where the caller parses progress.
    pub fn stream(&self, cmd: &Command, mut on_line: impl FnMut(&str)) -> Result<ExitStatus> {
        self.echo(cmd);
        if self.dry_run {
            return Ok(ExitStatus::default());
        }
        let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
        let mut std_cmd = cmd.to_std(&self.sh);
        std_cmd
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer);
        let mut child = std_cmd
            .spawn()
            .with_context(|| format!("cannot start `{}`", cmd.program))?;
        // The pipe's write ends live in `std_cmd`; drop it so EOF arrives.
        drop(std_cmd);
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf);
            on_line(line.trim_end_matches(['\n', '\r']));
        }
        Ok(child.wait()?)
    }

    /// Returns a std command for callers that manage the process themselves
    /// (QEMU in the background); it is echoed here.
    pub fn to_std_echoed(&self, cmd: &Command, quiet: bool) -> std::process::Command {
        if !quiet {
            self.echo(cmd);
        }
        cmd.to_std(&self.sh)
    }

    /// Writes a generated file atomically, only when its content changes.
    /// Under `--dry-run` it only says what it would write.
    pub fn write(&self, path: &Path, contents: &str) -> Result<bool> {
        if self.dry_run {
            let unchanged = std::fs::read(path).is_ok_and(|old| old == contents.as_bytes());
            let what = if unchanged {
                "unchanged"
            } else {
                "would write"
            };
            eprintln!("# {what}: {}", path.display());
            return Ok(false);
        }
        fsutil::write_if_changed(path, contents.as_bytes())
    }
}

pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "unknown status".to_string(),
    }
}

/// Looks a program up on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path: OsString = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_is_copy_pastable() {
        let cmd = Command::new("make")
            .arg("O=/tmp/build dir")
            .arg("--eval=include /b/study.mk")
            .arg("-j2")
            .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01 00:00:00")
            .dir("/k");
        assert_eq!(
            cmd.to_shell(),
            "cd /k && KBUILD_BUILD_TIMESTAMP='1970-01-01 00:00:00' make 'O=/tmp/build dir' \
             '--eval=include /b/study.mk' -j2"
        );
    }
}

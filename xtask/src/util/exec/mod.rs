//! The one executor every process starts through: an [`xshell::Shell`]
//! that builds the commands (`cmd!` for fixed lines, its builder for lines
//! made from data), and this wrapper that echoes each one shell-quoted,
//! knows about `--dry-run`, and writes generated files.
//!
//! `--dry-run` lives here and only here: every process, every file written,
//! copied, moved or removed, every lock and every other effect goes through
//! an `Exec` method, which under a dry run says what it would do instead.
//! Callers never ask which kind of run this is.
//!
//! xshell's own `run` echoes with a quoting that is not copy-paste safe and
//! has no dry-run, so commands are converted to `std::process::Command` here
//! and echoed from its getters. Every child is started through
//! [`supervise`](crate::util::supervise): it dies with the tool, and a
//! batch child's whole process group is killed on a bound or a signal.

use std::{
    cell::RefCell,
    collections::BTreeSet,
    ffi::OsStr,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xshell::{Cmd, Shell};

use crate::util::supervise::{Mode, Supervised};

mod files;

pub use files::Sink;

pub struct Exec {
    sh: Shell,
    dry_run: bool,
    pub verbose: bool,
    /// Files a dry run already said it would write: each is said once.
    announced: RefCell<BTreeSet<PathBuf>>,
}

impl Exec {
    pub fn new(dry_run: bool, verbose: bool) -> Result<Exec> {
        Ok(Exec {
            sh: Shell::new()?,
            dry_run,
            verbose,
            announced: RefCell::default(),
        })
    }

    /// The shell commands are built on: `cmd!(exec.sh(), "...")`.
    pub fn sh(&self) -> &Shell {
        &self.sh
    }

    /// The same executor without echo of queries and without dry-run, for
    /// an internal probe whose commands the user did not ask for.
    pub fn quiet(&self) -> Result<Exec> {
        Exec::new(false, false)
    }

    /// Another executor of the same kind (a shell of its own, the same
    /// dry-run and verbosity).
    pub fn again(&self) -> Result<Exec> {
        Exec::new(self.dry_run, self.verbose)
    }

    fn echo(&self, cmd: &std::process::Command) {
        eprintln!("$ {}", to_shell(cmd));
    }

    /// Runs `cmd` with inherited stdio; a non-zero exit is an error.
    pub fn run(&self, cmd: Cmd<'_>) -> Result<()> {
        let cmd = cmd.into();
        if self.dry_run {
            self.echo(&cmd);
            return Ok(());
        }
        let status = self.spawn_status(cmd)?;
        if !status.0.success() {
            bail!("`{}` failed: {}", status.1, describe(status.0));
        }
        Ok(())
    }

    /// Runs `cmd` with inherited stdio and returns its exit status.
    pub fn status(&self, cmd: Cmd<'_>) -> Result<ExitStatus> {
        let cmd = cmd.into();
        if self.dry_run {
            self.echo(&cmd);
            return Ok(ExitStatus::default());
        }
        Ok(self.spawn_status(cmd)?.0)
    }

    /// A child with the terminal (gdb, a shell in the guest, or output the
    /// user watches): in the terminal's process group, so Ctrl-C is its.
    fn spawn_status(&self, cmd: Command) -> Result<(ExitStatus, String)> {
        self.echo(&cmd);
        let text = to_shell(&cmd);
        let name = program(&cmd);
        let mut child = Supervised::spawn(cmd, Mode::Foreground, libc::SIGTERM)
            .with_context(|| format!("cannot start `{name}`"))?;
        Ok((child.wait()?, text))
    }

    /// Runs `cmd` even under `--dry-run`: for read-only queries whose answer
    /// decides what the dry run prints. Echoed only with `-v`.
    pub fn query(&self, cmd: Cmd<'_>) -> Result<Output> {
        let cmd: Command = cmd.into();
        if self.verbose {
            self.echo(&cmd);
        }
        output(cmd, None)
    }

    /// Runs `cmd`, capturing its output; a non-zero exit is an error that
    /// carries the tail of the output.
    pub fn capture(&self, cmd: Cmd<'_>) -> Result<Output> {
        self.capture_with_input(cmd, None)
    }

    /// Runs `cmd` (echoed; not under `--dry-run`) and returns its output,
    /// whatever its exit status: for a caller that explains a failure itself.
    pub fn output(&self, cmd: Cmd<'_>) -> Result<Output> {
        let cmd: Command = cmd.into();
        self.echo(&cmd);
        if self.dry_run {
            return Ok(nothing_run());
        }
        output(cmd, None)
    }

    /// [`Exec::capture`], with `input` on the command's standard input.
    pub fn capture_with_input(&self, cmd: Cmd<'_>, input: Option<Vec<u8>>) -> Result<Output> {
        let cmd: Command = cmd.into();
        self.echo(&cmd);
        if self.dry_run {
            return Ok(nothing_run());
        }
        let text = to_shell(&cmd);
        let output = output(cmd, input)?;
        if !output.status.success() {
            let all = String::from_utf8_lossy(&output.stderr).into_owned()
                + &String::from_utf8_lossy(&output.stdout);
            let tail: Vec<&str> = all.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "`{text}` failed: {}\n{}",
                describe(output.status),
                tail.join("\n")
            );
        }
        Ok(output)
    }

    /// Runs `cmd` with stdout and stderr merged into one line stream, handing
    /// each line to `on_line`. Used where the caller parses progress (make):
    /// xshell only reads a command's output whole, at its end.
    /// make runs in a process group of its own: on a signal the tool sends
    /// it SIGTERM (make then deletes its half-written targets) and, should
    /// the tool die without a word, the parent-death signal does.
    /// A dry run starts nothing: `None`.
    pub fn stream(
        &self,
        cmd: Cmd<'_>,
        mut on_line: impl FnMut(&str),
    ) -> Result<Option<ExitStatus>> {
        let mut cmd: Command = cmd.into();
        self.echo(&cmd);
        if self.dry_run {
            return Ok(None);
        }
        let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
        cmd.stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer);
        let name = program(&cmd);
        let mut child = Supervised::spawn(cmd, Mode::Batch, libc::SIGTERM)
            .with_context(|| format!("cannot start `{name}`"))?;
        // The pipe's write ends lived in `cmd`, now dropped: EOF arrives.
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
        Ok(Some(child.wait()?))
    }

    /// Starts `cmd` in the background with piped stdout and stderr, for a
    /// caller that watches it (QEMU): in a process group of its own, SIGKILLed
    /// when the tool dies or the returned value is dropped.
    /// A dry run starts nothing: `None`.
    pub fn spawn_piped(&self, cmd: Cmd<'_>, quiet: bool) -> Result<Option<Supervised>> {
        let mut cmd: Command = cmd.into();
        if !quiet || self.dry_run {
            self.echo(&cmd);
        }
        if self.dry_run {
            return Ok(None);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let name = program(&cmd);
        Supervised::spawn(cmd, Mode::Batch, libc::SIGKILL)
            .with_context(|| format!("cannot start `{name}`"))
            .map(Some)
    }

    /// Times `cmd` with no echo and no output (a benchmark's echo is noise):
    /// the inner `Err` says why it did not count, a failure or, past
    /// `limit`, a kill.
    /// The whole process group is killed at the bound: virtme-ng's QEMU
    /// with it.
    /// A dry run only shows it, and times nothing: `None`.
    pub fn time(
        &self,
        cmd: Cmd<'_>,
        limit: Option<Duration>,
    ) -> Result<Option<Result<Duration, String>>> {
        let mut cmd: Command = cmd.into();
        if self.dry_run {
            self.echo(&cmd);
            return Ok(None);
        }
        let text = to_shell(&cmd);
        let start = Instant::now();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let name = program(&cmd);
        let mut child = Supervised::spawn(cmd, Mode::Batch, libc::SIGTERM)
            .with_context(|| format!("cannot start `{name}`"))?;
        let stderr = child.child().stderr.take().expect("piped");
        let tail = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let Some(status) = child.wait_for(limit)? else {
            return Ok(Some(Err(format!(
                "killed after {}s",
                limit.unwrap_or_default().as_secs()
            ))));
        };
        let elapsed = start.elapsed();
        let stderr = tail.join().unwrap_or_default();
        Ok(Some(if status.success() {
            Ok(elapsed)
        } else {
            let last: Vec<&str> = stderr.lines().rev().take(5).collect();
            Err(format!(
                "`{text}` failed: {}: {}",
                describe(status),
                last.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ))
        }))
    }

    /// Starts `cmd` in the background with its output appended to `log`,
    /// for a guest whose console the user reads in a file while a debugger
    /// holds the terminal: in a process group of its own, SIGKILLed when the
    /// tool dies or the returned value is dropped.
    /// A dry run starts nothing: `None`.
    pub fn spawn_logged(&self, cmd: Cmd<'_>, log: &Path) -> Result<Option<Supervised>> {
        let mut cmd: Command = cmd.into();
        self.echo(&cmd);
        if self.dry_run {
            return Ok(None);
        }
        if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
            self.create_dir_all(dir)?;
        }
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot write {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let name = program(&cmd);
        Supervised::spawn(cmd, Mode::Batch, libc::SIGKILL)
            .with_context(|| format!("cannot start `{name}`"))
            .map(Some)
    }

    /// Does `effect`, an action on the host that is not a process or a
    /// file (a resource limit, a cleanup, a check of what commands just
    /// made); under a dry run, says `# would {what}` and returns the
    /// default.
    pub fn effect<T: Default>(
        &self,
        what: impl FnOnce() -> String,
        effect: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if self.dry_run {
            let what = what();
            if !what.is_empty() {
                eprintln!("# would {what}");
            }
            return Ok(T::default());
        }
        effect()
    }

    /// A check of what the host has, or of what the commands before it
    /// made; a dry run, which made nothing, skips it (the default).
    pub fn check<T: Default>(&self, check: impl FnOnce() -> Result<T>) -> Result<T> {
        self.effect(String::new, check)
    }

    /// Fails with `fix` unless the tool runs as root; a dry run only says
    /// so.
    pub fn require_root(&self, fix: &str) -> Result<()> {
        if is_root() {
            return Ok(());
        }
        if self.dry_run {
            eprintln!("# needs root: {fix}");
            return Ok(());
        }
        bail!("{fix}")
    }

    /// Fails with `fix` when `program` is not on PATH; a dry run only says
    /// so, since it starts nothing.
    pub fn require(&self, program: &str, fix: &str) -> Result<()> {
        if which(program).is_some() {
            return Ok(());
        }
        if self.dry_run {
            eprintln!("# {program} is not installed: {fix}");
            return Ok(());
        }
        bail!("{program} is not installed: {fix}")
    }
}

/// What a command that `--dry-run` did not run produced.
fn nothing_run() -> Output {
    Output {
        status: ExitStatus::default(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

fn program(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// Runs `cmd` in a process group of its own with `input` (or nothing) on
/// stdin, and collects its output.
fn output(mut cmd: Command, input: Option<Vec<u8>>) -> Result<Output> {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let name = program(&cmd);
    let mut child = Supervised::spawn(cmd, Mode::Batch, libc::SIGTERM)
        .with_context(|| format!("cannot start `{name}`"))?;
    let feeder = input.map(|input| {
        let mut stdin = child.child().stdin.take().expect("piped");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let read = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = from.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = read(Box::new(child.child().stdout.take().expect("piped")));
    let stderr = read(Box::new(child.child().stderr.take().expect("piped")));
    let status = child.wait()?;
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// The command as a user would paste it into a POSIX shell: `cd DIR &&`
/// when it runs elsewhere than here, the environment it sets, then argv.
pub fn to_shell(cmd: &Command) -> String {
    let mut words = Vec::new();
    if let Some(dir) = cmd.get_current_dir() {
        if std::env::current_dir().ok().as_deref() != Some(dir) {
            words.push(format!("cd {} &&", quote_os(dir.as_os_str())));
        }
    }
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), quote_os(value)));
        }
    }
    // The program's word is never an assignment: its `=` is quoted too.
    let program = cmd.get_program().to_string_lossy();
    words.push(if program.contains('=') {
        quoted(&program)
    } else {
        quote(&program)
    });
    words.extend(cmd.get_args().map(quote_os));
    words.join(" ")
}

/// [`to_shell`] of an xshell command: what the builders' tests compare.
#[cfg(test)]
pub fn cmd_text(cmd: Cmd<'_>) -> String {
    to_shell(&cmd.into())
}

fn quote_os(word: &OsStr) -> String {
    quote(&word.to_string_lossy())
}

/// POSIX shell quoting: shell-words' rule, with two changes. `=` is
/// special to the shell only in an assignment before the command, so a
/// word whose pieces between `=`s are bare stays bare (`O=/b/tiny`, not
/// `'O=/b/tiny'`); and a `{` is quoted, as bash would expand `{a,b}`.
pub fn quote(word: &str) -> String {
    let bare = |piece: &str| {
        piece.is_empty() || (!piece.contains('{') && shell_words::quote(piece) == piece)
    };
    if !word.is_empty() && !word.starts_with('=') && word.split('=').all(bare) {
        word.to_string()
    } else {
        quoted(word)
    }
}

/// shell-words' quotes, and single quotes where it would leave the word
/// bare (only a `{` or an `=` brings a bare word here).
fn quoted(word: &str) -> String {
    match shell_words::quote(word) {
        q if q == word => format!("'{word}'"),
        q => q.into_owned(),
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

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks a program up on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

/// This process's PATH with `dir` in front, for a child that runs its
/// siblings by name (a venv's programs).
pub fn search_path_with(dir: &Path) -> Result<std::ffi::OsString> {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::join_paths(
        std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest)),
    )?)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use xshell::cmd;

    use super::*;

    #[test]
    fn a_venv_goes_in_front_of_path() {
        let path = search_path_with(Path::new("/r/target/host-tools/bin")).unwrap();
        let dirs: Vec<_> = std::env::split_paths(&path).collect();
        assert_eq!(dirs[0], Path::new("/r/target/host-tools/bin"));
        let rest: Vec<_> = std::env::split_paths(&std::env::var_os("PATH").unwrap()).collect();
        assert_eq!(dirs[1..], rest[..]);
    }

    #[test]
    fn shell_quoting_is_copy_pastable() {
        let sh = Shell::new().unwrap();
        let dir = "/tmp/build dir";
        let eval = "--eval=include /b/study.mk";
        let jobs = ["-j2"];
        let _d = sh.push_dir("/k");
        let cmd = cmd!(sh, "make O={dir} {eval} {jobs...}")
            .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01 00:00:00");
        assert_eq!(
            cmd_text(cmd),
            "cd /k && KBUILD_BUILD_TIMESTAMP='1970-01-01 00:00:00' make 'O=/tmp/build dir' \
             '--eval=include /b/study.mk' -j2"
        );
    }

    /// What the echo prints, pasted into the real sh and bash, gives back
    /// the same words.
    #[test]
    fn quoted_words_survive_a_real_shell() {
        let words = [
            "O=/b/tiny",
            "CC=ccache gcc",
            "--eval=include /b/x.mk",
            "it's",
            "$HOME",
            "a\nb",
            "~x",
            "x=~y",
            "a=b=c",
            "=",
            "",
            "{a,b}",
            "*.o",
            "tab\there",
            "line\nbreak",
            "é",
            "100%",
            "#c",
            "x;y",
            "`id`",
            "!x",
        ];
        let line = words.map(quote).join(" ");
        for shell in ["sh", "bash"] {
            let Some(shell) = which(shell) else { continue };
            let out = Command::new(shell)
                .args(["-c", &format!("printf '%s\\0' {line}")])
                .output()
                .unwrap();
            assert!(out.status.success(), "{line}");
            let got: Vec<_> = out
                .stdout
                .split(|&b| b == 0)
                .map(String::from_utf8_lossy)
                .collect();
            assert_eq!(got[..words.len()], words[..], "{line}");
        }
        // Bare where nothing is special: make's assignments read as typed.
        assert_eq!(line.split(' ').next(), Some("O=/b/tiny"));
    }
}

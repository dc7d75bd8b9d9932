//! The QEMU Machine Protocol on a guest's Unix socket: where each run's
//! socket lives, which of them a QEMU still answers, and the one command
//! the tool itself sends (`dump-guest-memory`). drgn speaks QMP itself.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{
    ctx::StateDir,
    util::progress::{Progress, Shown},
};

/// The file name's prefix; the run's pid follows, so a dead run's socket
/// is removed with its other files (`supervise::remove_stale`).
const PREFIX: &str = "qmp-";

/// sun_path's size in `struct sockaddr_un`, with its terminating NUL.
const SUN_PATH_MAX: usize = 108;

/// The socket of the run with this pid in `run_dir`, or `None` when the
/// path is too long for a Unix socket (a deep build directory).
pub fn socket_in(run_dir: &Path, pid: u32) -> Option<PathBuf> {
    let path = run_dir.join(format!("{PREFIX}{pid}"));
    fits(&path).then_some(path)
}

fn fits(path: &Path) -> bool {
    path.as_os_str().len() < SUN_PATH_MAX
}

/// The QMP sockets of this build directory's guests that a QEMU answers,
/// oldest first.
pub fn live(state: &StateDir) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state.run()) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| UnixStream::connect(e.path()).is_ok())
        .map(|e| {
            let mtime = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (mtime, e.path())
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

/// The one live guest of `state`, or a line that says what to do.
pub fn the_live_one(state: &StateDir, build_dir: &Path) -> Result<PathBuf> {
    let mut live = live(state);
    match live.len() {
        0 => bail!(
            "no guest of {} is up: start one with `cargo xtask run`, `debug` or `trace` of the \
             same build directory (each opens its QMP socket in {}), or drop --attach",
            build_dir.display(),
            state.run().display()
        ),
        1 => Ok(live.remove(0)),
        _ => bail!(
            "{} guests of {} are up ({}); give the one to read with --qmp SOCKET",
            live.len(),
            build_dir.display(),
            live.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A QMP session, past the capabilities negotiation.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// How long QEMU has to greet a new client. It serves one QMP client at a
/// time, and a second one waits unanswered until the first leaves.
const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

impl Qmp {
    /// A session whose commands may take up to `timeout` each.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("QMP socket {}: cannot connect", socket.display()))?;
        stream.set_read_timeout(Some(GREETING_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read().with_context(|| {
            format!(
                "QMP socket {}: no greeting within {} s (is another client, such as drgn, attached?)",
                socket.display(),
                GREETING_TIMEOUT.as_secs()
            )
        })?;
        if greeting.get("QMP").is_none() {
            bail!(
                "QMP socket {}: not a QMP greeting: {greeting}",
                socket.display()
            );
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        qmp.writer.set_read_timeout(Some(timeout))?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("QMP connection closed");
        }
        Ok(serde_json::from_str(&line)?)
    }

    /// Runs one command and returns its `return` value; events that arrive
    /// meanwhile are skipped.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let request = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{request}")?;
        loop {
            let reply = self.read()?;
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                bail!(
                    "QMP {command}: {}",
                    error
                        .get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error")
                );
            }
        }
    }
}

/// `dump-guest-memory` as drgn and crash read it: an ELF vmcore of guest
/// physical memory, with the guest's VMCOREINFO note, written by QEMU to
/// `file` (an absolute path). Detached, so that `query-dump` tells how
/// far it is (bytes written of the total) for the progress display.
pub fn dump_guest_memory(socket: &Path, file: &Path) -> Result<()> {
    // A 1 GiB guest takes seconds under load.
    let bound = Duration::from_secs(600);
    let mut qmp = Qmp::connect(socket, bound)?;
    qmp.execute(
        "dump-guest-memory",
        json!({ "paging": false, "detach": true, "protocol": format!("file:{}", file.display()) }),
    )?;
    let mut progress = Progress::new("vmcore", "MB", None, Shown::detect());
    let start = std::time::Instant::now();
    loop {
        let state = DumpState::of(&qmp.execute("query-dump", json!({}))?);
        if state.total > 0 {
            progress.set(|s| s.total = Some(state.total / 1_000_000));
            progress.at(state.completed / 1_000_000);
        }
        match state.status.as_str() {
            "completed" => break,
            "failed" => bail!("QEMU could not write the vmcore {}", file.display()),
            _ if start.elapsed() > bound => {
                bail!(
                    "QEMU's dump to {} took over {}s",
                    file.display(),
                    bound.as_secs()
                )
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    progress.finish();
    Ok(())
}

/// What `query-dump` says: `active`, `completed`, `failed` (or `none`),
/// and the bytes written of the total.
#[derive(Debug, PartialEq, Eq)]
struct DumpState {
    status: String,
    completed: u64,
    total: u64,
}

impl DumpState {
    fn of(reply: &Value) -> DumpState {
        DumpState {
            status: reply["status"].as_str().unwrap_or("none").to_string(),
            completed: reply["completed"].as_u64().unwrap_or(0),
            total: reply["total"].as_u64().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_dump_as_qemu_says_it() {
        let reply = json!({"status": "active", "completed": 1048576, "total": 1073741824});
        assert_eq!(
            DumpState::of(&reply),
            DumpState {
                status: "active".into(),
                completed: 1048576,
                total: 1073741824
            }
        );
        assert_eq!(DumpState::of(&json!({})).status, "none");
    }

    #[test]
    fn a_socket_path_too_long_for_sun_path_is_refused() {
        assert!(socket_in(Path::new("/b/tiny/.study/run"), 42).is_some());
        let deep = PathBuf::from(format!("/{}", "d".repeat(100)));
        assert_eq!(socket_in(&deep, 42), None);
    }

    /// A real Unix socket with a QMP-speaking peer: the greeting, the
    /// capabilities, an event before the reply, and an error.
    #[test]
    fn commands_skip_events_and_name_errors() {
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("qmp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut lines = BufReader::new(stream).lines();
            writeln!(out, r#"{{"QMP": {{"version": {{}}}}}}"#).unwrap();
            assert!(lines.next().unwrap().unwrap().contains("qmp_capabilities"));
            writeln!(out, r#"{{"return": {{}}}}"#).unwrap();
            assert!(lines.next().unwrap().unwrap().contains("query-status"));
            writeln!(out, r#"{{"event": "STOP"}}"#).unwrap();
            writeln!(out, r#"{{"return": {{"status": "debug"}}}}"#).unwrap();
            assert!(lines.next().unwrap().unwrap().contains("nonsense"));
            writeln!(
                out,
                r#"{{"error": {{"class": "CommandNotFound", "desc": "The command nonsense has not been found"}}}}"#
            )
            .unwrap();
        });
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        let status = qmp.execute("query-status", json!({})).unwrap();
        assert_eq!(status["status"], "debug");
        let err = qmp.execute("nonsense", json!({})).unwrap_err().to_string();
        assert_eq!(err, "QMP nonsense: The command nonsense has not been found");
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

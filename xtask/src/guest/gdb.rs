//! The gdb session file: load vmlinux and the kernel's gdb scripts, connect
//! to the guest's stub, and set breakpoints that land after the prologue
//! (`study-break`, from study/gdb/study.py).

use std::{
    path::{Path, PathBuf},
    process::ExitStatus,
};

use anyhow::{bail, Result};
use xshell::{cmd, Cmd};

use crate::{
    ctx::Prepared,
    guest::freebsd_guest::{GdbSetup, GuestData},
    study::host_tools,
    util::exec::{which, Exec},
};

/// Everything the script needs, so the builder stays pure.
pub struct Session<'a> {
    pub build_dir: &'a Path,
    pub tree: &'a Path,
    pub study_py: &'a Path,
    pub port: u16,
    /// Commands before connecting (UML: read libraries locally, pass its
    /// own signals through).
    pub before_connect: &'a [String],
    pub modules: bool,
    /// vmlinux-gdb.py exists (CONFIG_GDB_SCRIPTS).
    pub gdb_scripts: bool,
    pub hardware: bool,
    pub breaks: &'a [String],
    pub only_comm: Option<&'a str>,
    pub scripts: &'a [std::path::PathBuf],
    pub batch: &'a [String],
    /// gdb's index cache, in this folder: see [`GdbRequest::index_cache`].
    pub index_cache: Option<&'a Path>,
    /// Created at the first continue: see [`GdbRequest::release`].
    pub release: Option<&'a Path>,
    /// A FreeBSD kernel's file, setup and helpers (guest::freebsd_guest), for
    /// vmlinux and its scripts.
    pub freebsd: Option<&'a GdbSetup>,
    /// `study-record` at the first stop: see [`GdbRequest::record`].
    pub record: bool,
    /// See [`GdbRequest::no_reverse`].
    pub no_reverse: Option<&'a str>,
}

/// gdb's reverse commands, each of which [`GdbRequest::no_reverse`] hooks.
const REVERSE: [&str; 6] = [
    "reverse-step",
    "reverse-next",
    "reverse-stepi",
    "reverse-nexti",
    "reverse-continue",
    "reverse-finish",
];

/// The gdb script: load vmlinux and its helpers, connect, break, continue;
/// with batch commands, run them at the first stop, then detach.
pub fn script(s: &Session) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line("set pagination off".into());
    line("set confirm off".into());
    if let Some(dir) = s.index_cache {
        line(format!("set index-cache directory {}", dir.display()));
        line("set index-cache enabled on".into());
    }
    line(format!("add-auto-load-safe-path {}", s.build_dir.display()));
    if let Some(fb) = s.freebsd {
        for l in &fb.setup {
            line(l.clone());
        }
    }
    let kernel = s
        .freebsd
        .map_or(s.build_dir.join("vmlinux"), |fb| fb.file.clone());
    line(format!("file {}", kernel.display()));
    // Our helpers first: `study-safe` reports a failing helper command and
    // goes on, so the breakpoints and -x scripts below are never dropped.
    line(format!("source {}", s.study_py.display()));
    for helper in s.freebsd.map_or(&[][..], |fb| &fb.helpers) {
        line(format!("study-safe source {}", helper.display()));
    }
    if s.gdb_scripts {
        line(format!(
            "study-safe source {}",
            s.build_dir.join("vmlinux-gdb.py").display()
        ));
    }
    line(format!("directory {}", s.tree.display()));
    for command in s.before_connect {
        line(command.clone());
    }
    if let Some(why) = s.no_reverse {
        // A hook that fails stops its command; gdb's own recording
        // (study-record) still answers (study.py's study-no-reverse).
        let why = why.replace('\n', " ");
        for command in REVERSE {
            line(format!("define hook-{command}"));
            line(format!("study-no-reverse {why}"));
            line("end".into());
        }
    }
    line(format!("target remote 127.0.0.1:{}", s.port));
    if let Some(release) = s.release {
        // Right after connecting, before anything that can fail and end
        // the script: a `continue` typed after an error releases it too.
        line(format!("study-release-on-continue {}", release.display()));
    }
    if s.modules && s.gdb_scripts {
        // Under --wait-gdb the CPU is still at the reset vector here:
        // module symbols load at the first stop where the kernel is up.
        line(format!("study-modules {}", s.build_dir.display()));
    }
    let only = s
        .only_comm
        .and_then(comm_word)
        .map_or(String::new(), |comm| format!("-c {comm} "));
    for name in s.breaks {
        line(format!(
            "study-break {}{only}{name}",
            if s.hardware { "-h " } else { "" }
        ));
    }
    for script in s.scripts {
        line(format!("source {}", script.display()));
    }
    if !s.breaks.is_empty() {
        line("continue".into());
        if s.record {
            line("study-record".into());
        }
    }
    if !s.batch.is_empty() {
        for cmd in s.batch {
            line(cmd.clone());
        }
        line("delete".into());
        line("detach".into());
        line("quit".into());
    }
    out
}

/// What the user asked gdb to do.
pub struct GdbRequest<'a> {
    pub port: u16,
    pub hardware: bool,
    pub breaks: &'a [String],
    /// Stop at the breaks only in tasks of this name (`comm`): a word
    /// checked by [`comm_word`].
    pub only_comm: Option<&'a str>,
    pub scripts: &'a [PathBuf],
    pub batch: &'a [String],
    /// gdb's index cache: on a 250 MB vmlinux the first session writes it
    /// (about 2.4 s more, on `study`), and each later one of the same
    /// vmlinux starts about 1.2 s sooner. On for a vmlinux that did not
    /// change since the last build; off in the edit loop, where each
    /// vmlinux is new and would only pay.
    pub index_cache: bool,
    /// The guest's held command starts once gdb creates this file, which
    /// it does as it first continues (`hold::release_file`).
    pub release: Option<&'a Path>,
    /// gdb's process record from the first stop (`study-record`), so that
    /// reverse commands go back to it at once: `debug --record`.
    pub record: bool,
    /// Reverse commands fail with this line unless gdb's own recording
    /// answers them: a replay on a QEMU that cannot run backwards.
    pub no_reverse: Option<String>,
}

/// A task name fit for the session file: letters, digits, `_`, `-`, `.`,
/// at most the kernel's 15 characters; anything else is refused, since the
/// file is gdb script.
pub fn comm_word(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    ok.then_some(name)
}

/// Writes the session file for `p` and runs gdb on it, interactive or with
/// `-batch`; returns gdb's exit status.
pub fn run_gdb(
    exec: &Exec,
    p: &Prepared,
    study_dir: &Path,
    req: &GdbRequest,
) -> Result<ExitStatus> {
    let cmd = gdb_command(exec, p, study_dir, req)?;
    exec.status(cmd)
}

/// The gdb command line for `req`, its session file written.
pub fn gdb_command<'a>(
    exec: &'a Exec,
    p: &Prepared,
    study_dir: &Path,
    req: &GdbRequest,
) -> Result<Cmd<'a>> {
    host_tools::require(study_dir, "gdb", &p.arch.name)?;
    let freebsd = match &p.freebsd {
        Some(_) => Some(
            GuestData::load(study_dir)?
                .gdb
                .setup(&p.tree.path, &p.build_dir),
        ),
        None => None,
    };
    let kernel = freebsd
        .as_ref()
        .map_or(p.build_dir.join("vmlinux"), |fb| fb.file.clone());
    if !kernel.is_file() {
        bail!(
            "no {} in {}: run `cargo xtask build --profile {}`",
            kernel.file_name().unwrap_or_default().to_string_lossy(),
            p.build_dir.display(),
            p.profile.name
        );
    }
    let modules = freebsd.is_none() && p.config()?.get("MODULES") == "y";
    let study_py = study_dir.join("gdb/study.py");
    let index_cache = if req.index_cache {
        let dir = p.state().gdb_index_cache();
        exec.create_dir_all(&dir)?;
        keep_newest_indexes(exec, &dir)?;
        Some(dir)
    } else {
        None
    };
    let session = Session {
        build_dir: &p.build_dir,
        tree: &p.tree.path,
        study_py: &study_py,
        port: req.port,
        before_connect: p.arch.uml.as_ref().map_or(&[], |u| u.gdb_init.as_slice()),
        modules,
        gdb_scripts: p.build_dir.join("vmlinux-gdb.py").exists(),
        hardware: req.hardware,
        breaks: req.breaks,
        only_comm: req.only_comm,
        scripts: req.scripts,
        batch: req.batch,
        index_cache: index_cache.as_deref(),
        release: req.release,
        freebsd: freebsd.as_ref(),
        record: req.record,
        no_reverse: req.no_reverse.as_deref(),
    };
    let text = script(&session);
    let script_path = p.state().gdb().join(format!("session-{}.gdb", req.port));
    exec.write_showing(&script_path, &text)?;
    let gdb = p.arch.gdb()?;
    let gdb = which(&gdb).map_or(gdb, |g| g.display().to_string());
    let sh = exec.sh();
    let version = exec.query(cmd!(sh, "{gdb} --version")).ok();
    if let Some(v) = version.and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .map(String::from)
    }) {
        eprintln!("gdb: {gdb} ({v})");
    }
    let batch = (!req.batch.is_empty()).then_some("-batch");
    // A held guest boots while gdb reads vmlinux, and on 2 cores they share
    // the CPUs: the boot is the longer of the two, so gdb yields to it
    // (study 9.68 s against 9.99 s from edit to stop, docs/src/measurements.md).
    Ok(if req.release.is_some() {
        cmd!(sh, "nice -n 10 {gdb} -q {batch...} -x {script_path}")
    } else {
        cmd!(sh, "{gdb} -q {batch...} -x {script_path}")
    })
}

/// gdb names each index by the vmlinux's build ID, and each link makes a
/// new one (36 MB on `study`): the newest two stay.
fn keep_newest_indexes(exec: &Exec, dir: &Path) -> Result<()> {
    let mut indexes: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".gdb-index"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    indexes.sort();
    let old = indexes.len().saturating_sub(2);
    for (_, path) in indexes.into_iter().take(old) {
        exec.remove_all(&path)?;
    }
    Ok(())
}

/// A port on 127.0.0.1 that nothing listens on now, for a gdb stub.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| anyhow::anyhow!("no free port on 127.0.0.1: {e}"))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session on `build_dir` of /src/linux at port 1234, with nothing
    /// asked for: each test sets what it checks.
    fn session(build_dir: &'static str) -> Session<'static> {
        Session {
            build_dir: Path::new(build_dir),
            tree: Path::new("/src/linux"),
            study_py: Path::new("/r/study/gdb/study.py"),
            port: 1234,
            before_connect: &[],
            modules: false,
            gdb_scripts: false,
            hardware: false,
            breaks: &[],
            only_comm: None,
            scripts: &[],
            batch: &[],
            index_cache: None,
            release: None,
            freebsd: None,
            record: false,
            no_reverse: None,
        }
    }

    #[test]
    fn a_task_name_is_a_plain_word_or_nothing() {
        assert_eq!(comm_word("tun-peer"), Some("tun-peer"));
        assert_eq!(comm_word("a b"), None);
        assert_eq!(comm_word("x\ncontinue"), None);
        assert_eq!(comm_word("sixteen-chars-xx"), None);
    }

    #[test]
    fn batch_script() {
        let breaks = vec!["tcp_sendmsg".to_string()];
        let batch = vec!["bt".to_string(), "info args".to_string()];
        let s = Session {
            gdb_scripts: true,
            breaks: &breaks,
            batch: &batch,
            ..session("/b/tiny")
        };
        expect_test::expect![[r#"
            set pagination off
            set confirm off
            add-auto-load-safe-path /b/tiny
            file /b/tiny/vmlinux
            source /r/study/gdb/study.py
            study-safe source /b/tiny/vmlinux-gdb.py
            directory /src/linux
            target remote 127.0.0.1:1234
            study-break tcp_sendmsg
            continue
            bt
            info args
            delete
            detach
            quit
        "#]]
        .assert_eq(&script(&s));
        // With the index cache: set before vmlinux is read.
        let cached = Session {
            index_cache: Some(Path::new("/b/tiny/.study/gdb-index")),
            ..s
        };
        let text = script(&cached);
        let lines: Vec<&str> = text.lines().collect();
        let file = lines.iter().position(|l| l.starts_with("file ")).unwrap();
        assert_eq!(
            &lines[2..4],
            [
                "set index-cache directory /b/tiny/.study/gdb-index",
                "set index-cache enabled on"
            ]
        );
        assert!(file > 3);
    }

    /// A FreeBSD kernel: the OS ABI and the sources' prefix set before
    /// kernel.full is read, the tree's helpers sourced safely, no vmlinux
    /// scripts.
    #[test]
    fn a_freebsd_session() {
        let breaks = vec!["tcp_output".to_string()];
        let data = GuestData::load(&crate::study::shipped()).unwrap().gdb;
        let fb = data.setup(Path::new("/src/fb"), Path::new("/b/study-freebsd"));
        let s = Session {
            tree: Path::new("/src/fb"),
            breaks: &breaks,
            freebsd: Some(&fb),
            ..session("/b/study-freebsd")
        };
        expect_test::expect![[r#"
            set pagination off
            set confirm off
            add-auto-load-safe-path /b/study-freebsd
            set osabi none
            set substitute-path /usr/src /src/fb
            file /b/study-freebsd/kernel.full
            source /r/study/gdb/study.py
            study-safe source /src/fb/sys/tools/kernel-gdb.py
            directory /src/fb
            target remote 127.0.0.1:1234
            study-break tcp_output
            continue
        "#]]
        .assert_eq(&script(&s));
    }

    /// The held command is released by the first continue, whether the
    /// script's own or one typed after a failing line ended the script.
    #[test]
    fn with_modules_the_symbols_wait_for_the_kernel() {
        let breaks = vec!["tcp_sendmsg_locked".to_string()];
        let scripts = vec![PathBuf::from("/home/me/mine.gdb")];
        let s = Session {
            modules: true,
            gdb_scripts: true,
            breaks: &breaks,
            scripts: &scripts,
            release: Some(Path::new("/b/study/.study/run/release-1234-99")),
            ..session("/b/study")
        };
        expect_test::expect![[r#"
            set pagination off
            set confirm off
            add-auto-load-safe-path /b/study
            file /b/study/vmlinux
            source /r/study/gdb/study.py
            study-safe source /b/study/vmlinux-gdb.py
            directory /src/linux
            target remote 127.0.0.1:1234
            study-release-on-continue /b/study/.study/run/release-1234-99
            study-modules /b/study
            study-break tcp_sendmsg_locked
            source /home/me/mine.gdb
            continue
        "#]]
        .assert_eq(&script(&s));
    }

    /// A replay on a QEMU that cannot reverse: each reverse command is
    /// hooked before connecting, and the hook lets gdb's own record answer.
    #[test]
    fn reverse_commands_are_refused_with_the_line_given() {
        let s = Session {
            no_reverse: Some("QEMU 7.2 \"cannot\""),
            ..session("/b/tiny")
        };
        let text = script(&s);
        let at = |l: &str| text.lines().position(|x| x == l).unwrap();
        for command in REVERSE {
            assert!(at(&format!("define hook-{command}")) < at("target remote 127.0.0.1:1234"));
        }
        assert!(
            text.contains("define hook-reverse-next\nstudy-no-reverse QEMU 7.2 \"cannot\"\nend\n"),
            "{text}"
        );
    }

    /// UML's commands come before the connection: gdb reads the libraries
    /// of the kernel process locally and lets its own signals through.
    #[test]
    fn uml_signals_are_handled_before_connecting() {
        let study = crate::study::shipped();
        let uml = crate::study::arch::Arch::load(&study, "um")
            .unwrap()
            .uml
            .unwrap();
        let s = Session {
            before_connect: &uml.gdb_init,
            ..session("/b/tiny-um")
        };
        let text = script(&s);
        let at = |l: &str| text.lines().position(|x| x == l).unwrap();
        assert!(at("set sysroot /") < at("target remote 127.0.0.1:1234"));
        assert!(at("handle SIGSEGV nostop noprint pass") < at("target remote 127.0.0.1:1234"));
    }
}

//! The gdb session file: load vmlinux and the kernel's gdb scripts, connect
//! to the guest's stub, and set breakpoints that land after the prologue
//! (`study-break`, from study/gdb/study.py).

use std::path::Path;

/// Everything the script needs, so the builder stays pure.
pub struct Session<'a> {
    pub build_dir: &'a Path,
    pub tree: &'a Path,
    pub study_py: &'a Path,
    pub port: u16,
    pub modules: bool,
    /// vmlinux-gdb.py exists (CONFIG_GDB_SCRIPTS).
    pub gdb_scripts: bool,
    pub hardware: bool,
    pub breaks: &'a [String],
    pub scripts: &'a [std::path::PathBuf],
    pub batch: &'a [String],
}

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
    line(format!("add-auto-load-safe-path {}", s.build_dir.display()));
    line(format!("file {}", s.build_dir.join("vmlinux").display()));
    if s.gdb_scripts {
        line(format!(
            "source {}",
            s.build_dir.join("vmlinux-gdb.py").display()
        ));
    }
    line(format!("directory {}", s.tree.display()));
    line(format!("source {}", s.study_py.display()));
    line(format!("target remote 127.0.0.1:{}", s.port));
    if s.modules && s.gdb_scripts {
        line("lx-symbols".into());
    }
    for name in s.breaks {
        line(format!(
            "study-break {}{name}",
            if s.hardware { "-h " } else { "" }
        ));
    }
    for script in s.scripts {
        line(format!("source {}", script.display()));
    }
    if !s.breaks.is_empty() {
        line("continue".into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_script() {
        let breaks = vec!["tcp_sendmsg".to_string()];
        let batch = vec!["bt".to_string(), "info args".to_string()];
        let s = Session {
            build_dir: Path::new("/b/tiny"),
            tree: Path::new("/src/linux"),
            study_py: Path::new("/r/study/gdb/study.py"),
            port: 1234,
            modules: false,
            gdb_scripts: true,
            hardware: false,
            breaks: &breaks,
            scripts: &[],
            batch: &batch,
        };
        expect_test::expect![[r#"
            set pagination off
            set confirm off
            add-auto-load-safe-path /b/tiny
            file /b/tiny/vmlinux
            source /b/tiny/vmlinux-gdb.py
            directory /src/linux
            source /r/study/gdb/study.py
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
    }
}

//! What the integration tests share: the kernel tree (Debian's tarball,
//! unpacked once into `target/kernel-test/`), `cargo xtask` as a child
//! process, and the cached `tiny` build. Each test binary uses part of it.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{LazyLock, Mutex, MutexGuard},
    time::SystemTime,
};

pub mod live;
pub mod reverse;

pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// study/study.toml as shipped.
pub fn shipped_profiles() -> String {
    std::fs::read_to_string(repo().join("study/study.toml")).unwrap()
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn cache() -> PathBuf {
    repo().join("target/kernel-test")
}

pub fn xtask(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("run xtask");
    eprintln!(
        "$ cargo xtask {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// The cached `tiny` build's tree and directory, as strings for argv.
pub static TINY: LazyLock<(String, String)> = LazyLock::new(|| {
    (
        kernel().display().to_string(),
        cache().join("build-tiny").display().to_string(),
    )
});

/// `cargo xtask COMMAND` on the cached `tiny` build.
pub fn on_tiny(command: &'static str) -> Vec<&'static str> {
    let (tree, dir) = &*TINY;
    on_build(command, tree, dir)
}

/// `cargo xtask COMMAND` for `tiny` on the test tree, in `dir`.
pub fn on_build<'a>(command: &'a str, tree: &'a str, dir: &'a str) -> Vec<&'a str> {
    vec![
        command,
        "--profile",
        "tiny",
        "--kernel",
        tree,
        "--build-dir",
        dir,
    ]
}

/// What `trace FUNC --chain` printed below FUNC's line: one line a layer.
pub fn chain_lines<'a>(stdout: &'a str, function: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{function}: ")))
        .skip(1)
        .collect()
}

/// The chain's layers are `layers`, and `order`'s functions come in that
/// order along it.
pub fn assert_chain(stdout: &str, function: &str, layers: &[&str], order: &[&str]) {
    let chain = chain_lines(stdout, function);
    let found: Vec<&str> = chain
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(found, layers, "{stdout}");
    let joined = chain.join(" ");
    let positions: Vec<usize> = order
        .iter()
        .map(|n| {
            joined
                .find(&format!("{n} "))
                .unwrap_or_else(|| panic!("{n} in {joined}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{joined}");
}

/// The unpacked tree, made once: from Debian's tarball (the tool's own
/// `kernel --tarball`, which unpacks beside the tree and renames), else a
/// copy of the checked-out submodule. Under a lock of the harness, since
/// test binaries of several checkouts may share the cache (a symlink).
pub fn kernel() -> PathBuf {
    let tree = cache().join("linux");
    if tree.join("Makefile").is_file() {
        return tree;
    }
    let tarball = std::env::var("LINUX_STUDY_TARBALL")
        .unwrap_or_else(|_| "/usr/src/linux-source-6.12.tar.xz".into());
    std::fs::create_dir_all(cache()).unwrap();
    fill_tree(&tree, |tmp| {
        if Path::new(&tarball).is_file() {
            let out = xtask(&[
                "kernel",
                "--kernel",
                tmp.to_str().unwrap(),
                "--tarball",
                &tarball,
            ]);
            return out.status.success();
        }
        // Where Debian's tarball is not to be had (GitHub's Ubuntu
        // runners), the checked-out submodule is the tree.
        let submodule = repo().join("kernel");
        assert!(
            submodule.join("Makefile").is_file(),
            "{tarball} is missing and kernel/ is empty: apt-get install linux-source-6.12 \
             (or set LINUX_STUDY_TARBALL, or git submodule update --init --depth 1 kernel)"
        );
        Command::new("cp")
            .arg("-a")
            .arg(&submodule)
            .arg(tmp)
            .status()
            .unwrap()
            .success()
    });
    tree
}

/// Makes `dest` once with `fill`, which writes a directory at the path it
/// is given (absent when called): there, a sibling of `dest`, then renamed
/// to `dest`, all under an exclusive lock (flock(2), released when the
/// process dies), so `dest` either is whole or is not there. A fill that
/// fails, panics or is killed leaves no `dest`; the next call starts over.
pub fn fill_tree(dest: &Path, fill: impl FnOnce(&Path) -> bool) {
    use std::os::fd::AsRawFd;
    let name = dest.file_name().unwrap().to_string_lossy().into_owned();
    let parent = dest.parent().unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(parent.join(format!(".{name}.harness-lock")))
        .unwrap();
    // SAFETY: flock on a descriptor this function owns until it returns.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock: {}", std::io::Error::last_os_error());
    if dest.join("Makefile").is_file() {
        // Made by another process while this one waited.
        return;
    }
    let tmp = parent.join(format!(".{name}.filling"));
    // What a killed fill left.
    let _ = std::fs::remove_dir_all(&tmp);
    let filled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fill(&tmp)));
    if !matches!(filled, Ok(true)) {
        let _ = std::fs::remove_dir_all(&tmp);
        match filled {
            Err(panic) => std::panic::resume_unwind(panic),
            _ => panic!("could not make {}", dest.display()),
        }
    }
    assert!(
        tmp.join("Makefile").is_file(),
        "{} has no Makefile",
        tmp.display()
    );
    // A dest without a Makefile is what an earlier, unlocked harness left.
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&tmp, dest).unwrap();
}

/// A field of the tree's top Makefile (`VERSION = 6`), empty when absent.
fn makefile_field(name: &str) -> String {
    let makefile = std::fs::read_to_string(kernel().join("Makefile")).unwrap();
    makefile
        .lines()
        .take(20)
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

/// The tree's release, `6.12`: VERSION and PATCHLEVEL of its Makefile.
pub fn release() -> String {
    format!(
        "{}.{}",
        makefile_field("VERSION"),
        makefile_field("PATCHLEVEL")
    )
}

/// The tree's full version as Kbuild spells it (`6.12.118`, `6.13-rc1`):
/// the release, SUBLEVEL unless 0, then EXTRAVERSION.
pub fn version() -> String {
    let sublevel = makefile_field("SUBLEVEL");
    let sublevel = match sublevel.as_str() {
        "" | "0" => String::new(),
        n => format!(".{n}"),
    };
    format!("{}{sublevel}{}", release(), makefile_field("EXTRAVERSION"))
}

/// The line number of the first line of the tree's `file` that matches
/// `pattern`, as `file:N`.
pub fn tree_line(file: &str, pattern: &str) -> String {
    let text = std::fs::read_to_string(kernel().join(file)).unwrap();
    let re = regex::Regex::new(pattern).unwrap();
    let n = text
        .lines()
        .position(|l| re.is_match(l))
        .unwrap_or_else(|| panic!("no line of {file} matches {pattern}"));
    format!("{file}:{}", n + 1)
}

/// A libtest-mimic trial of a test function that panics on failure.
pub fn trial(name: &'static str, f: fn()) -> libtest_mimic::Trial {
    libtest_mimic::Trial::test(name, move || {
        std::panic::catch_unwind(f).map_err(|e| failed(&e))
    })
}

/// A caught panic as libtest-mimic's failure, with the panic's message.
pub fn failed(panic: &Box<dyn std::any::Any + Send>) -> libtest_mimic::Failed {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    libtest_mimic::Failed::from(text)
}

pub fn config(profile: &str, build_dir: &Path, profiles: Option<&Path>) -> Output {
    match profiles {
        Some(p) => config_with(profile, build_dir, &["--profiles", p.to_str().unwrap()]),
        None => config_with(profile, build_dir, &[]),
    }
}

/// `cargo xtask config` on the test tree, with extra flags.
pub fn config_with(profile: &str, build_dir: &Path, extra: &[&str]) -> Output {
    let tree = kernel();
    let mut args = vec![
        "config",
        "--kernel",
        tree.to_str().unwrap(),
        "--profile",
        profile,
    ];
    args.extend(["--build-dir", build_dir.to_str().unwrap()]);
    args.extend(extra);
    xtask(&args)
}

/// The requested options of a shipped profile, read from study.toml as
/// `.config` would spell them.
pub fn requested(profile: &str) -> BTreeMap<String, String> {
    let text = shipped_profiles();
    let file: toml::Table = text.parse().unwrap();
    let options = file["profile"][profile]["options"].as_table().unwrap();
    options
        .iter()
        .map(|(k, v)| {
            let value = match v {
                toml::Value::Boolean(true) => "y".to_string(),
                toml::Value::Boolean(false) => "n".to_string(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::String(s) => format!("\"{s}\""),
                other => panic!("{other:?}"),
            };
            (k.clone(), value)
        })
        .collect()
}

pub fn dot_config(build_dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(build_dir.join(".config")).unwrap();
    let mut map = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("CONFIG_") {
            let (k, v) = rest.split_once('=').unwrap();
            map.insert(k.to_string(), v.to_string());
        } else if let Some(name) = line
            .strip_prefix("# CONFIG_")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            map.insert(name.to_string(), "n".to_string());
        }
    }
    map
}

/// The modification time of every file under `dir` but the directory's
/// lock, which records each command that takes it.
pub fn mtimes(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let lock = dir.join(".study/lock");
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path() != lock)
        .map(|e| {
            (
                e.path().to_path_buf(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect()
}

/// Whether a build directory's `.study/fallbacks.toml` records `object`
/// moved from the rule level `from` to `to`, whatever else the record says
/// (its reason, an earlier level).
pub fn recorded_move(fallbacks: &str, object: &str, from: &str, to: &str) -> bool {
    let table: toml::Table = toml::from_str(fallbacks).expect("fallbacks.toml is TOML");
    let record = &table["object"].get(object).and_then(|o| o.get(from));
    record.is_some_and(|r| {
        r.get("from").and_then(|v| v.as_str()) == Some(from)
            && r.get("to").and_then(|v| v.as_str()) == Some(to)
    })
}

/// The compiler a plain `gcc` build is measured as, `gcc-12`: the major
/// version gcc itself reports, as study/fallback.toml keys its known data.
pub fn gcc_name() -> String {
    let out = Command::new("gcc")
        .arg("-dumpversion")
        .output()
        .expect("gcc");
    let version = String::from_utf8_lossy(&out.stdout);
    format!("gcc-{}", version.trim().split('.').next().unwrap())
}

/// study/fallback.toml as shipped.
pub fn fallback_data() -> toml::Table {
    let text = std::fs::read_to_string(repo().join("study/fallback.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

/// The known move of `object` from `rule_level` in study/fallback.toml,
/// for this tree's release, plain gcc and x86_64: (to, why).
pub fn known_move(object: &str, rule_level: &str) -> Option<(String, String)> {
    let data = fallback_data();
    let entry = data
        .get("known")?
        .get(release())?
        .get(gcc_name())?
        .get("x86_64")?
        .get(object)?;
    let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).unwrap().to_string();
    (field("from") == rule_level).then(|| (field("to"), field("why")))
}

/// Where `object`, whose rule says `rule_level`, builds in `build_dir`,
/// read from the data and not from the tool: the move its
/// `.study/fallbacks.toml` recorded under that level, else the known move
/// of study/fallback.toml, else the rule's level; with the override's
/// comment that says why, as the make fragment writes it.
pub fn expected_step(build_dir: &Path, object: &str, rule_level: &str) -> (String, Option<String>) {
    let recorded = std::fs::read_to_string(build_dir.join(".study/fallbacks.toml"))
        .map(|t| toml::from_str::<toml::Table>(&t).unwrap())
        .unwrap_or_default();
    if let Some(r) = recorded
        .get("object")
        .and_then(|o| o.get(object))
        .and_then(|o| o.get(rule_level))
    {
        let field = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap().to_string();
        let why = format!(
            "# fallback {}→{}: {}",
            field("from"),
            field("to"),
            field("reason")
        );
        return (field("to"), Some(why));
    }
    if let Some((to, why)) = known_move(object, rule_level) {
        let line = format!("# known {rule_level}→{to} (study/fallback.toml): {why}");
        return (to, Some(line));
    }
    (rule_level.to_string(), None)
}

/// The level the DWARF shows for a step of the ladder: a step of
/// study/fallback.toml's `[step.NAME]` has its `level`; a bare level is
/// itself.
pub fn level_of(step: &str) -> String {
    fallback_data()
        .get("step")
        .and_then(|s| s.get(step))
        .and_then(|s| s.get("level"))
        .and_then(|l| l.as_str())
        .unwrap_or(step)
        .to_string()
}

/// The `tiny` profile, built once into the cache (the first run pays about
/// five minutes on two cores; later runs find it built).
pub fn tiny_build() -> PathBuf {
    let dir = cache().join("build-tiny");
    let out = xtask(&on_tiny("build"));
    assert!(out.status.success(), "{}", text(&out));
    dir
}

pub fn build_with(profiles: Option<&Path>) -> Output {
    let mut args = on_tiny("build");
    if let Some(p) = profiles {
        args.extend(["--profiles", p.to_str().unwrap()]);
    }
    xtask(&args)
}

/// make's output in a build: its build log, which the build names
/// (`make's output goes to PATH`), else (`-v`) standard output.
pub fn make_output(output: &Output) -> String {
    let said = String::from_utf8_lossy(&output.stderr)
        .lines()
        .find_map(|l| {
            l.split_once("make's output goes to ")
                .map(|(_, p)| p.trim().to_string())
        });
    match said {
        Some(log) => std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{log}: {e}")),
        None => String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// Objects make compiled, from its `  CC  path.o` lines, once each, without
/// the ones every link makes: the export table, the version stamp, and the
/// boot image's own objects, which embed the new vmlinux.
pub fn compiled_objects(output: &Output) -> Vec<String> {
    let link_stage = [".vmlinux.export.o", "init/version-timestamp.o"];
    let mut objects: Vec<String> = make_output(output)
        .lines()
        .filter_map(|l| l.strip_prefix("  CC      "))
        .filter(|o| o.ends_with(".o") && !link_stage.contains(o) && !o.starts_with(".tmp_"))
        .filter(|o| !o.starts_with("arch/x86/boot/"))
        .map(String::from)
        .collect();
    objects.dedup();
    objects
}

pub fn opt_report(profiles: Option<&Path>, paths: &[&str]) -> (bool, serde_json::Value) {
    let mut args = [on_tiny("opt-report"), vec!["--json", "--check"]].concat();
    if let Some(p) = profiles {
        args.extend(["--profiles", p.to_str().unwrap()]);
    }
    args.extend(paths);
    let out = xtask(&args);
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).expect("opt-report --json prints JSON"),
    )
}

pub fn object<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == name)
        .unwrap_or_else(|| panic!("{name} not in the report"))
}

pub fn run_tiny(extra: &[&str], command: &[&str]) -> Output {
    let mut args = on_tiny("run");
    args.extend(extra);
    args.push("--");
    args.extend(command);
    xtask(&args)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the daemon, and the workers it forked, when the test ends,
/// however it ends: it runs in a process group of its own.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// `cargo xtask ARGS` started in the background with its own working
/// directory and a tag in its environment, which every process it starts
/// inherits: [`tagged`] finds them after the tool is gone.
pub fn spawn_tagged(args: &[&str], dir: &Path, tag: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(dir)
        .env("LINUX_STUDY_TEST_TAG", tag)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run xtask")
}

/// A tag no other test or run uses.
pub fn unique_tag(what: &str) -> String {
    format!(
        "{what}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The live processes (pid, command line) whose environment holds `tag`.
pub fn tagged(tag: &str) -> Vec<(u32, String)> {
    let needle = format!("LINUX_STUDY_TEST_TAG={tag}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
        if zombie || !environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        found.push((pid, cmdline));
    }
    found
}

/// Polls `done` until it holds or `secs` pass; whether it held.
pub fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    done()
}

/// Sends `signal` (`TERM`, `KILL`) to one process, as a CI time-out would.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child, and gathers what it printed.
pub fn finish(child: std::process::Child, what: &str) -> Output {
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "$ {what}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `command` under `cargo xtask debug` (`debug`: the command and its
/// target flags) with a breakpoint on each of `functions` that prints its
/// frame (study-frame) once and goes on: (function, what was printed) per
/// stop.
pub fn stops_along(debug: &[&str], functions: &[&str], command: &[&str]) -> Vec<(String, String)> {
    let mut script = String::new();
    for function in functions {
        script.push_str(&format!(
            "study-break {function}\ncommands $study_break_first-$bpnum\nsilent\necho @@stop {function}\\n\nstudy-frame\necho @@end\\n\ndelete $_hit_bpnum\ncontinue\nend\n"
        ));
    }
    script.push_str("continue\n");
    let dir = cache().join("gdb-stops");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.gdb", functions.join("-")));
    std::fs::write(&path, script).unwrap();
    let mut args = debug.to_vec();
    args.extend([
        "--no-build",
        "-x",
        path.to_str().unwrap(),
        "--batch",
        "echo @@done\\n",
        "--",
    ]);
    args.extend(command);
    let out = xtask(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stops: Vec<(String, String)> = stdout
        .split("@@stop ")
        .skip(1)
        .map(|s| {
            let (name, body) = s.split_once('\n').unwrap_or((s, ""));
            (
                name.to_string(),
                body.split("@@end").next().unwrap().to_string(),
            )
        })
        .collect();
    for function in functions {
        assert!(
            stops.iter().any(|(n, _)| n == function),
            "no stop in {function}:\n{}",
            text(&out)
        );
    }
    stops
}

/// At each stop, every argument and every real local has a value.
pub fn every_variable_readable(functions: &[&str], stops: &[(String, String)]) {
    for (name, body) in stops {
        assert!(functions.contains(&name.as_str()), "{name}");
        for who in ["args", "locals"] {
            let line = body
                .lines()
                .find(|l| l.starts_with(&format!("{who}: ")) || *l == format!("No {who}."))
                .unwrap_or_else(|| panic!("{name}: no {who} summary:\n{body}"));
            assert!(
                line.starts_with("No ") || line.contains(", 0 <optimized out>"),
                "{name}: {line}\n{body}"
            );
        }
        for line in body.lines().filter(|l| l.contains(" = ")) {
            assert!(!line.ends_with("<optimized out>"), "{name}: {line}");
        }
    }
}

/// What study/callgraph.toml leaves out of the call graph, as globs.
pub fn left_out_of_the_callgraph(name: &str) -> bool {
    let rules: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo().join("study/callgraph.toml")).unwrap())
            .unwrap();
    rules["ignore"].as_array().unwrap().iter().any(|g| {
        let g = g.as_str().unwrap();
        match g.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == g,
        }
    })
}

/// `objdump`'s reading of FUNC in `vmlinux`, independent of the tool: the
/// functions it calls directly (x86's `call ADDR <f>`, arm64's `bl ADDR
/// <f>`, and UML's large-model `movabs $ADDR,%reg` then `call *%reg`, its
/// address named by `nm`), less what the rules leave out; and the number
/// of calls through a register or memory that nothing loaded just before.
pub fn objdump_calls(objdump: &str, vmlinux: &Path, function: &str) -> (BTreeSet<String>, usize) {
    let out = std::process::Command::new(objdump)
        .args(["-d", "--no-show-raw-insn"])
        .arg(format!("--disassemble={function}"))
        .arg(vmlinux)
        .output()
        .unwrap();
    assert!(out.status.success(), "{objdump}");
    let text = String::from_utf8_lossy(&out.stdout);
    let direct = regex::Regex::new(r"\t(?:call|bl)\s+[0-9a-f]+ <([^>+]+)>").unwrap();
    let movabs = regex::Regex::new(r"\tmovabs\s+\$0x([0-9a-f]+),%(\w+)").unwrap();
    let through = regex::Regex::new(r"\t(?:call\s+\*%?(\w*)|blr\s)").unwrap();
    let mut names: Option<BTreeMap<u64, String>> = None;
    let mut loaded: BTreeMap<String, u64> = BTreeMap::new();
    let mut callees = BTreeSet::new();
    let mut indirect = 0;
    for line in text.lines() {
        if let Some(c) = direct.captures(line) {
            callees.insert(c[1].to_string());
        } else if let Some(c) = movabs.captures(line) {
            loaded.insert(c[2].to_string(), u64::from_str_radix(&c[1], 16).unwrap());
            continue;
        } else if let Some(c) = through.captures(line) {
            let reg = c.get(1).map_or("", |m| m.as_str());
            match loaded.get(reg) {
                Some(addr) => {
                    let names = names.get_or_insert_with(|| symbol_names(vmlinux));
                    callees.insert(names[addr].clone());
                }
                None => indirect += 1,
            }
        }
        loaded.clear();
    }
    callees.retain(|name| !left_out_of_the_callgraph(name));
    (callees, indirect)
}

/// `nm`'s text symbols of `vmlinux`, by address.
fn symbol_names(vmlinux: &Path) -> BTreeMap<u64, String> {
    let out = std::process::Command::new("nm")
        .arg(vmlinux)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (addr, kind, name) = (w.next()?, w.next()?, w.next()?);
            matches!(kind, "t" | "T" | "W" | "w")
                .then(|| Some((u64::from_str_radix(addr, 16).ok()?, name.to_string())))?
        })
        .collect()
}

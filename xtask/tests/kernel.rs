//! Integration tests on the real kernel tree: Debian's Linux 6.12 tarball,
//! unpacked once into `target/kernel-test/`, configured and built with the
//! real Kbuild. Build directories are cached there between runs, so only
//! the first run pays for a kernel build. Tests run one at a time: this
//! machine builds one kernel at a time.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Mutex, MutexGuard},
    time::SystemTime,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cache() -> PathBuf {
    repo().join("target/kernel-test")
}

fn xtask(args: &[&str]) -> Output {
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

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// The unpacked tree, made once from the tarball.
fn kernel() -> PathBuf {
    let tree = cache().join("linux");
    if !tree.join("Makefile").is_file() {
        let tarball = std::env::var("LINUX_STUDY_TARBALL")
            .unwrap_or_else(|_| "/usr/src/linux-source-6.12.tar.xz".into());
        assert!(
            Path::new(&tarball).is_file(),
            "{tarball} is missing: apt-get install linux-source-6.12 (or set LINUX_STUDY_TARBALL)"
        );
        std::fs::create_dir_all(cache()).unwrap();
        let out = xtask(&[
            "kernel",
            "--kernel",
            tree.to_str().unwrap(),
            "--tarball",
            &tarball,
        ]);
        assert!(out.status.success());
    }
    tree
}

fn config(profile: &str, build_dir: &Path, profiles: Option<&Path>) -> Output {
    let tree = kernel();
    let mut args = vec![
        "config",
        "--kernel",
        tree.to_str().unwrap(),
        "--profile",
        profile,
    ];
    args.extend(["--build-dir", build_dir.to_str().unwrap()]);
    if let Some(p) = profiles {
        args.extend(["--profiles", p.to_str().unwrap()]);
    }
    xtask(&args)
}

/// The requested options of a shipped profile, read from study.toml as
/// `.config` would spell them.
fn requested(profile: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("study/study.toml")).unwrap();
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

fn dot_config(build_dir: &Path) -> BTreeMap<String, String> {
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

fn mtimes(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().to_path_buf(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect()
}

#[test]
fn config_lands_every_requested_option_and_a_rerun_touches_nothing() {
    let _serial = serial();
    for profile in ["study", "tiny"] {
        let build_dir = cache().join(format!("config-{profile}"));
        let out = config(profile, &build_dir, None);
        assert!(out.status.success(), "{}", text(&out));
        let got = dot_config(&build_dir);
        for (name, value) in requested(profile) {
            assert_eq!(
                got.get(&name).map_or("n", String::as_str),
                value,
                "{profile}: CONFIG_{name}"
            );
        }
        assert!(build_dir.join("study.mk").is_file());

        let before = mtimes(&build_dir);
        let out = config(profile, &build_dir, None);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(".config is up to date"),
            "{}",
            text(&out)
        );
        assert_eq!(
            mtimes(&build_dir),
            before,
            "{profile}: a rerun changed the build dir"
        );
    }
}

#[test]
fn impossible_option_is_reported_by_name_with_its_dependency() {
    let _serial = serial();
    let dir = cache().join("impossible");
    std::fs::create_dir_all(&dir).unwrap();
    let profiles = dir.join("study.toml");
    std::fs::write(
        &profiles,
        "[optimization]\ndefault = \"Og\"\n\n[profile.broken]\nbase = \"tinyconfig\"\nfragment = \"study-broken.config\"\n\
         [profile.broken.options]\nCGROUPS = false\nMEMCG = true\n",
    )
    .unwrap();
    let out = config("broken", &dir.join("build"), Some(&profiles));
    assert!(!out.status.success());
    let text = text(&out);
    assert!(
        text.contains("study.toml:9:1: CONFIG_MEMCG wanted y, got n; unmet dependency: CGROUPS"),
        "{text}"
    );
    assert!(
        text.contains("error: 1 requested option(s) did not land"),
        "{text}"
    );
    std::fs::remove_file(kernel().join("kernel/configs/study-broken.config")).unwrap();
}

#[test]
fn unknown_option_names_the_line_and_writes_nothing() {
    let _serial = serial();
    let dir = cache().join("unknown-option");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profiles = dir.join("study.toml");
    std::fs::write(
        &profiles,
        "[optimization]\ndefault = \"Og\"\n\n[profile.typo]\nbase = \"tinyconfig\"\nfragment = \"study-typo.config\"\n\
         [profile.typo.options]\nMEMGC = true\n",
    )
    .unwrap();
    let out = config("typo", &dir.join("build"), Some(&profiles));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(
        last.contains("study.toml:8:1: option `MEMGC` is not a Kconfig symbol in Linux 6.12.117"),
        "{stderr}"
    );
    assert!(last.contains("did you mean MEMCG"), "{stderr}");
    assert!(!dir.join("build").exists());
    assert!(!kernel().join("kernel/configs/study-typo.config").exists());
}

#[test]
fn missing_kernel_tree_says_how_to_get_one() {
    let out = xtask(&["config", "--kernel", "/nonexistent-tree"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("git submodule update --init --depth 1 kernel"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cargo xtask kernel --tarball /usr/src/linux-source-6.12.tar.xz"),
        "{stderr}"
    );
}

#[test]
fn dry_run_prints_commands_and_writes_nothing() {
    let _serial = serial();
    let tree = kernel();
    let build_dir = cache().join("dry-run");
    let _ = std::fs::remove_dir_all(&build_dir);
    let out = xtask(&[
        "config",
        "--dry-run",
        "--kernel",
        tree.to_str().unwrap(),
        "--profile",
        "tiny",
        "--build-dir",
        build_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kconfig_dir = build_dir.join(".study/kconfig");
    let make = format!(
        "$ make -C {} O={} ARCH=x86_64",
        tree.display(),
        kconfig_dir.display()
    );
    for target in ["tinyconfig", "study-tiny.config", "olddefconfig"] {
        assert!(stderr.contains(&format!("{make} {target}\n")), "{stderr}");
    }
    assert!(
        stderr.contains(&format!(
            "would write: {}",
            build_dir.join("study.mk").display()
        )),
        "{stderr}"
    );
    assert!(!build_dir.exists());
}

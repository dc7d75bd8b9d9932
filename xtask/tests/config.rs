//! `cargo xtask config` on the real tree: options land, reruns touch nothing, bad input is one line.

mod common;

use std::process::Command;

use common::*;
use libtest_mimic::{Arguments, Trial};

fn config_lands_every_requested_option_and_a_rerun_touches_nothing() {
    let _serial = serial();
    for profile in ["study", "tiny"] {
        let build_dir = cache().join(format!("config-{profile}"));
        // From nothing every time: the first run must really run Kconfig.
        let _ = std::fs::remove_dir_all(&build_dir);
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

/// A requested option that cannot land is named with the dependency that
/// keeps it out, and the build directory keeps the `.config` it had: the
/// failed result stays in the scratch directory (issue 12, item 7).
fn impossible_option_is_reported_by_name_with_its_dependency() {
    let _serial = serial();
    let dir = cache().join("impossible");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profiles = dir.join("study.toml");
    let head = "[optimization]\ndefault = \"Og\"\n\n[profile.broken]\nbase = \"tinyconfig\"\nfragment = \"study-broken.config\"\n\
         [profile.broken.options]\nCGROUPS = false\n";
    std::fs::write(&profiles, head).unwrap();
    let build = dir.join("build");
    let out = config("broken", &build, Some(&profiles));
    assert!(out.status.success(), "{}", text(&out));
    let good = std::fs::read(build.join(".config")).unwrap();
    let before = mtimes(&build);

    std::fs::write(&profiles, format!("{head}MEMCG = true\n")).unwrap();
    let out = config("broken", &build, Some(&profiles));
    // Out of the kernel tree before any assertion can fail.
    let _ = std::fs::remove_file(kernel().join("kernel/configs/study-broken.config"));
    assert!(!out.status.success());
    let text = text(&out);
    assert!(
        text.contains("study.toml:9:1: CONFIG_MEMCG wanted y, got n; unmet dependency: CGROUPS"),
        "{text}"
    );
    let scratch = build.join(".study/kconfig/.config");
    assert!(
        text.contains(&format!(
            "error: 1 requested option(s) did not land in {}: MEMCG; fix their dependencies or \
             mark them optional; {} is unchanged, the result is in {} for inspection",
            scratch.display(),
            build.join(".config").display(),
            scratch.display()
        )),
        "{text}"
    );
    assert_eq!(std::fs::read(build.join(".config")).unwrap(), good);
    let after = mtimes(&build);
    let changed: Vec<_> = after
        .iter()
        .filter(|(path, time)| {
            before.get(*path) != Some(time) && !path.starts_with(build.join(".study/kconfig"))
        })
        .map(|(path, _)| path.clone())
        .collect();
    assert_eq!(
        changed,
        Vec::<std::path::PathBuf>::new(),
        "written outside the scratch directory"
    );
}

/// Issue 12, item 7: a string where Kconfig wants a bool or tristate is
/// refused at its line, with the type and the fix, and nothing is written.
fn a_value_of_the_wrong_type_names_the_symbols_type() {
    let _serial = serial();
    let dir = cache().join("wrong-type");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profiles = dir.join("study.toml");
    std::fs::write(
        &profiles,
        "[optimization]\ndefault = \"Og\"\n\n[profile.typed]\nbase = \"tinyconfig\"\nfragment = \"study-typed.config\"\n\
         [profile.typed.options]\nTUN = \"yes\"\n",
    )
    .unwrap();
    let out = config("typed", &dir.join("build"), Some(&profiles));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains(&format!(
                "study.toml:8:1: TUN is a tristate in Linux {} (drivers/net/Kconfig:",
                version()
            ))
            && stderr.contains("not \"yes\": write TUN = true, false or \"m\""),
        "{stderr}"
    );
    assert!(!dir.join("build").exists());
    assert!(!kernel().join("kernel/configs/study-typed.config").exists());
}

/// Issue 12, item 7: a `--kernel` directory or a `--tarball` that holds no
/// kernel is one line, naming it and what to give instead.
fn a_kernel_or_tarball_that_is_not_one_is_one_line() {
    let dir = std::env::temp_dir().join(format!("linux-study-notkernel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("README"), "not a kernel\n").unwrap();
    let out = xtask(&["config", "--kernel", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "error: --kernel {}: no Linux tree there (no Kconfig and Makefile at its top), \
             nor a FreeBSD one (no sys/conf/newvers.sh and tools/build/make.py); \
             point --kernel at a kernel source tree\n",
            dir.display()
        )
    );

    // A tarball of something else: it unpacks, and holds no tree.
    let tarball = dir.join("other.tar.gz");
    let status = Command::new("tar")
        .args([
            "-czf",
            tarball.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
            "README",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let dest = dir.join("linux");
    for (file, why) in [
        (
            &tarball,
            "holds no Linux tree (no Kconfig and Makefile at its top)",
        ),
        (&dir.join("README"), "cannot be unpacked ("),
    ] {
        let out = xtask(&[
            "kernel",
            "--kernel",
            dest.to_str().unwrap(),
            "--tarball",
            file.to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("");
        assert!(
            last.starts_with(&format!("error: {} {why}", file.display()))
                && last.ends_with(
                    "give a Linux release tarball, e.g. /usr/src/linux-source-6.12.tar.xz"
                ),
            "{stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| !l.starts_with("$ ")).count(),
            1,
            "one line besides the echoed command: {stderr}"
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["README", "other.tar.gz"], "nothing left behind");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

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
        last.contains(&format!(
            "study.toml:8:1: option `MEMGC` is not a Kconfig symbol in Linux {} (",
            version()
        )),
        "{stderr}"
    );
    assert!(last.contains("did you mean MEMCG"), "{stderr}");
    assert!(!dir.join("build").exists());
    assert!(!kernel().join("kernel/configs/study-typo.config").exists());
}

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

fn dry_run_prints_commands_and_writes_nothing() {
    let _serial = serial();
    // As the tool names it: resolved, should the cache be a symlink.
    let tree = kernel().canonicalize().unwrap();
    let build_dir = cache().join("dry-run");
    let _ = std::fs::remove_dir_all(&build_dir);
    let out = config_with("tiny", &build_dir, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kconfig_dir = build_dir.join(".study/kconfig");
    // lld, tiny's linker on x86_64, reaches Kconfig too (CONFIG_LD_IS_LLD).
    let make = format!(
        "$ make -C {} O={} ARCH=x86_64 LD=ld.lld",
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

/// menuconfig-style edits survive `config` unless `--force` is given.
fn hand_edits_to_config_are_kept_unless_forced() {
    let _serial = serial();
    let build_dir = cache().join("hand-edit");
    let _ = std::fs::remove_dir_all(&build_dir);
    assert!(config("tiny", &build_dir, None).status.success());
    let config_path = build_dir.join(".config");
    let edited = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("# CONFIG_PRINTK_TIME is not set", "CONFIG_PRINTK_TIME=y");
    std::fs::write(&config_path, &edited).unwrap();

    let out = config("tiny", &build_dir, None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(".config was edited by hand since the last `config`; keeping it"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), edited);

    let out = config_with("tiny", &build_dir, &["--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        dot_config(&build_dir)
            .get("PRINTK_TIME")
            .map(String::as_str),
        Some("n")
    );
}

/// Issue 12, item 7: on a tree just unpacked, the first `config` writes the
/// build directory, and the rerun writes nothing at all, the snapshot of
/// the inputs included; nor does it touch the tree.
fn a_fresh_tree_configures_once_and_a_rerun_writes_nothing() {
    let _serial = serial();
    let tarball = tarball();
    let work = cache().join("fresh-tree");
    let _ = std::fs::remove_dir_all(&work);
    let tree = work.join("linux");
    let out = xtask(&[
        "kernel",
        "--kernel",
        tree.to_str().unwrap(),
        "--tarball",
        &tarball,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let build = work.join("build");
    let config = || {
        xtask(&[
            "config",
            "--kernel",
            tree.to_str().unwrap(),
            "--profile",
            "tiny",
            "--build-dir",
            build.to_str().unwrap(),
        ])
    };
    let out = config();
    assert!(out.status.success(), "{}", text(&out));
    let (build_before, tree_before) = (mtimes(&build), mtimes(&tree));
    std::thread::sleep(std::time::Duration::from_millis(50));
    let out = config();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(".config is up to date"),
        "{}",
        text(&out)
    );
    let changed =
        |before: &std::collections::BTreeMap<std::path::PathBuf, std::time::SystemTime>,
         after: std::collections::BTreeMap<std::path::PathBuf, std::time::SystemTime>| {
            after
                .into_iter()
                .filter(|(path, time)| before.get(path) != Some(time))
                .map(|(path, _)| path)
                .collect::<Vec<_>>()
        };
    let build_changed = changed(&build_before, mtimes(&build));
    let tree_changed = changed(&tree_before, mtimes(&tree));
    let _ = std::fs::remove_dir_all(&work);
    assert_eq!(build_changed, Vec::<std::path::PathBuf>::new());
    assert_eq!(tree_changed, Vec::<std::path::PathBuf>::new());
}

/// A versioned compiler (`--cc gcc-12`, `--cc clang-14`: whichever major
/// the host's own gcc and clang are, which Debian and Ubuntu also install
/// under the versioned name) reaches Kbuild's compiler probe: `.config`
/// records that compiler's version, read from the compiler itself, and
/// make is told it in Kbuild's words (CC=gcc-12, LLVM=-14).
fn a_versioned_compiler_is_the_one_kconfig_probes() {
    for family in ["gcc", "clang"] {
        let Ok(out) = std::process::Command::new(family)
            .arg("-dumpversion")
            .output()
        else {
            panic!("{family} is missing: cargo xtask setup --install");
        };
        let major = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split('.')
            .next()
            .unwrap()
            .to_string();
        let cc = format!("{family}-{major}");
        let full = std::process::Command::new(&cc)
            .args(["-dumpfullversion", "-dumpversion"])
            .output()
            .unwrap_or_else(|e| panic!("{cc}: {e}"));
        let full = String::from_utf8_lossy(&full.stdout).trim().to_string();
        let parts: Vec<u32> = full.split('.').map(|p| p.parse().unwrap()).collect();
        let encoded =
            parts[0] * 10000 + parts.get(1).unwrap_or(&0) * 100 + parts.get(2).unwrap_or(&0);
        let dir = cache().join(format!("config-{cc}"));
        let _ = std::fs::remove_dir_all(&dir);
        let out = config_with("tiny", &dir, &["--cc", &cc]);
        assert!(out.status.success(), "{cc}: {}", text(&out));
        let config = dot_config(&dir);
        let symbol = if family == "gcc" {
            "GCC_VERSION"
        } else {
            "CLANG_VERSION"
        };
        assert_eq!(
            config.get(symbol).map(String::as_str),
            Some(encoded.to_string().as_str()),
            "{cc} {full}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let make_var = if family == "gcc" {
            format!("CC={cc}")
        } else {
            format!("LLVM=-{major}")
        };
        assert!(stderr.contains(&make_var), "{cc}: {stderr}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A compiler named in no known form is one line naming the forms.
fn an_unknown_compiler_is_refused_with_the_valid_forms() {
    let out = config_with("tiny", &cache().join("config-icc"), &["--cc", "icc-2"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gcc, clang, or one with its major version (gcc-11, clang-19)"),
        "{stderr}"
    );
    assert!(!cache().join("config-icc").exists());
}

/// lld, `tiny`'s linker on x86_64 (`arch-ld`), reaches Kconfig's linker
/// probe: `.config` says lld, make is told `LD=ld.lld`, and the link of
/// vmlinux is asked for gdb's index. `--ld bfd` builds in a directory named
/// for the linker; a clang build, which links with lld, is refused bfd in
/// one line before anything is written.
fn lld_links_a_gcc_build_on_x86_64_and_bfd_when_asked() {
    let dir = cache().join("config-lld");
    let _ = std::fs::remove_dir_all(&dir);
    let out = config_with("tiny", &dir, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let config = dot_config(&dir);
    assert_eq!(config.get("LD_IS_LLD").map(String::as_str), Some("y"));
    assert_eq!(config.get("LD_IS_BFD"), None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(" LD=ld.lld "),
        "{}",
        text(&out)
    );
    let study_mk = std::fs::read_to_string(dir.join("study.mk")).unwrap();
    assert!(study_mk.contains("--gdb-index"), "{study_mk}");
    std::fs::remove_dir_all(&dir).unwrap();

    let bfd = cache().join("config-bfd");
    let _ = std::fs::remove_dir_all(&bfd);
    let out = config_with("tiny", &bfd, &["--ld", "bfd"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        dot_config(&bfd).get("LD_IS_BFD").map(String::as_str),
        Some("y")
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("LD=ld.lld"));
    let study_mk = std::fs::read_to_string(bfd.join("study.mk")).unwrap();
    assert!(!study_mk.contains("--gdb-index"), "{study_mk}");
    std::fs::remove_dir_all(&bfd).unwrap();

    let tree = kernel();
    let dry = xtask(&[
        "--dry-run",
        "config",
        "--kernel",
        tree.to_str().unwrap(),
        "-p",
        "tiny",
        "--ld",
        "bfd",
    ]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        String::from_utf8_lossy(&dry.stderr).contains("/build/tiny-bfd"),
        "{}",
        text(&dry)
    );

    let refused = cache().join("config-clang-bfd");
    let out = config_with("tiny", &refused, &["--cc", "clang", "--ld", "bfd"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("clang links with lld (LLVM=1)"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!refused.exists());
}

/// The tarball the harness unpacks (LINUX_STUDY_TARBALL, else Debian's).
fn tarball() -> String {
    std::env::var("LINUX_STUDY_TARBALL")
        .unwrap_or_else(|_| "/usr/src/linux-source-6.12.tar.xz".into())
}

/// The harness's tree is whole or absent: a fill that dies half-way (here
/// it panics after the Makefile, as a killed `cp -a` would leave it) leaves
/// no tree, and the next fill makes it.
fn an_interrupted_fill_of_the_test_tree_leaves_no_tree() {
    let work = cache().join("interrupted-fill");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let dest = work.join("linux");
    let died = std::panic::catch_unwind(|| {
        fill_tree(&dest, |tmp| {
            std::fs::create_dir_all(tmp).unwrap();
            std::fs::write(tmp.join("Makefile"), "VERSION = 6\n").unwrap();
            // Unwinds as a panic does, without the panic hook's message and
            // backtrace in the test's output: nothing failed.
            std::panic::resume_unwind(Box::new("killed half-way"));
        })
    });
    assert!(died.is_err());
    assert!(!dest.exists(), "a half-made tree at {}", dest.display());
    fill_tree(&dest, |tmp| {
        std::fs::create_dir_all(tmp).unwrap();
        std::fs::write(tmp.join("Makefile"), "VERSION = 6\n").unwrap();
        std::fs::write(tmp.join("Kconfig"), "").unwrap();
        true
    });
    assert!(dest.join("Kconfig").is_file());
    let left: Vec<String> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".harness-lock"))
        .collect();
    assert_eq!(left, ["linux"]);
    std::fs::remove_dir_all(&work).unwrap();
}

fn main() {
    let args = Arguments::from_args();
    let no_tarball = !std::path::Path::new(&tarball()).is_file();
    if no_tarball {
        eprintln!(
            "skipped: a_fresh_tree_configures_once_and_a_rerun_writes_nothing: no {} \
             (apt-get install linux-source-6.12, or set LINUX_STUDY_TARBALL)",
            tarball()
        );
    }
    let trials: Vec<Trial> = vec![
        trial(
            "config_lands_every_requested_option_and_a_rerun_touches_nothing",
            config_lands_every_requested_option_and_a_rerun_touches_nothing,
        ),
        trial(
            "impossible_option_is_reported_by_name_with_its_dependency",
            impossible_option_is_reported_by_name_with_its_dependency,
        ),
        trial(
            "a_value_of_the_wrong_type_names_the_symbols_type",
            a_value_of_the_wrong_type_names_the_symbols_type,
        ),
        trial(
            "a_kernel_or_tarball_that_is_not_one_is_one_line",
            a_kernel_or_tarball_that_is_not_one_is_one_line,
        ),
        trial(
            "unknown_option_names_the_line_and_writes_nothing",
            unknown_option_names_the_line_and_writes_nothing,
        ),
        trial(
            "missing_kernel_tree_says_how_to_get_one",
            missing_kernel_tree_says_how_to_get_one,
        ),
        trial(
            "dry_run_prints_commands_and_writes_nothing",
            dry_run_prints_commands_and_writes_nothing,
        ),
        trial(
            "hand_edits_to_config_are_kept_unless_forced",
            hand_edits_to_config_are_kept_unless_forced,
        ),
        trial(
            "a_fresh_tree_configures_once_and_a_rerun_writes_nothing",
            a_fresh_tree_configures_once_and_a_rerun_writes_nothing,
        )
        .with_ignored_flag(no_tarball),
        trial(
            "a_versioned_compiler_is_the_one_kconfig_probes",
            a_versioned_compiler_is_the_one_kconfig_probes,
        ),
        trial(
            "an_unknown_compiler_is_refused_with_the_valid_forms",
            an_unknown_compiler_is_refused_with_the_valid_forms,
        ),
        trial(
            "lld_links_a_gcc_build_on_x86_64_and_bfd_when_asked",
            lld_links_a_gcc_build_on_x86_64_and_bfd_when_asked,
        ),
        trial(
            "an_interrupted_fill_of_the_test_tree_leaves_no_tree",
            an_interrupted_fill_of_the_test_tree_leaves_no_tree,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

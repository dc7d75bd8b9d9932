use super::*;
use crate::study::shipped;

fn parse(text: &str) -> Result<Profiles> {
    Profiles::parse(Path::new("study/study.toml"), text, &arches())
}

fn arches() -> Vec<String> {
    crate::study::arch::Arch::names(&crate::study::shipped())
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

const MINIMAL: &str = r#"
[optimization]
default = "Og"
[optimization.paths]
"net/core" = "O0"

[profile.small]
base = "tinyconfig"
fragment = "study-small.config"
[profile.small.options]
NET = true
CC_OPTIMIZE_FOR_SIZE = false
LOG_BUF_SHIFT = 14
PHYSICAL_START = "0x1000000"
CMDLINE = "console=ttyS0"
VIRTIO_NET = "m"
"#;

#[test]
fn parses_the_shipped_profiles() {
    let profiles = Profiles::load(&shipped().join("study.toml"), &shipped()).unwrap();
    assert_eq!(profiles.default, "study");
    let study = profiles.get(None).unwrap();
    assert_eq!(study.base, "defconfig");
    assert_eq!(study.fragments, vec!["kvm_guest.config"]);
    assert_eq!(study.fragment, "study.config");
    assert_eq!(study.rules.level_for("net/ipv4/tcp.c"), Level::O0);
    let tiny = profiles.get(Some("tiny")).unwrap();
    assert_eq!(tiny.fragment, "study-tiny.config");
    assert_eq!(tiny.rules, study.rules);
}

#[test]
fn values_and_defaults() {
    let profiles = parse(MINIMAL).unwrap();
    assert_eq!(profiles.default, "small");
    let p = profiles.get(Some("small")).unwrap();
    let values: Vec<(String, KValue)> = p
        .options
        .iter()
        .map(|o| (o.name.clone(), o.value.clone()))
        .collect();
    assert_eq!(
        values,
        vec![
            ("NET".into(), KValue::Yes),
            ("CC_OPTIMIZE_FOR_SIZE".into(), KValue::No),
            ("LOG_BUF_SHIFT".into(), KValue::Number(14)),
            ("PHYSICAL_START".into(), KValue::Hex("0x1000000".into())),
            ("CMDLINE".into(), KValue::Str("console=ttyS0".into())),
            ("VIRTIO_NET".into(), KValue::Module),
        ]
    );
    assert_eq!(p.options[0].origin.to_string(), "study/study.toml:11:1");
}

#[test]
fn unknown_profile_lists_the_valid_ones() {
    let profiles = parse(MINIMAL).unwrap();
    let err = profiles.get(Some("huge")).unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown profile 'huge' (in study/study.toml); valid profiles: small"
    );
}

#[test]
fn misspelled_key_names_file_line_column_and_key() {
    let text = MINIMAL.replace("fragment =", "fragmnet =");
    assert_eq!(
        error(&text),
        "study/study.toml:9:1: unknown field `fragmnet`, expected one of `extends`, `description`, \
         `base`, `fragments`, `fragment`, `options`, `optional`, `optimization`, `cc`, `ld`, `arch-ld`, `cc-options`, `arch-options`, `cc-arch-options`"
    );
}

#[test]
fn malformed_toml_is_one_line() {
    let text = MINIMAL.replace("NET = true", "NET = ");
    let err = error(&text);
    assert!(!err.contains('\n'), "{err}");
    assert!(err.starts_with("study/study.toml:11:"), "{err}");
}

#[test]
fn bad_level_lists_valid_levels() {
    let text = MINIMAL.replace("\"net/core\" = \"O0\"", "\"net/core\" = \"O4\"");
    assert_eq!(
        error(&text),
        "study/study.toml:5:14: unknown optimization level \"O4\"; valid: O0, O1, Og, O2, O3, Os"
    );
}

#[test]
fn bad_value_type_names_the_option() {
    let text = MINIMAL.replace("NET = true", "NET = [1]");
    assert_eq!(
        error(&text),
        "study/study.toml:11:7: option `NET`: a array is not a Kconfig value; use true, false, \"m\", a number, \"0x..\" or a string"
    );
}

#[test]
fn optional_must_name_an_option() {
    let text = MINIMAL.replace("fragment = ", "optional = [\"NETT\"]\nfragment = ");
    assert_eq!(
        error(&text),
        "study/study.toml:9:13: optional names `NETT`, which is not in [profile.small]'s options; add it there or remove it"
    );
}

#[test]
fn bad_rule_path() {
    let text = MINIMAL.replace("\"net/core\"", "\"../net\"");
    assert_eq!(
        error(&text),
        "study/study.toml:5:1: path \"../net\": give a path relative to the kernel tree, e.g. \"net/core\" or \"net/socket.c\""
    );
}

#[test]
fn missing_base() {
    let text = MINIMAL.replace("base = \"tinyconfig\"\n", "");
    assert_eq!(
        error(&text),
        "study/study.toml: [profile.small] has no `base`; add e.g. base = \"defconfig\""
    );
}

#[test]
fn renamed_symbols_are_kept_for_the_profiles_that_use_them() {
    let text = "[renamed]\nMITIGATION_RETPOLINE = [\"RETPOLINE\"]\nUNUSED_NEW = [\"UNUSED_OLD\"]\n\
                [optimization]\ndefault = \"Og\"\n\
                [profile.a]\nbase = \"defconfig\"\n[profile.a.options]\nMITIGATION_RETPOLINE = false\n";
    let profiles = parse(text).unwrap();
    let a = profiles.get(Some("a")).unwrap().clone();
    assert_eq!(
        a.renamed.into_iter().collect::<Vec<_>>(),
        [(
            "MITIGATION_RETPOLINE".to_string(),
            vec!["RETPOLINE".to_string()]
        )]
    );
    let old = profiles
        .get(Some("a"))
        .unwrap()
        .clone()
        .with_name("MITIGATION_RETPOLINE", "RETPOLINE");
    assert_eq!(old.options[0].name, "RETPOLINE");
    assert_eq!(old.options[0].value, KValue::No);
}

#[test]
fn a_rule_is_plain_or_strict_and_a_wrong_one_names_its_line() {
    let text = MINIMAL.replace(
        "\"net/core\" = \"O0\"",
        "\"net/core\" = { level = \"O0\", strict = true }\n\"mm\" = \"O0\"",
    );
    let profiles = parse(&text).unwrap();
    let rules = &profiles.get(Some("small")).unwrap().rules;
    assert!(rules.rule_for("net/core/dev.c").unwrap().strict);
    assert!(!rules.rule_for("mm/slub.c").unwrap().strict);
    let wrong = MINIMAL.replace("\"net/core\" = \"O0\"", "\"net/core\" = { lvl = \"O0\" }");
    let e = error(&wrong);
    assert!(e.starts_with("study/study.toml:5:"), "{e}");
    assert!(e.contains("unknown key `lvl`"), "{e}");
}

/// A profile that extends another starts from its tables: the base, the
/// options (its own laid over them, per architecture too), the rules; its
/// fragment file is its own.
#[test]
fn a_profile_extends_another() {
    let text = format!(
        "{MINIMAL}\n[profile.small.arch-options.x86_64]\nPVH = true\n\
         [profile.small.cc-arch-options.clang.x86_64]\nLTO_NONE = true\nKCOV = false\n\
         [profile.peer]\nextends = \"small\"\n[profile.peer.options]\nBLOCK = true\nNET = false\n\
         [profile.peer.arch-options.x86_64]\nACPI = true\n\
         [profile.peer.cc-arch-options.clang.x86_64]\nKCOV = true\n"
    );
    let profiles = parse(&text).unwrap();
    let peer = profiles.get(Some("peer")).unwrap().clone();
    assert_eq!(peer.base, "tinyconfig");
    assert_eq!(peer.fragment, "peer.config");
    let value = |p: &Profile, name: &str| {
        p.options
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.value.config_text())
    };
    assert_eq!(value(&peer, "BLOCK").as_deref(), Some("y"));
    assert_eq!(value(&peer, "NET").as_deref(), Some("n"));
    assert_eq!(value(&peer, "LOG_BUF_SHIFT").as_deref(), Some("14"));
    let x86 = peer.clone().for_target(Toolchain::GCC, "x86_64");
    assert_eq!(value(&x86, "PVH").as_deref(), Some("y"));
    assert_eq!(value(&x86, "ACPI").as_deref(), Some("y"));
    // Per compiler and architecture too: the parent's entries, the child's
    // laid over them.
    let clang_x86 = peer.clone().for_target(Toolchain::CLANG, "x86_64");
    assert_eq!(value(&clang_x86, "LTO_NONE").as_deref(), Some("y"));
    assert_eq!(value(&clang_x86, "KCOV").as_deref(), Some("y"));
    assert_eq!(value(&x86, "KCOV"), None);
    let small = profiles.get(Some("small")).unwrap().clone();
    assert_eq!(value(&small, "BLOCK"), None);
    let small_clang_x86 = small.clone().for_target(Toolchain::CLANG, "x86_64");
    assert_eq!(value(&small_clang_x86, "KCOV").as_deref(), Some("n"));
    assert_eq!(
        small.rules.level_for("net/core/dev.c"),
        peer.rules.level_for("net/core/dev.c")
    );
}

#[test]
fn extending_no_profile_or_oneself_is_one_line() {
    let text = format!("{MINIMAL}\n[profile.peer]\nextends = \"smal\"\n");
    let err = error(&text);
    assert!(
        err.starts_with("study/study.toml:")
            && err.contains("extends \"smal\", which is no profile"),
        "{err}"
    );
    assert!(err.contains("valid: peer, small"), "{err}");
    let text = format!("{MINIMAL}\nextends = \"peer\"\n[profile.peer]\nextends = \"small\"\n")
        .replace("[profile.small]\n", "[profile.small]\nextends = \"peer\"\n");
    let err = error(&text);
    assert!(err.contains("extends itself through"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn the_linker_by_architecture_lies_over_the_profiles_and_is_inherited() {
    let text = MINIMAL.replace(
        "fragment = \"study-small.config\"\n",
        "fragment = \"study-small.config\"\narch-ld = { x86_64 = \"lld\" }\n",
    ) + "[profile.peer]\nextends = \"small\"\n[profile.arm]\nextends = \"small\"\n\
         ld = \"lld\"\narch-ld = { arm64 = \"bfd\" }\n";
    let profiles = parse(&text).unwrap();
    for name in ["small", "peer"] {
        let p = profiles.get(Some(name)).unwrap();
        assert_eq!(p.linker_for("x86_64"), Linker::Lld, "{name}");
        assert_eq!(p.linker_for("arm64"), Linker::Bfd, "{name}");
        assert_eq!(p.linker_for("um"), Linker::Bfd, "{name}");
    }
    let arm = profiles.get(Some("arm")).unwrap();
    assert_eq!(arm.linker_for("arm64"), Linker::Bfd);
    assert_eq!(arm.linker_for("um"), Linker::Lld);
    let shipped = Profiles::load(&shipped().join("study.toml"), &shipped()).unwrap();
    assert_eq!(shipped.get(None).unwrap().linker_for("x86_64"), Linker::Lld);

    let err = error(&MINIMAL.replace(
        "fragment = \"study-small.config\"\n",
        "fragment = \"study-small.config\"\narch-ld = { x86_64 = \"gold\" }\n",
    ));
    assert!(
        err.starts_with("study/study.toml:10:22: unknown linker \"gold\""),
        "{err}"
    );
}

/// `arch-ld`, `arch-options` and `cc-arch-options` name architectures of
/// study/arch/: a misspelled one is an error at its key, not a table that
/// no build reads.
#[test]
fn a_misspelled_architecture_is_one_line_at_its_key() {
    let valid = arches().join(", ");
    assert!(valid.contains("x86_64"), "{valid}");
    let cases = [
        (
            "arch-ld = { x86-64 = \"lld\" }\n",
            "study/study.toml:10:13: [profile.small.arch-ld]: no architecture \"x86-64\"",
        ),
        (
            "arch-ld = { x86_64 = \"lld\", arm46 = \"lld\" }\n",
            "study/study.toml:10:29: [profile.small.arch-ld]: no architecture \"arm46\"",
        ),
        (
            "[profile.small.arch-options.x86-64]\nPVH = true\n",
            "study/study.toml:17:29: [profile.small.arch-options]: no architecture \"x86-64\"",
        ),
        (
            "[profile.small.cc-arch-options.clang.arm46]\nLTO_NONE = true\n",
            "study/study.toml:17:38: [profile.small.cc-arch-options.clang]: no architecture \"arm46\"",
        ),
    ];
    for (line, expected) in cases {
        // A key goes on line 10, after `fragment`; a table on line 17,
        // after MINIMAL's last.
        let text = if line.starts_with('[') {
            format!("{MINIMAL}{line}")
        } else {
            MINIMAL.replace(
                "fragment = \"study-small.config\"\n",
                &format!("fragment = \"study-small.config\"\n{line}"),
            )
        };
        let err = error(&text);
        assert_eq!(err, format!("{expected}; valid: {valid} (study/arch/)"));
    }
}

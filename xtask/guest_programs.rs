//! Compiles the guest programs of study/guest/programs.toml into static
//! executables for the host, so the guest needs nothing from the host's
//! libraries at boot.

use std::{env, path::PathBuf, process::Command};

#[derive(serde::Deserialize)]
struct Programs {
    flags: Vec<String>,
    program: Vec<Program>,
}

#[derive(serde::Deserialize)]
struct Program {
    source: String,
    name: String,
    #[serde(default)]
    flags: Vec<String>,
}

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let guest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../study/guest");
    let list = guest.join("programs.toml");
    println!("cargo:rerun-if-changed={}", list.display());
    let text = std::fs::read_to_string(&list).expect("study/guest/programs.toml");
    let programs: Programs = toml::from_str(&text).expect("study/guest/programs.toml parses");
    for program in &programs.program {
        let source = guest.join(&program.source);
        println!("cargo:rerun-if-changed={}", source.display());
        let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
        let mut cmd: Command = compiler.to_command();
        let exe = out.join(&program.name);
        cmd.args(&programs.flags)
            .args(&program.flags)
            .arg("-o")
            .arg(&exe)
            .arg(&source);
        let status = cmd.status().unwrap_or_else(|e| {
            panic!("cannot run the C compiler ({e}): apt-get install gcc libc6-dev")
        });
        assert!(
            status.success(),
            "{} did not compile: {cmd:?}",
            source.display()
        );
        let var = program.name.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env=STUDY_GUEST_{var}={}", exe.display());
    }
}

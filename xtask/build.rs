//! Compiles the guest programs in study/guest/ into static executables, so
//! the guest needs nothing from the host's libraries at boot.

use std::{env, path::PathBuf, process::Command};

const PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("init.c", "study-init", &[]),
    ("tcp-echo.c", "tcp-echo", &["-pthread"]),
    ("tun-peer.c", "tun-peer", &["-pthread"]),
];

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let guest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../study/guest");
    for (source, name, extra) in PROGRAMS {
        let source = guest.join(source);
        println!("cargo:rerun-if-changed={}", source.display());
        let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
        let mut cmd: Command = compiler.to_command();
        let exe = out.join(name);
        cmd.args(["-static", "-Os", "-Wall", "-Wextra", "-Werror"])
            .args(*extra)
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
        let var = name.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env=STUDY_GUEST_{var}={}", exe.display());
    }
}

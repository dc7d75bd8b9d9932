//! The guest programs: static executables built from study/guest/ by
//! xtask/build.rs, reachable from the guest over the 9p root, and the
//! environment init gives the command.

use std::path::{Path, PathBuf};

/// Where the guest programs are: static executables built by xtask/build.rs,
/// reachable from the guest over the 9p root.
pub fn guest_init() -> &'static str {
    env!("STUDY_GUEST_STUDY_INIT")
}

pub fn guest_bin_dir() -> PathBuf {
    Path::new(env!("STUDY_GUEST_TCP_ECHO"))
        .parent()
        .expect("an absolute path")
        .to_path_buf()
}

/// init's environment file: the guest programs first on PATH.
pub fn guest_env() -> String {
    format!(
        "PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0",
        guest_bin_dir().display()
    )
}

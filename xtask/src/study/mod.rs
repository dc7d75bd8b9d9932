//! What `study/` says, read and checked: the profiles and their
//! optimization rules, the fallback policy, per-architecture facts, the
//! host tools and the trace layers. Pure data with typed
//! errors that name the file and line; it may use `util` only, and knows
//! nothing of the command line.

pub mod arch;
pub mod build_size;
pub mod callgraph_rules;
pub mod clangd_flags;
pub mod host_tools;
pub mod layers;
pub mod opt_rules;
pub mod origin;
pub mod os;
pub mod packetdrill_suite;
pub mod policy;
pub mod profile;
pub mod toolchain;

/// The shipped `study/` folder, for the tests of what reads it: each loader
/// takes the folder and knows its own file's name.
#[cfg(test)]
pub fn shipped() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .join("study")
}

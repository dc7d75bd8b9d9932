//! What one build did, and how it is told.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use crate::{
    builder::{
        ccache::CacheStats,
        distcc::DistccStats,
        fallback::{source_of, Recorded},
    },
    ctx::Prepared,
    kernel::buildlog::Stage,
    util::exec::quote,
};

pub struct BuildOutcome {
    pub elapsed: Duration,
    /// When each stage of the last pass began, from the build's start.
    pub stages: BTreeMap<Stage, Duration>,
    pub compiled: usize,
    pub warnings: usize,
    pub passes: usize,
    pub new_fallbacks: Vec<(String, Recorded)>,
    /// Writing the inputs index after make (builder::inputs).
    pub recording: Duration,
    /// What objtool and modpost warned about in the last pass, one line
    /// each, by object.
    pub checks: Vec<String>,
    pub cache: Option<CacheStats>,
    pub distcc: Option<DistccStats>,
    pub build_dir: PathBuf,
    pub image: PathBuf,
}

impl BuildOutcome {
    pub fn print(&self, p: &Prepared) {
        println!(
            "built profile {} in {}: {} objects compiled, {} warnings, {} pass(es)",
            p.profile.name,
            human(self.elapsed),
            self.compiled,
            self.warnings,
            self.passes
        );
        if self.warnings > 0 {
            println!(
                "{} compiler warning(s), by object: {}",
                self.warnings,
                warnings_command(p)
            );
        }
        if !self.new_fallbacks.is_empty() {
            println!("{} files fell back:", self.new_fallbacks.len());
            for (object, r) in &self.new_fallbacks {
                println!("  {} {}→{} ({})", source_of(object), r.from, r.to, r.reason);
            }
        }
        if !self.checks.is_empty() {
            println!(
                "{} warning(s) from objtool and modpost, which did not stop the build:",
                self.checks.len()
            );
            for line in &self.checks {
                println!("  {line}");
            }
        }
        if let Some(stats) = &self.cache {
            println!("{stats}");
        }
        if let Some(stats) = &self.distcc {
            println!("{stats}");
        }
        println!("vmlinux:    {}", self.build_dir.join("vmlinux").display());
        println!("boot image: {}", self.image.display());
    }
}

/// The command that shows a build's warnings: this build's profile,
/// tree and directory, pasteable.
pub fn warnings_command(p: &Prepared) -> String {
    let words = [
        "--profile".to_string(),
        p.profile.name.clone(),
        "--kernel".to_string(),
        p.tree.path.display().to_string(),
        "--build-dir".to_string(),
        p.build_dir.display().to_string(),
    ];
    let words: Vec<String> = words.iter().map(|w| quote(w)).collect();
    format!("cargo xtask build --warnings {}", words.join(" "))
}

pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

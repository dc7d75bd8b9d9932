//! The compiler cache: ccache through its masquerade directory, and its
//! counters for the build summary.

use std::path::Path;

use anyhow::{bail, Context, Result};
use xshell::cmd;

use crate::util::exec::{describe, which, Exec};

/// Whether to put ccache in front of the compiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// ccache when it is installed.
    Auto,
    Ccache,
    None,
}

/// ccache through its masquerade directory: `gcc` on PATH is ccache, so
/// Kbuild's command lines, and so its .cmd files, stay the same with the
/// cache on or off, and toggling it rebuilds nothing.
pub struct CacheSetup {
    pub env: Vec<(String, String)>,
}

impl CacheSetup {
    pub fn new(mode: CacheMode) -> Result<Option<CacheSetup>> {
        let masquerade = Path::new("/usr/lib/ccache");
        let available = which("ccache").is_some() && masquerade.join("gcc").exists();
        match mode {
            CacheMode::None => Ok(None),
            CacheMode::Auto if !available => Ok(None),
            CacheMode::Ccache if !available => {
                bail!("--cache ccache: ccache or /usr/lib/ccache/gcc is missing; run `apt-get install ccache`")
            }
            CacheMode::Auto | CacheMode::Ccache => Ok(Some(CacheSetup::through(
                masquerade,
                &std::env::var("PATH").unwrap_or_default(),
            ))),
        }
    }

    /// The environment for ccache's masquerade directory in front of `path`.
    fn through(masquerade: &Path, path: &str) -> CacheSetup {
        CacheSetup {
            env: vec![
                ("PATH".into(), format!("{}:{path}", masquerade.display())),
                // Kbuild regenerates headers with new mtimes but equal
                // content; compare content, not times.
                (
                    "CCACHE_SLOPPINESS".into(),
                    "include_file_mtime,include_file_ctime,time_macros".into(),
                ),
                // Hits across build directories. With O=, Kbuild names the
                // source tree by absolute paths (-I, -include, the source
                // file) and the build directory by relative ones (./include,
                // -o net/ipv4/tcp.o, -Wp,-MMD,...): two build directories of
                // one tree and config differ only in the working directory,
                // which ccache hashes when it sees -g. In the object, the
                // working directory is only DW_AT_comp_dir, which then names
                // the directory that filled the cache. It anchors relative
                // names alone, and in vmlinux those are the few generated
                // sources (capflags.c, defkeymap.c, vdso-image-64.c: tables,
                // no code to step through); every source of the tree keeps
                // its absolute DW_AT_name, so gdb finds it from any build
                // directory, also once the first one is gone (a test checks).
                // With split DWARF, comp_dir also finds each object's .dwo;
                // study.mk maps it to `.` there (study/opt_rules.rs).
                ("CCACHE_NOHASHDIR".into(), "1".into()),
                // And no base_dir, even one set in ccache.conf: it would
                // rewrite those absolute paths relative to the working
                // directory, DW_AT_name with them, and leave gdb resolving
                // them against another directory's comp_dir. It buys no hit
                // here: the only absolute paths are the tree's, the same from
                // every build directory, and the absolute build-directory
                // paths of Kbuild's tools/objtool build would stay apart
                // relative to its working directory in the tree.
                ("CCACHE_BASEDIR".into(), String::new()),
            ],
        }
    }

    /// The cache's counters, with the environment the build's compiles
    /// see. A ccache that fails (a broken ccache.conf, say) or prints no
    /// counters is an error of one line, never zeros.
    pub fn stats(&self, exec: &Exec) -> Result<CacheStats> {
        let env = self.env.iter().map(|(k, v)| (k, v));
        let output = exec
            .query(cmd!(exec.sh(), "ccache --print-stats").envs(env))
            .context("cannot run `ccache --print-stats`")?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let why = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            bail!(
                "`ccache --print-stats` failed ({}): {why}",
                describe(output.status)
            );
        }
        CacheStats::parse(&String::from_utf8_lossy(&output.stdout))
            .context("`ccache --print-stats` printed no hit or miss counter")
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl CacheStats {
    /// `ccache --print-stats`: tab-separated counters; `None` without the
    /// hit and miss counters.
    pub fn parse(text: &str) -> Option<CacheStats> {
        let mut stats = CacheStats::default();
        let mut found = false;
        for line in text.lines() {
            let mut parts = line.split('\t');
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value: u64 = value.trim().parse().unwrap_or(0);
            match key {
                "direct_cache_hit" | "preprocessed_cache_hit" => stats.hits += value,
                "cache_miss" => stats.misses += value,
                _ => continue,
            }
            found = true;
        }
        found.then_some(stats)
    }

    pub fn since(&self, before: &CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits.saturating_sub(before.hits),
            misses: self.misses.saturating_sub(before.misses),
        }
    }
}

impl std::fmt::Display for CacheStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.hits + self.misses;
        let rate = if total == 0 {
            0.0
        } else {
            100.0 * self.hits as f64 / total as f64
        };
        write!(
            f,
            "ccache: {} hits, {} misses ({rate:.0}% hit rate)",
            self.hits, self.misses
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_ignores_the_build_directory() {
        let setup = CacheSetup::through(Path::new("/usr/lib/ccache"), "/usr/bin");
        let env: Vec<String> = setup.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "PATH=/usr/lib/ccache:/usr/bin",
                "CCACHE_SLOPPINESS=include_file_mtime,include_file_ctime,time_macros",
                "CCACHE_NOHASHDIR=1",
                "CCACHE_BASEDIR=",
            ]
        );
    }

    #[test]
    fn ccache_stats() {
        let text = "stats_updated_timestamp\t1764000000\ndirect_cache_hit\t10\npreprocessed_cache_hit\t2\ncache_miss\t4\n";
        let stats = CacheStats::parse(text)
            .unwrap()
            .since(&CacheStats { hits: 2, misses: 1 });
        assert_eq!(
            stats.to_string(),
            "ccache: 10 hits, 3 misses (77% hit rate)"
        );
    }

    #[test]
    fn a_failing_ccache_is_one_line_not_zeros() {
        assert!(
            which("ccache").is_some(),
            "ccache is a host tool of the build: cargo xtask setup installs it"
        );
        let conf = std::env::temp_dir().join(format!("xtask-ccache-{}.conf", std::process::id()));
        std::fs::write(&conf, "this is not a setting\n").unwrap();
        let mut setup = CacheSetup::through(Path::new("/usr/lib/ccache"), "/usr/bin:/bin");
        setup
            .env
            .push(("CCACHE_CONFIGPATH".into(), conf.display().to_string()));
        let exec = Exec::new(false, false).unwrap();
        let error = setup.stats(&exec).unwrap_err();
        let _ = std::fs::remove_file(&conf);
        let line = format!("{error:#}");
        assert_eq!(
            line,
            format!(
                "`ccache --print-stats` failed (exit status 1): ccache: error: {}:1: missing equal sign",
                conf.display()
            )
        );
        assert_eq!(CacheStats::parse("stats_updated_timestamp\t0\n"), None);
    }
}

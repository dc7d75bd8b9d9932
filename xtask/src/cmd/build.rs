//! `cargo xtask build`: configure when needed, build with the fallback, and
//! print the summary; refresh what clangd reads when it follows this build.

use anyhow::{Context, Result};

use crate::{
    builder::{self, distcc, BuildRequest},
    cli,
    ctx::{clangd, Ctx, Prepared},
    kernel::{buildlog, tree},
    util::lock::Access,
};

impl cli::Build {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let prepared = Prepared::new(ctx, &self.target.to_target())?;
        if self.warnings {
            return show_warnings(&prepared);
        }
        if let Some(note) =
            tree::pin_note(&prepared.tree.version).filter(|_| prepared.freebsd.is_none())
        {
            eprintln!("{note}");
        }
        let linux_only =
            self.distcc.is_some() || self.suggest_config || !matches!(self.cache, cli::Cache::Auto);
        if prepared.freebsd.is_some() && linux_only {
            anyhow::bail!(
                "--distcc, --suggest-config and --cache are for a Linux tree; a FreeBSD build \
                 takes -j, --no-fallback and make arguments"
            );
        }
        let _lock = prepared.lock(ctx, Access::Exclusive)?;
        if prepared.freebsd.is_some() {
            let request = BuildRequest {
                jobs: self.jobs.unwrap_or_else(builder::default_jobs),
                fallback: !self.no_fallback,
                make_args: self.make_args,
                ..BuildRequest::default_for_run()
            };
            return builder::freebsd::build(ctx, &prepared, &request);
        }
        // --distcc, else the DISTCC_HOSTS the distcc client itself reads.
        let hosts = self.distcc.clone().or_else(|| {
            std::env::var("DISTCC_HOSTS")
                .ok()
                .filter(|h| !h.trim().is_empty())
        });
        let distcc = hosts.map(|h| distcc::parse_hosts(&h)).transpose()?;
        let jobs = self.jobs.unwrap_or_else(|| {
            distcc
                .as_ref()
                .map_or(builder::default_jobs(), |f| f.jobs(builder::default_jobs()))
        });
        let request = BuildRequest {
            quick: false,
            jobs,
            fallback: !self.no_fallback,
            suggest_config: self.suggest_config,
            cache: self.cache.into(),
            make_args: self.make_args,
            distcc,
            // `build` asks make, whatever the index says.
            skip_unchanged: false,
        };
        if let Some(outcome) = builder::build(ctx, &prepared, &request)? {
            outcome.print(&prepared);
        }
        // Kbuild rewrote compile_commands.json: clangd's copy follows.
        let followed = clangd::refresh(ctx, &prepared, false)?;
        if let Some(line) = followed.line(&prepared, false) {
            eprintln!("{line}");
        }
        Ok(())
    }
}

/// The last build's warnings, by object, from its build log.
fn show_warnings(p: &Prepared) -> Result<()> {
    let path = p.state().build_log();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no build log at {}: build first (cargo xtask build)",
            path.display()
        )
    })?;
    let prefix = format!("{}/", p.tree.path.display());
    let groups = buildlog::warnings_by_object(&text, &prefix);
    let count: usize = groups.iter().map(|(_, lines)| lines.len()).sum();
    println!(
        "{count} warning(s) in {} object(s), from {}:",
        groups.len(),
        path.display()
    );
    for (object, lines) in groups {
        println!("{object}:");
        for line in lines {
            println!("  {line}");
        }
    }
    Ok(())
}

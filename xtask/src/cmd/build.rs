//! `cargo xtask build`: configure when needed, build with the fallback, and
//! print the summary.

use anyhow::Result;

use crate::{
    builder::{distcc, passes, BuildRequest},
    cli,
    ctx::{Ctx, Prepared},
    kernel::tree,
    util::lock::Access,
};

impl cli::Build {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let prepared = Prepared::new(ctx, &self.target.to_target())?;
        if let Some(note) = tree::pin_note(&prepared.tree.version) {
            eprintln!("{note}");
        }
        let _lock = prepared.lock(ctx, Access::Exclusive)?;
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
                .map_or(passes::default_jobs(), |f| f.jobs(passes::default_jobs()))
        });
        let request = BuildRequest {
            quick: false,
            jobs,
            fallback: !self.no_fallback,
            suggest_config: self.suggest_config,
            cache: self.cache.into(),
            make_args: self.make_args,
            distcc,
        };
        let outcome = passes::build(ctx, &prepared, &request)?;
        if !ctx.exec.dry_run {
            outcome.print(&prepared);
        }
        Ok(())
    }
}

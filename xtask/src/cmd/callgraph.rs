//! `cargo xtask callgraph FUNC`: the static call graph around FUNC, read
//! from the build directory's vmlinux, to a depth, callees or callers, as
//! text, DOT, SVG or JSON; with `--run -- CMD`, CMD traced and what it
//! reached marked on the graph.

use anyhow::{bail, Result};
use xshell::cmd;

use crate::{
    analysis::{
        callgraph::{self, overlay::Overlay, render::Map, sites::Sites, Direction, View},
        ftrace::Trace,
    },
    builder,
    cli::{self, GraphFormat},
    ctx::{Ctx, Prepared},
    guest::{
        trace_script::TraceSetup,
        tracing::{self, TraceRequest},
    },
    study::{callgraph_rules::CallgraphRules, host_tools, layers::Layers},
    util::lock::Access,
};

impl cli::Callgraph {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        if self.run == self.command.is_empty() {
            bail!("--run traces the command after `--`: give both, or neither");
        }
        let p = Prepared::new(ctx, &self.target.to_target())?;
        crate::guest::freebsd_guest::refuse_on_freebsd(&p, "callgraph")?;
        let mut lock = p.lock(ctx, Access::Shared)?;
        if self.run {
            tracing::require_ftrace(ctx, &p)?;
            builder::ensure_built(ctx, &p, &mut lock)?;
        }
        let rules = CallgraphRules::load(&ctx.study_dir())?;
        let index = callgraph::index_of(&ctx.exec, &p, &rules)?;
        let sites = Sites::new(&index, p.tree.path.clone());
        if let Some(dir) = &self.sites_under {
            print!("{}", sites.tally(dir));
            return Ok(());
        }
        let function = self.function.as_deref().expect("clap requires FUNC");
        let roots = callgraph::lookup(&index, function)?;
        let direction = if self.callers {
            Direction::Callers
        } else {
            Direction::Callees
        };
        if self.run && self.callers {
            bail!("--run follows what FUNC called; it does not go with --callers");
        }
        let overlay = match self.run {
            false => None,
            true => {
                let Some(trace) = self.traced(ctx, &p)? else {
                    return Ok(());
                };
                Some(Overlay::new(&index, &trace, &sites))
            }
        };
        let view = match &overlay {
            Some(run) => View::reached(&index, roots, self.depth, run),
            None => View::new(&index, roots, direction, self.depth),
        };
        let layers = Layers::load(&ctx.study_dir())?;
        let map = Map {
            index: &index,
            view: &view,
            layers: &layers,
            overlay: overlay.as_ref(),
            sites: Some(&sites),
        };
        let text = match self.format {
            GraphFormat::Text => map.text().into_bytes(),
            GraphFormat::Dot => map.dot().into_bytes(),
            GraphFormat::Json => map.json().into_bytes(),
            GraphFormat::Svg => {
                host_tools::require(&ctx.study_dir(), "callgraph", &p.arch.name)?;
                let sh = ctx.exec.sh();
                let out = ctx
                    .exec
                    .capture_with_input(cmd!(sh, "dot -Tsvg"), Some(map.dot().into_bytes()))?;
                out.stdout
            }
        };
        match &self.output {
            Some(path) => {
                ctx.exec.write(path, &text)?;
                eprintln!("callgraph: {}", path.display());
            }
            None => print!("{}", String::from_utf8_lossy(&text)),
        }
        Ok(())
    }

    /// FUNC's subtree in one run of the command, from function_graph.
    fn traced(&self, ctx: &Ctx, p: &Prepared) -> Result<Option<Trace>> {
        let request = TraceRequest {
            setup: TraceSetup::graph_below(self.function.as_deref().expect("clap requires FUNC")),
            command: &self.command,
            accel: self.accel.into(),
            timeout: std::time::Duration::from_secs(self.timeout),
            initramfs: false,
        };
        let Some(run) = tracing::trace_command(ctx, p, &request)? else {
            return Ok(None);
        };
        let text = run.trace_text()?;
        if let Some(path) = &self.trace_output {
            ctx.exec.write(path, &text)?;
        }
        if run.exit != 0 {
            eprintln!("callgraph: the command exited with status {}", run.exit);
        }
        Ok(Some(Trace::parse(&text)))
    }
}

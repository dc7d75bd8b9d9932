//! `cargo xtask trace`: an ftrace function_graph trace of FUNC while one
//! command runs in the guest, brought back to the host, printed in the
//! kernel's own format, condensed into a call chain by layer, and drawn as a
//! flame graph.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{bail, Context, Result};
use xshell::cmd;

use crate::{
    analysis::{
        spine::{render_spine, spine, totals},
        ftrace::{self, Trace},
    },
    builder, cli,
    ctx::{Ctx, Prepared},
    guest::{
        kvm,
        run::{self, RunRequest},
        trace_script::{check_function, guest_script, TraceSetup},
    },
    kernel::kconfig::edit_distance,
    study::{arch::Arch, layers::Layers},
    util::{fsutil, lock::Access, supervise::TempPath},
};

impl cli::Trace {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        for function in &self.functions {
            check_function(function, self.tracer.into()).map_err(anyhow::Error::msg)?;
        }
        let p = Prepared::new(ctx, &self.target.to_target())?;
        if !p.arch.ftrace {
            let with: Vec<String> = Arch::names(&ctx.study_dir())
                .into_iter()
                .filter(|n| Arch::load(&ctx.study_dir(), n).is_ok_and(|a| a.ftrace))
                .collect();
            bail!(
                "{} has no ftrace function_graph (study/arch/{}.toml: ftrace = false); trace on a build for {} (--arch)",
                p.arch.name,
                p.arch.name,
                with.join(" or ")
            );
        }
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        let config = p.config()?;
        for option in ["FUNCTION_GRAPH_TRACER", "DYNAMIC_FTRACE"] {
            if config.get(option) != "y" {
                bail!(
                    "profile {} has CONFIG_{option} off; add {option} = true to it",
                    p.profile.name
                );
            }
        }
        let out_dir = p
            .state()
            .trace()
            .join(format!("run-{}", std::process::id()));
        let _cleanup = TempPath::new(out_dir.clone());
        let setup = TraceSetup {
            functions: self.functions.clone(),
            tracer: self.tracer.into(),
            depth: self.depth,
            cpu_times: self.cpu_times,
            buffer_kb: 16384,
        };
        let script = out_dir.join("trace.sh");
        ctx.exec.write(&script, &guest_script(&setup))?;
        let accel = kvm::choose_accel(ctx, &p, self.accel.into())?;
        let request = RunRequest {
            out_dir: Some(out_dir.clone()),
            files: vec![script.clone()],
            initramfs: self.initramfs,
            timeout: std::time::Duration::from_secs(self.timeout),
            ..RunRequest::new(accel)
        };
        let mut argv = vec!["/bin/sh".to_string(), script.display().to_string()];
        argv.extend(self.command.iter().cloned());
        let outcome = run::run_command(ctx, &p, &request, &argv)?;
        if ctx.exec.dry_run {
            return Ok(ExitCode::SUCCESS);
        }
        // A guest that never reported a status says why, not "no trace".
        let Some(code) = outcome.exit else {
            bail!("{}", outcome.failure())
        };
        self.report(ctx, &p, &out_dir)?;
        Ok(run::exit_code(code))
    }

    fn report(&self, ctx: &Ctx, p: &Prepared, out_dir: &Path) -> Result<()> {
        if let Ok(missing) = std::fs::read_to_string(out_dir.join("missing")) {
            let available = std::fs::read_to_string(out_dir.join("available")).unwrap_or_default();
            let names: Vec<&str> = available.lines().collect();
            let mut lines = Vec::new();
            for name in missing.split_whitespace() {
                let near = nearest(name, &names, 5);
                lines.push(format!(
                    "{name} cannot be traced: it is not in available_filter_functions (inlined, notrace, or not built); nearest: {}",
                    near.join(", ")
                ));
            }
            bail!("{}", lines.join("\n"));
        }
        let text = fsutil::read_to_string(&out_dir.join("trace.txt"))
            .context("the guest wrote no trace")?;
        match &self.output {
            Some(path) => {
                std::fs::write(path, &text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("trace: {} ({} lines)", path.display(), text.lines().count());
            }
            None if !self.chain => print!("{text}"),
            None => {}
        }
        let trace = Trace::parse(&text);
        if !trace.skipped.is_empty() {
            eprintln!(
                "warning: {} trace lines not understood, e.g. line {}: {}",
                trace.skipped.len(),
                trace.skipped[0].0,
                trace.skipped[0].1
            );
        }
        if self.chain {
            let layers = Layers::load(&ctx.study_dir())?;
            let names: Vec<String> = trace
                .calls()
                .map(|c| ftrace::base_name(&c.name).to_string())
                .collect();
            let sources = source_files(ctx, p, &names)?;
            let layer_of = |name: &str| {
                sources
                    .get(ftrace::base_name(name))
                    .and_then(|s| layers.layer_of(s))
                    .map(String::from)
            };
            for function in &self.functions {
                let calls = trace.find(function);
                let Some(first) = calls.first() else {
                    eprintln!("{function}: not called while the command ran");
                    continue;
                };
                println!(
                    "{function}: {} call(s); the chain below the first, by layer:",
                    calls.len()
                );
                print!(
                    "{}",
                    render_spine(&spine(first, &layer_of, &layers), &totals(first, &layer_of))
                );
            }
        }
        if let Some(path) = &self.folded {
            std::fs::write(path, trace.folded())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("folded stacks: {}", path.display());
        }
        if let Some(path) = &self.svg {
            write_flamegraph(&trace, path, &self.functions.join(", "))?;
            eprintln!("flame graph: {}", path.display());
        }
        Ok(())
    }
}

/// Function name → tree-relative source file, through System.map and
/// `addr2line` on vmlinux's DWARF.
fn source_files(ctx: &Ctx, p: &Prepared, names: &[String]) -> Result<HashMap<String, String>> {
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let map = fsutil::read_to_string(&p.build_dir.join("System.map"))?;
    let symbols = text_symbols(&map);
    // The middle of each function, not its first address: where an entry
    // starts with ftrace's patchable NOPs (arm64), the line table gives
    // those the row before, another function's.
    let mut addresses = Vec::new();
    let mut order = Vec::new();
    for (i, (addr, name)) in symbols.iter().enumerate() {
        if !wanted.contains(name) || order.contains(&name.to_string()) {
            continue;
        }
        let next = symbols.get(i + 1).map_or(*addr, |(a, _)| *a);
        addresses.push(format!("{:#x}", addr + next.saturating_sub(*addr) / 2));
        order.push(name.to_string());
    }
    let mut out = HashMap::new();
    if addresses.is_empty() {
        return Ok(out);
    }
    let vmlinux = p.build_dir.join("vmlinux");
    let addr2line = p.arch.binutil("addr2line")?;
    let output = ctx.exec.query(cmd!(
        ctx.exec.sh(),
        "{addr2line} -a -i -e {vmlinux} {addresses...}"
    ))?;
    let prefix = format!("{}/", p.tree.path.display());
    for (name, file) in order
        .into_iter()
        .zip(outermost_files(&String::from_utf8_lossy(&output.stdout)))
    {
        let rel = file
            .strip_prefix(&prefix)
            .unwrap_or(&file)
            .trim_start_matches("./");
        out.insert(name, rel.to_string());
    }
    Ok(out)
}

/// System.map's text symbols, sorted by address.
fn text_symbols(map: &str) -> Vec<(u64, &str)> {
    let mut symbols: Vec<(u64, &str)> = map
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (addr, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            matches!(kind, "t" | "T" | "W" | "w")
                .then(|| Some((u64::from_str_radix(addr, 16).ok()?, name)))?
        })
        .collect();
    symbols.sort();
    symbols
}

/// `addr2line -a -i`'s answer, one file per address: the outermost frame's
/// (the last line of each block), the function's own, not that of a
/// function inlined into it.
fn outermost_files(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("0x") {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            *last = line.split(':').next().unwrap_or("").to_string();
        }
    }
    out
}

fn write_flamegraph(trace: &Trace, path: &PathBuf, title: &str) -> Result<()> {
    let folded = trace.folded();
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("ftrace: {title}");
    options.count_name = if folded.is_empty() {
        "calls".into()
    } else {
        "ns".into()
    };
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    inferno::flamegraph::from_lines(&mut options, folded.lines(), std::io::BufWriter::new(file))
        .map_err(|e| anyhow::anyhow!("flame graph: {e}"))
}

fn nearest<'a>(name: &str, names: &[&'a str], count: usize) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> =
        names.iter().map(|n| (edit_distance(name, n), *n)).collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(count).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names() {
        let names = [
            "tcp_sendmsg",
            "tcp_sendmsg_locked",
            "udp_sendmsg",
            "tcp_recvmsg",
        ];
        assert_eq!(
            nearest("tcp_sendmsgg", &names, 2),
            ["tcp_sendmsg", "udp_sendmsg"]
        );
    }

    #[test]
    fn each_address_gets_its_outermost_frames_file() {
        let answer = "0xffff800080364d18\n/l/include/net/dst.h:335\n/l/drivers/net/loopback.c:80 (discriminator 1)\n\
                      0xffff80008054cd88\n/l/net/ipv4/tcp.c:1350\n";
        assert_eq!(
            outermost_files(answer),
            ["/l/drivers/net/loopback.c", "/l/net/ipv4/tcp.c"]
        );
        let map = "ffff800080364d18 T loopback_xmit\nffff800080010000 t _stext\nffff800080364d00 D data\n";
        assert_eq!(
            text_symbols(map),
            [
                (0xffff800080010000, "_stext"),
                (0xffff800080364d18, "loopback_xmit")
            ]
        );
    }
}

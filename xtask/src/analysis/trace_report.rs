//! What `trace` tells of a run: why a function could not be traced, the
//! chain below each traced function by layer, and the flame graph.

use std::{collections::HashMap, path::Path};

use anyhow::Result;

use crate::{
    analysis::{
        ftrace::{self, Trace},
        spine::{render_spine, spine, totals},
    },
    kernel::kconfig::edit_distance,
    study::layers::Layers,
};

/// The guest's word that some functions are not traceable (its `missing`
/// file), each with the nearest names it could trace; `None` when all were.
pub fn untraceable(out_dir: &Path) -> Option<String> {
    let missing = std::fs::read_to_string(out_dir.join("missing")).ok()?;
    let available = std::fs::read_to_string(out_dir.join("available")).unwrap_or_default();
    let names: Vec<&str> = available.lines().collect();
    let lines: Vec<String> = missing
        .split_whitespace()
        .map(|name| {
            format!(
                "{name} cannot be traced: it is not in available_filter_functions (inlined, notrace, or not built); nearest: {}",
                nearest(name, &names, 5).join(", ")
            )
        })
        .collect();
    Some(lines.join("\n"))
}

/// For each of `functions`, the chain below its first call, one line per
/// layer (`sources`: function → tree-relative source file).
pub fn chains(
    trace: &Trace,
    functions: &[String],
    layers: &Layers,
    sources: &HashMap<String, String>,
) -> String {
    let layer_of = |name: &str| {
        sources
            .get(ftrace::base_name(name))
            .and_then(|s| layers.layer_of(s))
            .map(String::from)
    };
    let mut out = String::new();
    for function in functions {
        let calls = trace.find(function);
        let Some(first) = calls.first() else {
            out.push_str(&format!("{function}: not called while the command ran\n"));
            continue;
        };
        out.push_str(&format!(
            "{function}: {} call(s); the chain below the first, by layer:\n",
            calls.len()
        ));
        out.push_str(&render_spine(
            &spine(first, &layer_of, layers),
            &totals(first, &layer_of),
        ));
    }
    out
}

/// The trace's folded stacks drawn as an SVG flame graph.
pub fn flame_graph(trace: &Trace, title: &str) -> Result<Vec<u8>> {
    let folded = trace.folded();
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("ftrace: {title}");
    options.count_name = if folded.is_empty() {
        "calls".into()
    } else {
        "ns".into()
    };
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .map_err(|e| anyhow::anyhow!("flame graph: {e}"))?;
    Ok(svg)
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
}

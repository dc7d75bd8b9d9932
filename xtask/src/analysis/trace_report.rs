//! What `trace` tells of a run: the chain below each traced function by
//! layer, and the flame graph.

use std::collections::HashMap;

use anyhow::Result;

use crate::{
    analysis::{
        ftrace::{self, Trace},
        spine::{render_spine, spine, totals},
    },
    study::layers::Layers,
};

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

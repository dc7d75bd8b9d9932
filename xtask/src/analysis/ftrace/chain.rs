//! A call's subtree condensed to one line per layer, each function with its
//! call count and total time.

use serde::Serialize;

use super::model::Call;

/// One layer of a condensed call chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainLine {
    pub layer: String,
    /// Functions of this layer in call order, each once.
    pub functions: Vec<ChainFn>,
}

/// A function of a [`ChainLine`] with its calls folded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainFn {
    pub name: String,
    pub calls: usize,
    /// Sum of the inclusive durations (recursive calls counted once);
    /// `None` if no call has a duration.
    pub total_us: Option<f64>,
}

/// Condenses the tree below (and including) `call` to one line per layer,
/// layers in the order first reached depth first. `layer_of` classifies a
/// function name; functions it returns `None` for are left out, but their
/// children are still walked. Interrupts (`in_irq`) inside `call` are skipped.
pub fn chain(call: &Call, layer_of: &dyn Fn(&str) -> Option<String>) -> Vec<ChainLine> {
    let mut lines = Vec::new();
    add_to_chain(call, call.in_irq, layer_of, &mut lines, &mut Vec::new());
    lines
}

fn add_to_chain<'a>(
    call: &'a Call,
    irq_ok: bool,
    layer_of: &dyn Fn(&str) -> Option<String>,
    lines: &mut Vec<ChainLine>,
    path: &mut Vec<&'a str>,
) {
    if call.in_irq && !irq_ok {
        return;
    }
    if let Some(layer) = layer_of(&call.name) {
        let recursive = path.contains(&call.name.as_str());
        let func = chain_fn(chain_line(lines, layer), &call.name);
        func.calls += 1;
        if let (Some(d), false) = (call.duration_us, recursive) {
            func.total_us = Some(func.total_us.unwrap_or(0.0) + d);
        }
    }
    path.push(&call.name);
    for child in &call.children {
        add_to_chain(child, irq_ok, layer_of, lines, path);
    }
    path.pop();
}

fn chain_line(lines: &mut Vec<ChainLine>, layer: String) -> &mut ChainLine {
    let i = match lines.iter().position(|l| l.layer == layer) {
        Some(i) => i,
        None => {
            lines.push(ChainLine {
                layer,
                functions: Vec::new(),
            });
            lines.len() - 1
        }
    };
    &mut lines[i]
}

fn chain_fn<'l>(line: &'l mut ChainLine, name: &str) -> &'l mut ChainFn {
    let i = match line.functions.iter().position(|f| f.name == name) {
        Some(i) => i,
        None => {
            line.functions.push(ChainFn {
                name: name.to_string(),
                calls: 0,
                total_us: None,
            });
            line.functions.len() - 1
        }
    };
    &mut line.functions[i]
}

//! The call tree of a function_graph trace, and what is read off it: every
//! call, the calls of one function, folded stacks.

use std::collections::BTreeMap;

use serde::Serialize;

/// One traced function call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Call {
    /// Symbol as printed (`%ps`), compiler suffixes such as `.constprop.0` kept.
    pub name: String,
    /// Module of the symbol (`func [module]`), `None` for vmlinux.
    pub module: Option<String>,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    /// Task name as the kernel prints it (truncated to 7 characters).
    pub task: Option<String>,
    /// Inclusive time; `None` if the exit is not in the trace.
    pub duration_us: Option<f64>,
    /// Overhead mark before the duration: `+ ! # * @ $`.
    pub mark: Option<char>,
    /// Absolute timestamp of the first line of the call (funcgraph-abstime), seconds.
    pub abs_time: Option<f64>,
    /// Return value (funcgraph-retval), as printed.
    pub retval: Option<String>,
    /// Graph depth from the indentation.
    pub depth: usize,
    /// 1-based line of the entry (of the first child or the exit if the entry is missing).
    pub line: usize,
    pub children: Vec<Call>,
    /// Inside an interrupt: between `==========>` and `<==========`, or
    /// between `irq_enter_rcu()` and `irq_exit_rcu()` (x86 prints no markers).
    pub in_irq: bool,
    /// The entry line was not in the buffer; only the exit was seen.
    pub entry_missing: bool,
}

/// A comment in the function column: `trace_marker` text, `trace_printk`, events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    pub line: usize,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub text: String,
}

/// A `CPU:n [LOST m EVENTS]` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lost {
    pub line: usize,
    pub cpu: u32,
    pub count: Option<u64>,
}

/// A parsed trace: one forest per CPU, concatenated.
#[derive(Debug, Default, Serialize)]
pub struct Trace {
    /// Top-level calls sorted by CPU, then by line.
    pub roots: Vec<Call>,
    /// Lines that could not be parsed: (1-based line number, text).
    pub skipped: Vec<(usize, String)>,
    pub markers: Vec<Marker>,
    pub lost: Vec<Lost>,
}

impl Trace {
    /// Every call in the trace, depth first.
    pub fn calls(&self) -> Walk<'_> {
        Walk {
            stack: self.roots.iter().rev().collect(),
        }
    }

    /// Every call of `name`, depth first; `name` also matches compiler
    /// variants such as `name.constprop.0`.
    pub fn find(&self, name: &str) -> Vec<&Call> {
        self.calls()
            .filter(|c| c.name == name || base_name(&c.name) == name)
            .collect()
    }

    /// CPUs that have calls, in order.
    #[cfg(test)]
    pub fn cpus(&self) -> Vec<Option<u32>> {
        let mut cpus: Vec<_> = self.roots.iter().map(|c| c.cpu).collect();
        cpus.dedup();
        cpus
    }

    /// The top-level calls of one CPU.
    #[cfg(test)]
    pub fn forest(&self, cpu: Option<u32>) -> Vec<&Call> {
        self.roots.iter().filter(|c| c.cpu == cpu).collect()
    }

    /// Folded stacks (`a;b;c N`, sorted) for flamegraph.pl / inferno. N is the
    /// self time in ns when the trace has durations, else the number of calls.
    pub fn folded(&self) -> String {
        let timed = self.calls().any(|c| c.duration_us.is_some());
        let mut stacks = BTreeMap::new();
        let mut path = Vec::new();
        for root in &self.roots {
            fold(root, timed, &mut path, &mut stacks);
        }
        stacks
            .into_iter()
            .map(|(stack, value)| (stack, value.round() as u64))
            .filter(|(_, n)| *n > 0)
            .map(|(stack, n)| format!("{stack} {n}\n"))
            .collect()
    }
}

impl Call {
    /// This call and everything below it, depth first.
    #[cfg(test)]
    pub fn walk(&self) -> Walk<'_> {
        Walk { stack: vec![self] }
    }

    /// Duration minus the children's durations (never negative).
    pub fn self_us(&self) -> Option<f64> {
        let children: f64 = self.children.iter().filter_map(|c| c.duration_us).sum();
        self.duration_us.map(|d| (d - children).max(0.0))
    }
}

/// Depth-first iterator over calls.
pub struct Walk<'a> {
    stack: Vec<&'a Call>,
}

impl<'a> Iterator for Walk<'a> {
    type Item = &'a Call;

    fn next(&mut self) -> Option<&'a Call> {
        let call = self.stack.pop()?;
        self.stack.extend(call.children.iter().rev());
        Some(call)
    }
}

/// The symbol without compiler suffixes: `tcp_x.constprop.0` -> `tcp_x`.
pub fn base_name(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

fn fold<'a>(
    call: &'a Call,
    timed: bool,
    path: &mut Vec<&'a str>,
    stacks: &mut BTreeMap<String, f64>,
) {
    path.push(&call.name);
    let value = match timed {
        true => call.self_us().unwrap_or(0.0) * 1000.0,
        false => 1.0,
    };
    *stacks.entry(path.join(";")).or_default() += value;
    for child in &call.children {
        fold(child, timed, path, stacks);
    }
    path.pop();
}

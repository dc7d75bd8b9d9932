//! What one traced run reached of the static graph: each function's calls
//! and time, each caller → callee pair the run took, and, for a function
//! with indirect call sites, the targets the run called that are none of
//! its direct callees (function_graph's parent → child), and the helpers
//! ftrace cannot see that a run's call went through.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::analysis::{
    callgraph::{Index, Target},
    ftrace::{base_name, Call, Trace},
};

#[derive(Debug, Default, Clone)]
pub struct Reached {
    pub calls: usize,
    /// Total time over the calls that have a duration.
    pub us: f64,
}

#[derive(Debug, Default)]
pub struct Overlay {
    /// By function name (compiler suffixes such as `.isra.0` dropped).
    pub reached: HashMap<String, Reached>,
    /// (caller, callee) by name.
    pub taken: HashSet<(String, String)>,
    /// Per function with indirect sites: the targets this run called
    /// through them, with their counts.
    pub indirect: BTreeMap<u32, BTreeMap<String, usize>>,
    /// Functions ftrace does not see that a run went through: followed in
    /// the view as if reached.
    pub bridges: HashSet<u32>,
}

/// How deep a search goes through functions ftrace cannot see (an
/// out-of-line `static inline` helper at -O0) for the call a trace shows
/// as a parent's child.
const BRIDGE_DEPTH: usize = 4;

impl Overlay {
    pub fn new(index: &Index, trace: &Trace) -> Overlay {
        let mut overlay = Overlay::default();
        for root in &trace.roots {
            walk(root, &mut overlay);
        }
        let mut children: HashMap<&str, BTreeMap<String, usize>> = HashMap::new();
        for root in &trace.roots {
            collect_children(root, &mut children);
        }
        let mut by_name: HashMap<&str, u32> = HashMap::new();
        for (i, f) in index.functions.iter().enumerate() {
            by_name.entry(f.name.as_str()).or_insert(i as u32);
        }
        // A run's child C of P that P does not call directly came through
        // a function ftrace does not see (P → helper → C), or through an
        // indirect site of P or of such a helper. The nearest explanation
        // wins, a direct call over an indirect one.
        for (parent, seen) in &children {
            let Some(&p) = by_name.get(parent) else {
                continue;
            };
            for (child, count) in seen {
                let Some(&c) = by_name.get(child.as_str()) else {
                    continue;
                };
                if direct_callees(index, p).any(|to| to == c) {
                    continue;
                }
                if let Some((through, bridge)) = explain(index, p, c) {
                    overlay.bridges.extend(bridge);
                    if let Some(u) = through {
                        *overlay
                            .indirect
                            .entry(u)
                            .or_default()
                            .entry(child.clone())
                            .or_default() += count;
                    }
                }
            }
        }
        overlay
    }

    pub fn reached(&self, name: &str) -> Option<&Reached> {
        self.reached.get(name)
    }

    /// Whether the view follows function `f` (named `name`) below its
    /// depth: the run reached it, or went through it unseen.
    pub fn follows(&self, f: u32, name: &str) -> bool {
        self.reached(name).is_some() || self.bridges.contains(&f)
    }
}

fn direct_callees(index: &Index, f: u32) -> impl Iterator<Item = u32> + '_ {
    index.functions[f as usize]
        .calls
        .iter()
        .filter_map(|c| match c.target {
            Target::Direct(to) | Target::Tail(to) => Some(to),
            Target::Indirect => None,
        })
}

/// How `p` reached `c` unseen, breadth first through untraceable callees:
/// `(None, bridge)` when the last of `bridge` calls `c` directly,
/// `(Some(u), bridge)` when `c` came through an indirect site of `u`.
fn explain(index: &Index, p: u32, c: u32) -> Option<(Option<u32>, Vec<u32>)> {
    let mut queue = std::collections::VecDeque::from([(p, Vec::new())]);
    let mut visited = HashSet::from([p]);
    let mut indirect = None;
    while let Some((u, bridge)) = queue.pop_front() {
        if u != p && direct_callees(index, u).any(|to| to == c) {
            return Some((None, bridge));
        }
        let has_indirect = index.functions[u as usize]
            .calls
            .iter()
            .any(|call| call.target == Target::Indirect);
        if has_indirect && indirect.is_none() {
            indirect = Some((Some(u), bridge.clone()));
        }
        if bridge.len() == BRIDGE_DEPTH {
            continue;
        }
        for v in direct_callees(index, u) {
            if !index.functions[v as usize].traceable && visited.insert(v) {
                let mut next = bridge.clone();
                next.push(v);
                queue.push_back((v, next));
            }
        }
    }
    indirect
}

fn walk(call: &Call, overlay: &mut Overlay) {
    let name = base_name(&call.name).to_string();
    let r = overlay.reached.entry(name.clone()).or_default();
    r.calls += 1;
    r.us += call.duration_us.unwrap_or(0.0);
    // An interrupt's calls were reached too, but not called by `call`.
    for child in &call.children {
        if !child.in_irq {
            overlay
                .taken
                .insert((name.clone(), base_name(&child.name).to_string()));
        }
        walk(child, overlay);
    }
}

fn collect_children<'a>(call: &'a Call, out: &mut HashMap<&'a str, BTreeMap<String, usize>>) {
    let name = base_name(&call.name);
    for child in call.children.iter().filter(|c| !c.in_irq) {
        *out.entry(name)
            .or_default()
            .entry(base_name(&child.name).to_string())
            .or_default() += 1;
        collect_children(child, out);
    }
}

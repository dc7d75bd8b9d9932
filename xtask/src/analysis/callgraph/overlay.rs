//! What one traced run reached of the static graph: each function's calls
//! and time, each caller → callee pair the run took, and, for a function
//! with indirect call sites, the targets the run called that are none of
//! its direct callees (function_graph's parent → child).

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
}

impl Overlay {
    pub fn new(index: &Index, trace: &Trace) -> Overlay {
        let mut overlay = Overlay::default();
        for root in &trace.roots {
            walk(root, &mut overlay);
        }
        // A run's child of F that F does not call directly came through
        // one of F's indirect sites (or an interrupt, which the trace marks
        // and `walk` leaves out).
        let mut children: HashMap<&str, BTreeMap<String, usize>> = HashMap::new();
        for root in &trace.roots {
            collect_children(root, &mut children);
        }
        for (i, f) in index.functions.iter().enumerate() {
            if !f.calls.iter().any(|c| c.target == Target::Indirect) {
                continue;
            }
            let Some(seen) = children.get(f.name.as_str()) else {
                continue;
            };
            let direct: HashSet<&str> = f
                .calls
                .iter()
                .filter_map(|c| match c.target {
                    Target::Direct(to) | Target::Tail(to) => {
                        Some(index.functions[to as usize].name.as_str())
                    }
                    Target::Indirect => None,
                })
                .collect();
            let through: BTreeMap<String, usize> = seen
                .iter()
                .filter(|(name, _)| !direct.contains(name.as_str()))
                .map(|(n, c)| (n.clone(), *c))
                .collect();
            if !through.is_empty() {
                overlay.indirect.insert(i as u32, through);
            }
        }
        overlay
    }

    pub fn reached(&self, name: &str) -> Option<&Reached> {
        self.reached.get(name)
    }
}

fn walk(call: &Call, overlay: &mut Overlay) {
    let name = base_name(&call.name).to_string();
    let r = overlay.reached.entry(name.clone()).or_default();
    r.calls += 1;
    r.us += call.duration_us.unwrap_or(0.0);
    for child in call.children.iter().filter(|c| !c.in_irq) {
        overlay
            .taken
            .insert((name.clone(), base_name(&child.name).to_string()));
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

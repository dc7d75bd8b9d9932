//! The map of the path: the static call graph of a built kernel
//! ([`index`], from vmlinux's own code and DWARF), the graph around one
//! function to a depth, callees or callers ([`View`]), what one traced run
//! reached of it ([`overlay`]), and the text, DOT and JSON of it
//! ([`render`]). It uses `ctx`, `study` and `util`.

pub mod decode;
pub mod index;
pub mod member;
pub mod overlay;
pub mod render;
pub mod sites;
pub mod stored;

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{bail, Result};

pub use index::{Index, Target};

use crate::{ctx::Prepared, study::callgraph_rules::CallgraphRules, util::exec::Exec};

/// The build directory's index: read when neither vmlinux nor the rules
/// changed since it was made, else made again (and said so, with the time
/// it took).
pub fn index_of(exec: &Exec, p: &Prepared, rules: &CallgraphRules) -> Result<Index> {
    let vmlinux = p.build_dir.join("vmlinux");
    if !vmlinux.is_file() {
        bail!(
            "no vmlinux in {}: run `cargo xtask build --profile {}`",
            p.build_dir.display(),
            p.profile.name
        );
    }
    let path = p.state().callgraph_index();
    if let Some(index) = Index::stored(&path, &vmlinux, rules)? {
        return Ok(index);
    }
    let start = std::time::Instant::now();
    eprintln!(
        "callgraph: indexing {} (once per vmlinux and rules)",
        vmlinux.display()
    );
    let index = Index::build(&vmlinux, &p.tree.path, rules)?;
    let calls: usize = index.functions.iter().map(|f| f.calls.len()).sum();
    eprintln!(
        "callgraph: {} functions, {calls} call sites, in {:.1} s",
        index.functions.len(),
        start.elapsed().as_secs_f64()
    );
    exec.write(&path, index.to_bytes())?;
    Ok(index)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Callees,
    Callers,
}

/// One edge of the view: from a function to a callee (or, for callers,
/// from a caller to the function), with every call site.
#[derive(Debug, Clone)]
pub struct Edge {
    pub from: u32,
    /// `None`: an indirect call, whose target the code does not say.
    pub to: Option<u32>,
    pub tail: bool,
    /// A target a traced run called through one of `from`'s indirect
    /// sites (`sites`): known from the run, not from the code.
    pub taken_indirect: bool,
    /// An indirect site's member offset (`index::Call::load`).
    pub load: Option<u64>,
    /// An indirect site's address (`index::Call::site`).
    pub at: Option<u64>,
    /// (file, line) of each call site.
    pub sites: Vec<(Option<u32>, u32)>,
}

/// The graph around `roots` to `depth`, breadth first: each function
/// once, its edges in the order of their first call site.
#[derive(Debug, Clone)]
pub struct View {
    pub roots: Vec<u32>,
    pub direction: Direction,
    pub depth: usize,
    /// Every function in the view, with its distance from a root.
    pub functions: BTreeMap<u32, usize>,
    pub edges: Vec<Edge>,
}

/// The functions named `name`: several when static functions of different
/// files share it; none is one line with the nearest names.
pub fn lookup(index: &Index, name: &str) -> Result<Vec<u32>> {
    let found: Vec<u32> = index
        .functions
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name == name)
        .map(|(i, _)| i as u32)
        .collect();
    if found.is_empty() {
        let mut near: Vec<(usize, &str)> = index
            .functions
            .iter()
            .filter(|f| f.name.contains(name) || name.contains(f.name.as_str()))
            .map(|f| (f.name.len().abs_diff(name.len()), f.name.as_str()))
            .collect();
        near.sort();
        near.dedup();
        let near: Vec<&str> = near.into_iter().take(5).map(|(_, n)| n).collect();
        bail!(
            "{name}: no such function in vmlinux (inlined everywhere, or not built){}",
            if near.is_empty() {
                String::new()
            } else {
                format!("; nearest: {}", near.join(", "))
            }
        );
    }
    Ok(found)
}

/// How far a run's overlay carries the view below `--depth`: a reached
/// function is followed to here, so a run's path shows to its end.
pub const REACHED_DEPTH: usize = 64;

impl View {
    pub fn new(index: &Index, roots: Vec<u32>, direction: Direction, depth: usize) -> View {
        View::build(index, roots, direction, depth, None)
    }

    /// The callees view with a run on it: what the run reached is followed
    /// down to [`REACHED_DEPTH`], through the targets it took at indirect
    /// sites too; what it did not reach, to `depth` only.
    pub fn reached(index: &Index, roots: Vec<u32>, depth: usize, run: &overlay::Overlay) -> View {
        View::build(index, roots, Direction::Callees, depth, Some(run))
    }

    fn build(
        index: &Index,
        roots: Vec<u32>,
        direction: Direction,
        depth: usize,
        run: Option<&overlay::Overlay>,
    ) -> View {
        let callers = (direction == Direction::Callers).then(|| callers_of(index));
        let mut functions: BTreeMap<u32, usize> = roots.iter().map(|&r| (r, 0)).collect();
        let mut edges = Vec::new();
        let mut frontier = roots.clone();
        let levels = if run.is_some() { REACHED_DEPTH } else { depth };
        let reached = |f: u32| run.is_some_and(|o| o.follows(f, &index.functions[f as usize].name));
        for level in 0..levels {
            let mut next = Vec::new();
            for &f in &frontier {
                if level >= depth && !reached(f) {
                    continue;
                }
                let mut found = match &callers {
                    None => callee_edges(index, f),
                    Some(callers) => caller_edges(index, callers, f),
                };
                if let Some(run) = run {
                    found.extend(taken_edges(index, f, run));
                }
                for edge in found {
                    let other = match direction {
                        Direction::Callees => edge.to,
                        Direction::Callers => Some(edge.from),
                    };
                    if let Some(other) = other {
                        if let std::collections::btree_map::Entry::Vacant(new) =
                            functions.entry(other)
                        {
                            new.insert(level + 1);
                            next.push(other);
                        }
                    }
                    edges.push(edge);
                }
            }
            frontier = next;
        }
        View {
            roots,
            direction,
            depth,
            functions,
            edges,
        }
    }

    /// The edges out of `f` in the view's direction.
    pub fn edges_of(&self, f: u32) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| match self.direction {
            Direction::Callees => e.from == f,
            Direction::Callers => e.to == Some(f),
        })
    }
}

/// `f`'s callees, one edge per callee (and one per indirect site).
fn callee_edges(index: &Index, f: u32) -> Vec<Edge> {
    let mut edges: Vec<Edge> = Vec::new();
    let mut at: HashMap<(u32, bool), usize> = HashMap::new();
    for call in &index.functions[f as usize].calls {
        let site = (call.file, call.line);
        let (to, tail) = match call.target {
            Target::Direct(to) => (to, false),
            Target::Tail(to) => (to, true),
            Target::Indirect => {
                edges.push(Edge {
                    from: f,
                    to: None,
                    tail: false,
                    taken_indirect: false,
                    load: call.load,
                    at: Some(call.site),
                    sites: vec![site],
                });
                continue;
            }
        };
        match at.get(&(to, tail)) {
            Some(&i) => {
                if !edges[i].sites.contains(&site) {
                    edges[i].sites.push(site);
                }
            }
            None => {
                at.insert((to, tail), edges.len());
                edges.push(Edge {
                    from: f,
                    to: Some(to),
                    tail,
                    taken_indirect: false,
                    load: None,
                    at: None,
                    sites: vec![site],
                });
            }
        }
    }
    edges
}

/// The targets a run called through `f`'s indirect sites, as edges, each
/// with the sites it was placed at (`overlay::Placed`).
fn taken_edges(index: &Index, f: u32, run: &overlay::Overlay) -> Vec<Edge> {
    let Some(taken) = run.indirect.get(&f) else {
        return Vec::new();
    };
    let indirect: Vec<&index::Call> = index.functions[f as usize]
        .calls
        .iter()
        .filter(|c| c.target == Target::Indirect)
        .collect();
    taken
        .keys()
        .filter_map(|name| {
            let to = index.functions.iter().position(|g| &g.name == name)? as u32;
            let sites = indirect
                .iter()
                .filter(|c| {
                    run.at_site
                        .get(&c.site)
                        .is_some_and(|t| t.contains_key(name))
                })
                .map(|c| (c.file, c.line))
                .collect();
            Some(Edge {
                from: f,
                to: Some(to),
                tail: false,
                taken_indirect: true,
                load: None,
                at: None,
                sites,
            })
        })
        .collect()
}

/// For each function, the functions that call it directly.
fn callers_of(index: &Index) -> Vec<Vec<u32>> {
    let mut callers = vec![Vec::new(); index.functions.len()];
    for (i, f) in index.functions.iter().enumerate() {
        let mut seen = HashSet::new();
        for call in &f.calls {
            if let Target::Direct(to) | Target::Tail(to) = call.target {
                if seen.insert(to) {
                    callers[to as usize].push(i as u32);
                }
            }
        }
    }
    callers
}

fn caller_edges(index: &Index, callers: &[Vec<u32>], f: u32) -> Vec<Edge> {
    callers[f as usize]
        .iter()
        .flat_map(|&caller| callee_edges(index, caller))
        .filter(|e| e.to == Some(f))
        .collect()
}

#[cfg(test)]
mod tests;

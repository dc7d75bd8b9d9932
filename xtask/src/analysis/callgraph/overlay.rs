//! What one traced run reached of the static graph: each function's calls
//! and time, each caller → callee pair the run took, and, for a function
//! with indirect call sites, the targets the run called that are none of
//! its direct callees (function_graph's parent → child), placed at the
//! indirect site whose candidates hold it ([`Placed`]), and the helpers
//! ftrace cannot see that a run's call went through.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::analysis::{
    callgraph::{
        sites::{Reach, Sites},
        Index, Target,
    },
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
    /// By indirect call site (its address): the targets the run took there
    /// (or may have: see [`Placed`]), with their calls.
    pub at_site: BTreeMap<u64, BTreeMap<String, Took>>,
}

/// A target a run took through an indirect site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Took {
    pub calls: usize,
    pub placed: Placed,
}

/// How a run's target was placed at one of its function's indirect sites.
/// ftrace's function_graph gives the caller and the callee, not the call
/// instruction: the site is the one whose candidates hold the callee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Among this site's candidates, and no other site's of the function.
    Candidate,
    /// The function's only indirect site, whose member is not named.
    OnlySite,
    /// The function's only indirect site is named and does not list it:
    /// the run came another way the index does not follow (a pointer
    /// handed to an unseen helper: `NF_HOOK`'s `okfn`).
    Unlisted,
    /// No site's candidates hold it, and this is the function's only site
    /// whose member is not named.
    OnlyUnnamed,
    /// One of this many sites: those whose candidates hold it, or (none
    /// does) those not named, or (all are named) every site. The run's
    /// calls are the function's, not this site's.
    OneOf(usize),
    /// No site lists it, but a candidate of this site (or of this many
    /// sites) is a function ftrace cannot see that calls it directly
    /// (`csum_partial` at `__skb_checksum`'s `update` site, through the
    /// out-of-line `csum_partial_ext`).
    Through { helper: String, sites: usize },
}

impl Placed {
    /// How the place was found, for the text and the JSON.
    pub fn how(&self) -> String {
        match self {
            Placed::Candidate => "a candidate of this site only".into(),
            Placed::OnlySite => "the function's only indirect site".into(),
            Placed::Unlisted => {
                "its only indirect site does not list it: maybe through a pointer handed to a helper ftrace cannot see".into()
            }
            Placed::OnlyUnnamed => {
                "no site lists it; the only site whose member is not named".into()
            }
            Placed::OneOf(n) => format!("ambiguous: one of {n} sites"),
            Placed::Through { helper, sites: 1 } => {
                format!("through {helper}, a candidate ftrace cannot see")
            }
            Placed::Through { helper, sites } => {
                format!("through {helper}, a candidate ftrace cannot see; one of {sites} sites")
            }
        }
    }

    pub fn sure(&self) -> bool {
        match self {
            Placed::OneOf(_) | Placed::Unlisted => false,
            Placed::Through { sites, .. } => *sites == 1,
            _ => true,
        }
    }
}

/// How deep a search goes through functions ftrace cannot see (an
/// out-of-line `static inline` helper at -O0) for the call a trace shows
/// as a parent's child.
const BRIDGE_DEPTH: usize = 4;

impl Overlay {
    /// The run in `trace` on `index`; what it took at indirect sites
    /// placed by their candidates (`sites`).
    pub fn new(index: &Index, trace: &Trace, sites: &Sites) -> Overlay {
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
                if let Some((through, bridge)) = explain(index, p, c, sites) {
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
        overlay.at_site = place(index, &overlay.indirect, sites);
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

/// Each run's target through a function's indirect sites, at the site
/// whose candidates hold it; where several could be it, at each of them,
/// said so.
pub(super) fn place(
    index: &Index,
    indirect: &BTreeMap<u32, BTreeMap<String, usize>>,
    sites: &Sites,
) -> BTreeMap<u64, BTreeMap<String, Took>> {
    let mut out: BTreeMap<u64, BTreeMap<String, Took>> = BTreeMap::new();
    for (&u, targets) in indirect {
        let reach: Vec<(u64, Reach)> = index.functions[u as usize]
            .calls
            .iter()
            .filter(|c| c.target == Target::Indirect)
            .map(|c| (c.site, sites.reach(u, c.file, c.line, c.load)))
            .collect();
        for (name, &calls) in targets {
            let lists = |r: &Reach| match r {
                Reach::Named { candidates, .. } => candidates
                    .iter()
                    .any(|&c| index.functions[c as usize].name == *name),
                Reach::Unnamed(_) => false,
            };
            let listing: Vec<u64> = reach
                .iter()
                .filter(|(_, r)| lists(r))
                .map(|s| s.0)
                .collect();
            let unnamed: Vec<u64> = reach
                .iter()
                .filter(|(_, r)| matches!(r, Reach::Unnamed(_)))
                .map(|s| s.0)
                .collect();
            let every: Vec<u64> = reach.iter().map(|s| s.0).collect();
            let through = (listing.is_empty())
                .then(|| through_helper(index, &reach, name))
                .flatten();
            let (at, placed) = match (listing.len(), unnamed.len(), every.len()) {
                (0, _, _) if through.is_some() => {
                    let (helper, at) = through.expect("some");
                    let sites = at.len();
                    (at, Placed::Through { helper, sites })
                }
                (1, _, _) => (listing, Placed::Candidate),
                (0, 0, 1) => (every, Placed::Unlisted),
                (0, _, 1) => (every, Placed::OnlySite),
                (0, 1, _) => (unnamed, Placed::OnlyUnnamed),
                (0, 0, n) => (every, Placed::OneOf(n)),
                (0, n, _) => (unnamed, Placed::OneOf(n)),
                (n, _, _) => (listing, Placed::OneOf(n)),
            };
            for site in at {
                out.entry(site).or_default().insert(
                    name.clone(),
                    Took {
                        calls,
                        placed: placed.clone(),
                    },
                );
            }
        }
    }
    out
}

/// A candidate ftrace cannot see that calls `name` directly, and the sites
/// that list it.
fn through_helper(index: &Index, reach: &[(u64, Reach)], name: &str) -> Option<(String, Vec<u64>)> {
    let calls_it = |h: u32| {
        !index.functions[h as usize].traceable
            && direct_callees(index, h).any(|to| index.functions[to as usize].name == name)
    };
    let mut found: Option<(String, Vec<u64>)> = None;
    for (site, r) in reach {
        let Reach::Named { candidates, .. } = r else {
            continue;
        };
        if let Some(&h) = candidates.iter().find(|&&h| calls_it(h)) {
            let helper = &index.functions[h as usize].name;
            match &mut found {
                Some((first, at)) if first == helper => at.push(*site),
                Some(_) => {}
                None => found = Some((helper.clone(), vec![*site])),
            }
        }
    }
    found
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
/// `(Some(u), bridge)` when `c` came through an indirect site of `u`: the
/// nearest `u` with a site whose candidates hold `c`, else the nearest
/// with an indirect site.
fn explain(index: &Index, p: u32, c: u32, sites: &Sites) -> Option<(Option<u32>, Vec<u32>)> {
    let mut queue = std::collections::VecDeque::from([(p, Vec::new())]);
    let mut visited = HashSet::from([p]);
    let mut indirect = None;
    let name = &index.functions[c as usize].name;
    while let Some((u, bridge)) = queue.pop_front() {
        if u != p && direct_callees(index, u).any(|to| to == c) {
            return Some((None, bridge));
        }
        let mut lists = false;
        let mut has_indirect = false;
        for call in index.functions[u as usize].calls.iter() {
            if call.target != Target::Indirect {
                continue;
            }
            has_indirect = true;
            if let Reach::Named { candidates, .. } = sites.reach(u, call.file, call.line, call.load)
            {
                lists |= candidates
                    .iter()
                    .any(|&f| index.functions[f as usize].name == *name);
            }
        }
        if lists && indirect.as_ref().is_none_or(|(_, listed)| !listed) {
            indirect = Some(((Some(u), bridge.clone()), true));
        } else if has_indirect && indirect.is_none() {
            indirect = Some(((Some(u), bridge.clone()), false));
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
    indirect.map(|(found, _)| found)
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

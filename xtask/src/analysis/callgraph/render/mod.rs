//! The view as a text tree, as DOT for graphviz, and as JSON; with a run's
//! overlay, each function marked reached (calls and time) or not, and
//! what the run took through each indirect call site.

use std::collections::{BTreeMap, HashSet};

use crate::{
    analysis::callgraph::{
        overlay::{Overlay, Placed, Took},
        sites::{global_label, Reach, Sites},
        stored::CodeStore,
        Direction, Edge, Index, View,
    },
    study::layers::Layers,
};

pub struct Map<'a> {
    pub index: &'a Index,
    pub view: &'a View,
    pub layers: &'a Layers,
    pub overlay: Option<&'a Overlay>,
    /// What each indirect site can reach, when the tree's sources are at
    /// hand.
    pub sites: Option<&'a Sites<'a>>,
}

impl Map<'_> {
    fn name(&self, f: u32) -> &str {
        &self.index.functions[f as usize].name
    }

    fn file_of(&self, f: u32) -> &str {
        self.index.file(self.index.functions[f as usize].file)
    }

    fn layer(&self, f: u32) -> Option<&str> {
        self.layers.layer_of(self.file_of(f))
    }

    fn sites(&self, edge: &Edge) -> String {
        let mut sites: Vec<String> = Vec::new();
        for (file, line) in &edge.sites {
            let file = self.index.file(*file);
            let short = file.rsplit('/').next().unwrap_or(file);
            sites.push(format!("{short}:{line}"));
        }
        sites.join(", ")
    }

    /// ` ✓ 3× 12.0us`, ` ✗ not reached`, or ` · not traceable`.
    fn mark(&self, f: u32) -> String {
        let Some(overlay) = self.overlay else {
            return String::new();
        };
        let function = &self.index.functions[f as usize];
        match overlay.reached(&function.name) {
            Some(r) => format!("  ✓ {}× {:.1}us", r.calls, r.us),
            None if !function.traceable => "  · not traceable".into(),
            None => "  ✗ not reached".into(),
        }
    }

    fn label(&self, f: u32) -> String {
        let layer = self.layer(f).map_or(String::new(), |l| format!("  [{l}]"));
        format!(
            "{}  {}{layer}{}",
            self.name(f),
            self.file_of(f),
            self.mark(f)
        )
    }

    /// A tree from each root, each function expanded once.
    pub fn text(&self) -> String {
        let what = match self.view.direction {
            Direction::Callees => "callees",
            Direction::Callers => "callers",
        };
        let mut out = format!(
            "{what} to depth {}; ← the call sites (file:line)",
            self.view.depth
        );
        if self.overlay.is_some() {
            out += "; ✓ reached by the run (calls, total time), ✗ not reached, · not traceable (notrace, or inline: a real call at -O0 that function_graph never shows); at an indirect call, `can call`: the functions stored in its member, `did call`: what the run took there";
        }
        out.push('\n');
        let mut expanded = HashSet::new();
        for &root in &self.view.roots {
            out += &format!("{}\n", self.label(root));
            if self.view.direction == Direction::Callers {
                out += &self.stored_text(root);
            }
            expanded.insert(root);
            self.tree(root, "", 1, &mut expanded, &mut out);
        }
        out + &self.left_out()
    }

    fn tree(
        &self,
        f: u32,
        prefix: &str,
        depth: usize,
        expanded: &mut HashSet<u32>,
        out: &mut String,
    ) {
        let reached = self.overlay.is_some_and(|o| o.follows(f, self.name(f)));
        let limit = if self.overlay.is_some() {
            super::REACHED_DEPTH
        } else {
            self.view.depth
        };
        if depth > limit || (depth > self.view.depth && !reached) {
            return;
        }
        // Expanded only once its callees are shown: met first at the depth
        // limit, a function is still expanded where it appears higher up.
        expanded.insert(f);
        let edges: Vec<&Edge> = self.view.edges_of(f).collect();
        for (i, edge) in edges.iter().enumerate() {
            let last = i + 1 == edges.len();
            let (branch, more) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            let other = match self.view.direction {
                Direction::Callees => edge.to,
                Direction::Callers => Some(edge.from),
            };
            let Some(other) = other else {
                let took = self.took_text(edge);
                out.push_str(&format!(
                    "{prefix}{branch}(indirect call)  ← {}{}{took}\n",
                    self.sites(edge),
                    self.reach_text(edge)
                ));
                continue;
            };
            let tail = match (edge.tail, edge.taken_indirect) {
                (true, _) => " (tail call)",
                (_, true) => " (did call, through an indirect call)",
                _ => "",
            };
            let seen = expanded.contains(&other);
            out.push_str(&format!(
                "{prefix}{branch}{}{tail}  ← {}{}\n",
                self.label(other),
                self.sites(edge),
                if seen { "  (expanded above)" } else { "" }
            ));
            if !seen {
                self.tree(other, &format!("{prefix}{more}"), depth + 1, expanded, out);
            }
        }
    }

    /// What the run took at an indirect site: `  ✓ the run took here:
    /// ip_queue_xmit ×3`, and what it took at this site or another.
    fn took_text(&self, edge: &Edge) -> String {
        let Some(took) = self.took(edge) else {
            return String::new();
        };
        let (sure, maybe): (Vec<_>, Vec<_>) = took.iter().partition(|(_, t)| t.placed.sure());
        // A target a named site does not list was stored where the index
        // does not look (a pointer copied from elsewhere, a local only an
        // inlined function's DWARF names).
        let listed = |name: &str| match self.reach(edge) {
            Some(Reach::Named { candidates, .. }) => {
                candidates.iter().any(|&c| self.name(c) == name)
            }
            _ => true,
        };
        let list = |t: &[(&String, &Took)]| -> String {
            let t: Vec<String> = t
                .iter()
                .map(|(n, t)| match (listed(n), &t.placed) {
                    (true, _) => format!("{n} ×{}", t.calls),
                    (false, Placed::Through { helper, .. }) => {
                        format!("{n} ×{} (through {helper})", t.calls)
                    }
                    (false, _) => format!("{n} ×{} (not among its candidates)", t.calls),
                })
                .collect();
            t.join(", ")
        };
        let mut out = String::new();
        if !sure.is_empty() {
            out += &format!("  ✓ did call here: {}", list(&sure));
        }
        // Those not placed here for sure, by how they were placed.
        let mut by_how: BTreeMap<String, Vec<(&String, &Took)>> = BTreeMap::new();
        for (n, t) in maybe {
            by_how.entry(t.placed.how()).or_default().push((n, t));
        }
        for (how, t) in by_how {
            out += &format!("  ? did call, here or elsewhere ({how}): {}", list(&t));
        }
        out
    }

    /// The run's targets at an indirect site's edge.
    fn took(&self, edge: &Edge) -> Option<&BTreeMap<String, Took>> {
        self.overlay?.at_site.get(&edge.at?)
    }

    fn reach(&self, edge: &Edge) -> Option<Reach> {
        let &(file, line) = edge.sites.first()?;
        Some(self.sites?.reach(edge.from, file, line, edge.load))
    }

    /// `  through `struct proto.sendmsg`: 2 candidates: a, b`, or why not.
    fn reach_text(&self, edge: &Edge) -> String {
        match self.reach(edge) {
            None => String::new(),
            Some(Reach::Named {
                members,
                candidates,
            }) => {
                let names: Vec<&str> = candidates.iter().map(|&f| self.name(f)).collect();
                format!(
                    "  through `{}`: can call {} candidate{}: {}",
                    members.join("` or `"),
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )
            }
            Some(Reach::Unnamed(why)) => format!("  (member not named: {why})"),
        }
    }

    /// Where `f`'s address is stored in a static initializer or by code:
    /// the ways it is called without a direct call.
    fn stored_text(&self, f: u32) -> String {
        let mut out = String::new();
        let mut slots: Vec<(String, Option<String>)> = self
            .index
            .stored_of(f)
            .map(|s| match (&s.member, s.offset) {
                (Some(m), _) => (
                    format!(
                        "   ⇠ through `{m}` ({}, {}:{})\n",
                        s.variable, s.file, s.line
                    ),
                    Some(m.clone()),
                ),
                // A global that is itself the pointer.
                (None, 0) => (
                    format!(
                        "   ⇠ in the global {} ({}:{})\n",
                        s.variable, s.file, s.line
                    ),
                    Some(global_label(&s.variable)),
                ),
                (None, _) => (
                    format!(
                        "   ⇠ through a pointer the DWARF does not name ({}, {}:{})\n",
                        s.variable, s.file, s.line
                    ),
                    None,
                ),
            })
            .collect();
        for (by, member) in self.code_stored(f) {
            let at = format!(
                "{}{} ({}:{})",
                self.name(by.by),
                by.place.text(),
                self.index.file(by.file),
                by.line
            );
            slots.push(match member {
                // A global that is itself the pointer: the place says it.
                Some(m) if m.starts_with("global ") => (
                    format!("   ⇠ stored by code in {at}\n"),
                    Some(m.to_string()),
                ),
                Some(m) => (
                    format!("   ⇠ through `{m}`, stored by code in {at}\n"),
                    Some(m.to_string()),
                ),
                None => (
                    format!("   ⇠ stored by code in {at}, into a member not named\n"),
                    None,
                ),
            });
        }
        for (line, member) in slots {
            out += &line;
            let callers = self.calling_through(member.as_deref());
            if callers.is_empty() && self.sites.is_some() && member.is_some() {
                out += "     no indirect site calls through it (code that copies it elsewhere is not followed)\n";
            } else if !callers.is_empty() {
                const SHOWN: usize = 8;
                let mut at: Vec<String> = callers
                    .iter()
                    .take(SHOWN)
                    .map(|(f, file, line)| {
                        format!(
                            "{} ({}:{line})",
                            self.name(*f),
                            short(self.index.file(*file))
                        )
                    })
                    .collect();
                if callers.len() > SHOWN {
                    at.push(format!("{} more", callers.len() - SHOWN));
                }
                out += &format!("     called through it at: {}\n", at.join(", "));
            }
        }
        out
    }

    /// Where code stores `f`'s address, with the member (its innermost
    /// named type's label), one entry per member.
    fn code_stored(&self, f: u32) -> Vec<(&CodeStore, Option<&str>)> {
        let Some(sites) = self.sites else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, c) in self.index.code_stores.iter().enumerate() {
            if c.function != f {
                continue;
            }
            let mut inner: Vec<&str> = sites.code_members[i]
                .iter()
                .map(|m| sites.inner(m))
                .collect();
            inner.sort_unstable();
            inner.dedup();
            if inner.is_empty() {
                out.push((c, None));
            }
            out.extend(inner.into_iter().map(|m| (c, Some(m))));
        }
        out
    }

    /// The indirect sites that call through `member`.
    fn calling_through(&self, member: Option<&str>) -> Vec<(u32, Option<u32>, u32)> {
        match (self.sites, member) {
            (Some(sites), Some(member)) => sites.calling_through(member),
            _ => Vec::new(),
        }
    }

    fn left_out(&self) -> String {
        if self.index.ignored.is_empty() {
            return String::new();
        }
        let mut by_count: Vec<(&String, &usize)> = self.index.ignored.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let names: Vec<String> = by_count
            .iter()
            .take(6)
            .map(|(n, c)| format!("{n} ({c})"))
            .collect();
        format!(
            "left out by study/callgraph.toml, in the whole kernel: {}{}\n",
            names.join(", "),
            if by_count.len() > 6 { ", ..." } else { "" }
        )
    }

    /// Graphviz: a node per function, filled by layer; an indirect site is a
    /// point of its own; with a run, what it did not reach is grey.
    pub fn dot(&self) -> String {
        let mut layer_colours: BTreeMap<&str, &str> = BTreeMap::new();
        const COLOURS: [&str; 6] = [
            "#fde2e4", "#e2ece9", "#dfe7fd", "#fff1e6", "#e8dff5", "#f0efeb",
        ];
        let mut out = String::from(
            "digraph callgraph {\n  rankdir=LR;\n  node [shape=box, style=filled, fontname=\"monospace\", fontsize=10];\n",
        );
        for &f in self.view.functions.keys() {
            let fill = match self.layer(f) {
                Some(layer) => {
                    let n = layer_colours.len();
                    *layer_colours
                        .entry(layer)
                        .or_insert(COLOURS[n % COLOURS.len()])
                }
                None => "#ffffff",
            };
            let (style, mark) = match self.overlay {
                None => ("filled", String::new()),
                Some(_) => {
                    let m = self.mark(f);
                    let style = if m.contains('✓') {
                        "filled,bold"
                    } else {
                        "filled,dashed"
                    };
                    (style, m.trim().to_string())
                }
            };
            out += &format!(
                "  f{f} [label=\"{}\\n{}\\n{}\", fillcolor=\"{fill}\", style=\"{style}\"];\n",
                escape(self.name(f)),
                escape(self.file_of(f)),
                escape(&mark)
            );
        }
        for (i, edge) in self.view.edges.iter().enumerate() {
            let sites = escape(&self.sites(edge));
            match edge.to {
                Some(to) => {
                    let taken = self.overlay.is_some_and(|o| {
                        o.taken.contains(&(
                            self.name(edge.from).to_string(),
                            self.name(to).to_string(),
                        ))
                    });
                    let style = if self.overlay.is_some() && !taken {
                        "dashed"
                    } else {
                        "solid"
                    };
                    out += &format!(
                        "  f{} -> f{to} [label=\"{sites}\", fontsize=8, style={style}];\n",
                        edge.from
                    );
                }
                None => {
                    out += &format!(
                        "  i{i} [shape=point, label=\"\"];\n  f{} -> i{i} [label=\"indirect {sites}\", fontsize=8, style=dotted];\n",
                        edge.from
                    );
                    // Can call: grey, dashed, to a grey oval; did call: bold blue.
                    let taken = self.took(edge);
                    let candidates = match self.reach(edge) {
                        Some(Reach::Named { candidates, .. }) => candidates,
                        _ => Vec::new(),
                    };
                    let mut names: Vec<&str> = candidates.iter().map(|&c| self.name(c)).collect();
                    names.extend(taken.into_iter().flat_map(|t| t.keys().map(String::as_str)));
                    names.sort_unstable();
                    names.dedup();
                    let shown = names.len().min(DOT_CANDIDATES);
                    for name in &names[..shown] {
                        let did = taken.is_some_and(|t| t.contains_key(*name));
                        let (node, edge_style) = match did {
                            true => (
                                "shape=ellipse, style=bold",
                                "style=bold, color=\"#1f5fbf\", label=\"did call\", fontsize=8",
                            ),
                            false => (
                                "shape=ellipse, style=dashed, color=grey, fontcolor=grey40",
                                "style=dashed, color=grey, label=\"can call\", fontsize=8",
                            ),
                        };
                        out += &format!(
                            "  t{i}_{id} [label=\"{}\", {node}];\n  i{i} -> t{i}_{id} [{edge_style}];\n",
                            escape(name),
                            id = ident(name),
                        );
                    }
                    if names.len() > shown {
                        out += &format!(
                            "  t{i}_more [label=\"{} more candidates\", shape=plaintext, fontcolor=grey40];\n  i{i} -> t{i}_more [style=dashed, color=grey];\n",
                            names.len() - shown
                        );
                    }
                }
            }
        }
        out + "}\n"
    }
}

/// How many of an indirect site's candidates DOT draws (the rest are one
/// "N more" node): `sk_data_ready` has dozens.
const DOT_CANDIDATES: usize = 12;

fn short(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn ident(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

mod json;

//! The view as JSON: each node and edge, what the run took at each
//! indirect site, and where the roots' addresses are stored.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Map;
use crate::analysis::callgraph::{
    sites::{global_label, Reach},
    stored::Place,
    Direction,
};

impl Map<'_> {
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Node<'a> {
            name: &'a str,
            file: &'a str,
            layer: Option<&'a str>,
            depth: usize,
            traceable: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            reached: Option<(usize, f64)>,
        }
        #[derive(Serialize)]
        struct JsonEdge<'a> {
            /// `direct`, `tail`, `indirect` (a site; `to` is null), `did
            /// call` (a target the run took through an indirect site of
            /// `from`), or `can call` (a candidate of the indirect site at
            /// `sites`, from where its member is stored).
            kind: &'static str,
            from: &'a str,
            /// null: an indirect call.
            to: Option<&'a str>,
            tail: bool,
            /// A target the run took through an indirect site.
            taken_indirect: bool,
            sites: Vec<(&'a str, u32)>,
            /// What the run took at this indirect site.
            #[serde(skip_serializing_if = "Option::is_none")]
            taken: Option<Vec<JsonTook<'a>>>,
            /// An indirect site's members, candidates, or why not named.
            #[serde(skip_serializing_if = "Option::is_none")]
            through: Option<Vec<String>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            candidates: Option<Vec<&'a str>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            unnamed: Option<String>,
        }
        #[derive(Serialize)]
        struct JsonTook<'a> {
            function: &'a str,
            calls: usize,
            /// At this site only, or one of several (`overlay::Placed`).
            sure: bool,
            placed: String,
        }
        #[derive(Serialize)]
        struct Json<'a> {
            direction: &'a str,
            depth: usize,
            roots: Vec<&'a str>,
            functions: Vec<Node<'a>>,
            edges: Vec<JsonEdge<'a>>,
            left_out: &'a BTreeMap<String, usize>,
            /// Where the roots' addresses are stored in static initializers.
            stored: Vec<JsonStored<'a>>,
            /// Where code stores the roots' addresses into a member.
            stored_by_code: Vec<JsonCodeStore<'a>>,
        }
        #[derive(Serialize)]
        struct JsonCodeStore<'a> {
            function: &'a str,
            /// The function whose code stores it, and the store's address.
            by: &'a str,
            site: u64,
            /// `member` (through a pointer), `global` or `local`.
            into: &'a str,
            /// A member's offset from the pointer, or the offset in the
            /// global; a local's offset from the frame base (`DW_OP_fbreg`).
            offset: i64,
            /// The global or the local, and the path to the slot in it
            /// (`net_hotdata.tcp_protocol.handler`).
            variable: Option<&'a str>,
            slot: Option<&'a str>,
            member: Option<&'a str>,
            file: &'a str,
            line: u32,
            called_from: Vec<(&'a str, &'a str, u32)>,
        }
        #[derive(Serialize)]
        struct JsonStored<'a> {
            function: &'a str,
            variable: &'a str,
            offset: u64,
            member: Option<&'a str>,
            file: &'a str,
            line: u32,
            /// The indirect sites that call through the member: function,
            /// file, line.
            called_from: Vec<(&'a str, &'a str, u32)>,
        }
        let functions = self
            .view
            .functions
            .iter()
            .map(|(&f, &depth)| {
                let function = &self.index.functions[f as usize];
                Node {
                    name: &function.name,
                    file: self.file_of(f),
                    layer: self.layer(f),
                    depth,
                    traceable: function.traceable,
                    reached: self
                        .overlay
                        .and_then(|o| o.reached(&function.name))
                        .map(|r| (r.calls, r.us)),
                }
            })
            .collect();
        let edges = self
            .view
            .edges
            .iter()
            .map(|e| {
                let reach = e.to.is_none().then(|| self.reach(e)).flatten();
                let (through, candidates, unnamed) = match reach {
                    None => (None, None, None),
                    Some(Reach::Named {
                        members,
                        candidates,
                    }) => (
                        Some(members),
                        Some(candidates.iter().map(|&f| self.name(f)).collect()),
                        None,
                    ),
                    Some(Reach::Unnamed(why)) => (None, None, Some(why.to_string())),
                };
                (e, through, candidates, unnamed)
            })
            .flat_map(|(e, through, candidates, unnamed)| {
                let can: Vec<&str> = candidates.clone().unwrap_or_default();
                let sites: Vec<(&str, u32)> = e
                    .sites
                    .iter()
                    .map(|(file, line)| (self.index.file(*file), *line))
                    .collect();
                let can_call = can.into_iter().map(move |to| JsonEdge {
                    kind: "can call",
                    from: self.name(e.from),
                    to: Some(to),
                    tail: false,
                    taken_indirect: false,
                    sites: sites.clone(),
                    taken: None,
                    through: None,
                    candidates: None,
                    unnamed: None,
                });
                std::iter::once(JsonEdge {
                    kind: match (e.to, e.tail, e.taken_indirect) {
                        (None, _, _) => "indirect",
                        (_, true, _) => "tail",
                        (_, _, true) => "did call",
                        _ => "direct",
                    },
                    through,
                    candidates,
                    unnamed,
                    from: self.name(e.from),
                    to: e.to.map(|t| self.name(t)),
                    tail: e.tail,
                    taken_indirect: e.taken_indirect,
                    sites: e
                        .sites
                        .iter()
                        .map(|(file, line)| (self.index.file(*file), *line))
                        .collect(),
                    taken: self.took(e).map(|t| {
                        t.iter()
                            .map(|(name, t)| JsonTook {
                                function: name,
                                calls: t.calls,
                                sure: t.placed.sure(),
                                placed: t.placed.how(),
                            })
                            .collect()
                    }),
                })
                .chain(can_call)
            })
            .collect();
        let json = Json {
            direction: match self.view.direction {
                Direction::Callees => "callees",
                Direction::Callers => "callers",
            },
            depth: self.view.depth,
            roots: self.view.roots.iter().map(|&r| self.name(r)).collect(),
            functions,
            edges,
            left_out: &self.index.ignored,
            stored: self
                .view
                .roots
                .iter()
                .flat_map(|&r| self.index.stored_of(r))
                .map(|s| JsonStored {
                    function: self.name(s.function),
                    variable: &s.variable,
                    offset: s.offset,
                    member: s.member.as_deref(),
                    file: &s.file,
                    line: s.line,
                    called_from: self
                        .calling_through(
                            match (&s.member, s.offset) {
                                (None, 0) => Some(global_label(&s.variable)),
                                (member, _) => member.clone(),
                            }
                            .as_deref(),
                        )
                        .into_iter()
                        .map(|(f, file, line)| (self.name(f), self.index.file(file), line))
                        .collect(),
                })
                .collect(),
            stored_by_code: self
                .view
                .roots
                .iter()
                .flat_map(|&r| self.code_stored(r))
                .map(|(c, member)| JsonCodeStore {
                    function: self.name(c.function),
                    by: self.name(c.by),
                    site: c.site,
                    into: match c.place {
                        Place::Member { .. } => "member",
                        Place::Global { .. } => "global",
                        Place::Local { .. } => "local",
                    },
                    offset: match &c.place {
                        Place::Member { offset } | Place::Global { offset, .. } => *offset as i64,
                        Place::Local { frame, .. } => *frame,
                    },
                    variable: match &c.place {
                        Place::Member { .. } => None,
                        Place::Global { variable, .. } => Some(variable),
                        Place::Local { variable, .. } => variable.as_deref(),
                    },
                    slot: match &c.place {
                        Place::Member { .. } => None,
                        Place::Global { slot, .. } | Place::Local { slot, .. } => slot.as_deref(),
                    },
                    member,
                    file: self.index.file(c.file),
                    line: c.line,
                    called_from: self
                        .calling_through(member)
                        .into_iter()
                        .map(|(f, file, line)| (self.name(f), self.index.file(file), line))
                        .collect(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&json).expect("plain data serializes") + "\n"
    }
}

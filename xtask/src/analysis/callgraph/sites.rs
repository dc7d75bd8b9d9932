//! What each indirect call site can reach: the member it calls through,
//! named from the site's own code and source line (at -O0 the load that
//! feeds the call is `mov OFF(%reg),%reg`, and the line says `->NAME(`),
//! matched against the members static initializers store into
//! ([`stored`](super::stored)) and code stores into (named the same way,
//! from the store's offset and its line's `->member =`, or from the DWARF
//! of a global or a local it stores into): every function
//! stored in that member is a candidate. A site whose member cannot be
//! named says why.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    sync::LazyLock,
};

use regex::Regex;

use crate::analysis::callgraph::{stored::Place, Index, Target};

/// What one indirect call site can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Through `members` (`struct proto.sendmsg`; more than one when two
    /// types have a member of that name at that offset): every function
    /// stored in them, sorted by name.
    Named {
        members: Vec<String>,
        candidates: Vec<u32>,
    },
    /// Why the member is not named.
    Unnamed(Why),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The called register was not loaded from a member (a pointer from
    /// a local, a global or an argument, or a decoder that reads no loads).
    NoLoad,
    NoSource,
    /// The line calls through no `->member(`: a macro, or a call split
    /// over lines.
    NoMemberOnLine(String),
    /// The line's members at the loaded offset: no static initializer
    /// stores a function there (set by code only, or not a member of it).
    NotStored {
        names: Vec<String>,
        offset: u64,
    },
}

impl Why {
    /// One short word per kind, for a tally.
    pub fn kind(&self) -> &'static str {
        match self {
            Why::NoLoad => "no member load feeds the call",
            Why::NoSource => "the source line cannot be read",
            Why::NoMemberOnLine(_) => "no `->member(` on the line",
            Why::NotStored { .. } => "no static initializer stores into the member",
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::NoLoad => write!(
                f,
                "no member load feeds the call (a pointer from a local, a global or an argument)"
            ),
            Why::NoSource => write!(f, "its source line cannot be read"),
            Why::NoMemberOnLine(text) => write!(f, "its line calls through no `->member(`: {text}"),
            Why::NotStored { names, offset } => write!(
                f,
                "`{}` at offset {offset}: no static initializer stores a function there",
                names.join("`, `")
            ),
        }
    }
}

pub struct Sites<'a> {
    index: &'a Index,
    tree: PathBuf,
    /// (the member's own name, its offset in its type) → the members
    /// (indexes into the index's `members`).
    members: HashMap<(String, u64), BTreeSet<u32>>,
    /// A member → the functions stored in it.
    stored_in: HashMap<String, BTreeSet<u32>>,
    /// A member of a named type inside another → the inner type's label.
    inner_of: HashMap<String, String>,
    sources: RefCell<HashMap<Option<u32>, Option<Vec<String>>>>,
    /// Each of the index's code stores: the members it stores into.
    pub code_members: Vec<Vec<String>>,
}

impl<'a> Sites<'a> {
    /// The sites of `index`, whose source files are under `tree`.
    pub fn new(index: &'a Index, tree: PathBuf) -> Sites<'a> {
        let mut members: HashMap<(String, u64), BTreeSet<u32>> = HashMap::new();
        let mut stored_in: HashMap<String, BTreeSet<u32>> = HashMap::new();
        let mut inner_of: HashMap<&str, &str> = HashMap::new();
        for (id, (member, offset, inner)) in index.members.iter().enumerate() {
            let leaf = member.rsplit('.').next().unwrap_or(member);
            members
                .entry((leaf.to_string(), *offset))
                .or_default()
                .insert(id as u32);
            inner_of.insert(member, inner);
        }
        for s in &index.stored {
            let member = match &s.member {
                Some(member) => member.clone(),
                // A global that is itself the pointer.
                None if s.offset == 0 => global_label(&s.variable),
                None => continue,
            };
            stored_in.entry(member).or_default().insert(s.function);
        }
        // A member of a named type inside another: what is stored into the
        // inner one.
        for (&member, &inner) in &inner_of {
            if let Some(functions) = stored_in.get(inner).filter(|_| member != inner).cloned() {
                stored_in
                    .entry(member.to_string())
                    .or_default()
                    .extend(functions);
            }
        }
        let mut sites = Sites {
            index,
            tree,
            members,
            stored_in,
            inner_of: inner_of
                .into_iter()
                .filter(|(m, i)| m != i)
                .map(|(m, i)| (m.to_string(), i.to_string()))
                .collect(),
            sources: RefCell::default(),
            code_members: Vec::new(),
        };
        // Code stores, named from their lines; a member of a named type
        // inside another counts as the inner one's too.
        let code_members: Vec<Vec<String>> = index
            .code_stores
            .iter()
            .map(|c| match c.place {
                Place::Member { offset } => {
                    let names = sites
                        .line(c.file, c.line)
                        .map(|l| stored_members(&l))
                        .unwrap_or_default();
                    sites
                        .members_at(c.by, &names, offset)
                        .into_iter()
                        .cloned()
                        .collect()
                }
                Place::Global {
                    ref variable,
                    offset: 0,
                    member: None,
                    ref slot,
                } if slot.as_deref().is_some_and(|s| !s.contains(['.', '['])) => {
                    vec![global_label(variable)]
                }
                _ => c.place.member().map(String::from).into_iter().collect(),
            })
            .collect();
        for (c, members) in index.code_stores.iter().zip(&code_members) {
            for m in members {
                for m in std::iter::once(m).chain(sites.inner_of.get(m)) {
                    sites
                        .stored_in
                        .entry(m.clone())
                        .or_default()
                        .insert(c.function);
                }
            }
        }
        // An outer label of an inner member stored into by code.
        let outer: Vec<(String, String)> = sites
            .inner_of
            .iter()
            .map(|(m, i)| (m.clone(), i.clone()))
            .collect();
        for (member, inner) in outer {
            if let Some(functions) = sites.stored_in.get(&inner).cloned() {
                sites.stored_in.entry(member).or_default().extend(functions);
            }
        }
        sites.code_members = code_members;
        sites
    }

    /// A member's label from its innermost named type.
    pub fn inner<'m>(&'m self, member: &'m str) -> &'m str {
        self.inner_of.get(member).map_or(member, String::as_str)
    }

    /// The members named `names` at `offset` whose type the unit of
    /// function `from` knows (where the index knows its unit's types).
    fn members_at(&self, from: u32, names: &[String], offset: u64) -> BTreeSet<&String> {
        let unit = self.index.file(self.index.functions[from as usize].file);
        let visible = self.index.visible.get(unit);
        names
            .iter()
            .filter_map(|n| self.members.get(&(n.clone(), offset)))
            .flatten()
            .filter(|id| visible.is_none_or(|v| v.binary_search(id).is_ok()))
            .map(|&id| &self.index.members[id as usize].0)
            .collect()
    }

    /// The site at `file:line` in function `from`, whose call was fed by
    /// a load at `load`. Only the members whose type `from`'s compilation
    /// unit knows count (where the index knows its unit's types).
    pub fn reach(&self, from: u32, file: Option<u32>, line: u32, load: Option<u64>) -> Reach {
        let Some(offset) = load else {
            return self.through_global(from, file, line);
        };
        let Some(text) = self.line(file, line) else {
            return Reach::Unnamed(Why::NoSource);
        };
        let names = called_members(&text);
        if names.is_empty() {
            return Reach::Unnamed(Why::NoMemberOnLine(text.trim().to_string()));
        }
        let members = self.members_at(from, &names, offset);
        if members.is_empty() {
            return Reach::Unnamed(Why::NotStored { names, offset });
        }
        let candidates: BTreeSet<u32> = members
            .iter()
            .flat_map(|m| self.stored_in.get(*m).into_iter().flatten().copied())
            .collect();
        let mut candidates: Vec<u32> = candidates.into_iter().collect();
        candidates.sort_by_key(|&f| &self.index.functions[f as usize].name);
        Reach::Named {
            members: members.into_iter().cloned().collect(),
            candidates,
        }
    }

    /// The site at `file:line` of `from` with no member load: a call
    /// through a global pointer code or an initializer stores into.
    fn through_global(&self, from: u32, file: Option<u32>, line: u32) -> Reach {
        let global = self.index.functions[from as usize]
            .calls
            .iter()
            .filter(|c| c.target == Target::Indirect && (c.file, c.line) == (file, line))
            .find_map(|c| c.global.as_deref());
        let label = global.map(global_label);
        match label.and_then(|l| Some((self.stored_in.get(&l)?, l))) {
            Some((functions, label)) => {
                let mut candidates: Vec<u32> = functions.iter().copied().collect();
                candidates.sort_by_key(|&f| &self.index.functions[f as usize].name);
                Reach::Named {
                    members: vec![label],
                    candidates,
                }
            }
            None => Reach::Unnamed(Why::NoLoad),
        }
    }

    /// The indirect sites that call through `member` (labelled as a
    /// stored slot is: from its innermost named type), or through the
    /// same member of a type around it: (function, file, line).
    pub fn calling_through(&self, member: &str) -> Vec<(u32, Option<u32>, u32)> {
        let mut out = Vec::new();
        for (i, f) in self.index.functions.iter().enumerate() {
            for call in &f.calls {
                if call.target != Target::Indirect || (call.load.is_none() && call.global.is_none())
                {
                    continue;
                }
                let Reach::Named { members, .. } =
                    self.reach(i as u32, call.file, call.line, call.load)
                else {
                    continue;
                };
                let through = |m: &String| {
                    m == member || self.inner_of.get(m).is_some_and(|inner| inner == member)
                };
                // A static inline helper built out of line in many objects
                // (`dst_output`) is one site of the source.
                let same = |&(g, file, line): &(u32, Option<u32>, u32)| {
                    self.index.functions[g as usize].name == f.name
                        && (file, line) == (call.file, call.line)
                };
                if members.iter().any(through) && !out.iter().any(same) {
                    out.push((i as u32, call.file, call.line));
                }
            }
        }
        out
    }

    /// How `caller` reached `callee` from its call at `file:line` (`file`
    /// as gdb names it, ending in the index's tree-relative name): through
    /// the member of an indirect site there, said as "`struct
    /// proto.sendmsg`" (or why it is not named); `None` for a direct call,
    /// or a line the index has no call on.
    pub fn reached_through(
        &self,
        caller: &str,
        file: &str,
        line: u32,
        callee: &str,
    ) -> Option<String> {
        let mut indirect = None;
        for (i, f) in self.index.functions.iter().enumerate() {
            if f.name != caller {
                continue;
            }
            for call in &f.calls {
                let here = call.line == line && {
                    let name = self.index.file(call.file);
                    file == name || file.ends_with(&format!("/{name}"))
                };
                if !here {
                    continue;
                }
                match call.target {
                    Target::Direct(to) | Target::Tail(to)
                        if self.index.functions[to as usize].name == callee =>
                    {
                        return None
                    }
                    Target::Indirect if indirect.is_none() => {
                        indirect = Some(self.reach(i as u32, call.file, call.line, call.load));
                    }
                    _ => {}
                }
            }
        }
        Some(match indirect? {
            Reach::Named { members, .. } => format!("`{}`", members.join("` or `")),
            Reach::Unnamed(why) => format!("a pointer ({why})"),
        })
    }

    /// How many of the indirect sites of the functions defined under
    /// `dir` (tree-relative, `net/`) have their member named, and why the
    /// others do not, by kind: one line for the book.
    pub fn tally(&self, dir: &str) -> String {
        let (mut total, mut named, mut several, mut none) = (0, 0, 0, 0);
        let mut why: std::collections::BTreeMap<&str, usize> = Default::default();
        for (i, f) in self.index.functions.iter().enumerate() {
            if !self.index.file(f.file).starts_with(dir) {
                continue;
            }
            for call in f.calls.iter().filter(|c| c.target == Target::Indirect) {
                total += 1;
                match self.reach(i as u32, call.file, call.line, call.load) {
                    Reach::Named {
                        members,
                        candidates,
                    } => {
                        named += 1;
                        several += usize::from(members.len() > 1);
                        none += usize::from(candidates.is_empty());
                    }
                    Reach::Unnamed(w) => *why.entry(w.kind()).or_default() += 1,
                }
            }
        }
        let share = |n: usize| 100.0 * n as f64 / total.max(1) as f64;
        let why: Vec<String> = why.into_iter().map(|(w, n)| format!("{w}: {n}")).collect();
        // The code stores in the whole kernel, by where they store, and
        // how many of them name a member.
        let mut stores: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for (c, members) in self.index.code_stores.iter().zip(&self.code_members) {
            let kind = match c.place {
                Place::Member { .. } => "through a pointer",
                Place::Global { .. } => "into a global",
                Place::Local { .. } => "into a local",
            };
            let count = stores.entry(kind).or_default();
            count.0 += 1;
            count.1 += usize::from(!members.is_empty());
        }
        let stores: Vec<String> = stores
            .into_iter()
            .map(|(k, (n, named))| format!("{k}: {n} ({named} with a member named)"))
            .collect();
        format!(
            "indirect call sites in functions under {dir}: {total}; member named: {named} ({:.1}%; \
             of them {several} could be a member of more than one type, and {none} have no candidate \
             in this build); not named: {}\nfunction addresses stored by code, in the whole kernel: {}\n",
            share(named),
            why.join("; "),
            stores.join("; ")
        )
    }

    fn line(&self, file: Option<u32>, line: u32) -> Option<String> {
        let mut sources = self.sources.borrow_mut();
        let lines = sources.entry(file).or_insert_with(|| {
            let name = self.index.file(file);
            let text = std::fs::read_to_string(self.tree.join(name)).ok()?;
            Some(text.lines().map(String::from).collect())
        });
        lines
            .as_ref()?
            .get((line as usize).checked_sub(1)?)
            .cloned()
    }
}

/// How a global that is itself a function pointer is labelled where a
/// member would be: `global panic_blink` (a static in a function, `ops.12`,
/// as its symbol names it).
pub fn global_label(variable: &str) -> String {
    format!("global {variable}")
}

/// The members a source line calls through: `p->f(`, `(*p->f)(`, `s.f(`,
/// and the first argument of the kernel's `INDIRECT_CALL_*(p->f, ...)`
/// (`READ_ONCE(p->f)` too) and `indirect_call_gro_receive*(p->f, ...)`.
pub fn called_members(line: &str) -> Vec<String> {
    static CALL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?:->|\.)\s*([A-Za-z_]\w*)\s*\)?\s*\(").unwrap());
    static WRAPPED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)indirect_call_\w+\(\s*(?:READ_ONCE\()?[^,]*?(?:->|\.)\s*([A-Za-z_]\w*)\s*\)?\s*,",
        )
        .unwrap()
    });
    let mut out: Vec<String> = Vec::new();
    for re in [&*WRAPPED, &*CALL] {
        for c in re.captures_iter(line) {
            let name = c[1].to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The members a source line stores into: `p->f = `, `s.f = ` (not
/// `==`), and the first argument of `WRITE_ONCE(p->f, ...)` and
/// `rcu_assign_pointer(p->f, ...)`.
pub fn stored_members(line: &str) -> Vec<String> {
    static ASSIGN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?:->|\.)\s*([A-Za-z_]\w*)\s*=(?:[^=]|$)").unwrap());
    static WRAPPED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:WRITE_ONCE|rcu_assign_pointer)\(\s*[^,]*?(?:->|\.)\s*([A-Za-z_]\w*)\s*,")
            .unwrap()
    });
    let mut out: Vec<String> = Vec::new();
    for re in [&*WRAPPED, &*ASSIGN] {
        for c in re.captures_iter(line) {
            let name = c[1].to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame reached from its caller's indirect site names the member;
    /// one reached by a direct call does not.
    #[test]
    fn a_frame_reached_through_a_pointer_names_the_member() {
        use crate::analysis::callgraph::{
            index::{Call, Function},
            stored::Stored,
        };
        let tree = std::env::temp_dir().join(format!("xtask-sites-{}", std::process::id()));
        std::fs::create_dir_all(tree.join("net")).unwrap();
        let mut source = vec![String::new(); 9];
        source.push("\tb();".into());
        source.push("\terr = sk->sk_prot->sendmsg(sk, msg, size);".into());
        std::fs::write(tree.join("net/x.c"), source.join("\n")).unwrap();
        let call = |line, target, load| Call {
            site: u64::from(line),
            file: Some(0),
            line,
            target,
            load,
            global: None,
        };
        let function = |name: &str, addr, calls| Function {
            name: name.into(),
            addr,
            size: 16,
            file: Some(0),
            traceable: true,
            calls,
        };
        let mut index = Index::of(
            vec!["net/x.c".into()],
            vec![
                function(
                    "a",
                    0x10,
                    vec![
                        call(10, Target::Direct(1), None),
                        call(11, Target::Indirect, Some(40)),
                    ],
                ),
                function("b", 0x20, Vec::new()),
                function("tcp_sendmsg", 0x30, Vec::new()),
            ],
        );
        let member = "struct proto.sendmsg".to_string();
        index.members = vec![(member.clone(), 40, member.clone())];
        index.stored = vec![Stored {
            function: 2,
            variable: "tcp_prot".into(),
            offset: 40,
            member: Some(member),
            member_offset: Some(40),
            file: "net/x.c".into(),
            line: 1,
        }];
        let sites = Sites::new(&index, tree.clone());
        let gdb_file = format!("{}/net/x.c", tree.display());
        assert_eq!(
            sites.reached_through("a", &gdb_file, 11, "tcp_sendmsg"),
            Some("`struct proto.sendmsg`".to_string())
        );
        assert_eq!(sites.reached_through("a", &gdb_file, 10, "b"), None);
        assert_eq!(sites.reached_through("a", &gdb_file, 12, "b"), None);
        std::fs::remove_dir_all(&tree).unwrap();
    }

    #[test]
    fn the_members_a_line_stores_into() {
        let cases: [(&str, &[&str]); 5] = [
            (
                "\tsk->sk_destruct\t   = inet_sock_destruct;",
                &["sk_destruct"],
            ),
            (
                "\tWRITE_ONCE(sk->sk_data_ready, sk_data_ready);",
                &["sk_data_ready"],
            ),
            ("\trcu_assign_pointer(ops->hook, fn);", &["hook"]),
            ("\tif (sk->sk_destruct == inet_sock_destruct)", &[]),
            ("\tnew.handler = f;", &["handler"]),
        ];
        for (line, expected) in cases {
            assert_eq!(stored_members(line), expected, "{line}");
        }
    }

    #[test]
    fn the_members_a_line_calls_through() {
        let cases: [(&str, &[&str]); 8] = [
            (
                "\tINDIRECT_CALL_1(READ_ONCE(sk->sk_write_space),",
                &["sk_write_space"],
            ),
            (
                "\tpp = indirect_call_gro_receive_inet(ptype->callbacks.gro_receive,",
                &["gro_receive"],
            ),
            (
                "\terr = icsk->icsk_af_ops->queue_xmit(sk, skb, &inet->cork.fl);",
                &["queue_xmit"],
            ),
            (
                "\tret = pt_prev->func(skb, skb->dev, pt_prev, orig_dev);",
                &["func"],
            ),
            (
                "\treturn INDIRECT_CALL_INET(skb_dst(skb)->output, ip6_output, ip_output, net, sk, skb);",
                &["output"],
            ),
            ("\t(*ops->handler)(data);", &["handler"]),
            ("\tsk->sk_data_ready(sk);", &["sk_data_ready"]),
            ("\tfn(arg);", &[]),
        ];
        for (line, expected) in cases {
            assert_eq!(called_members(line), expected, "{line}");
        }
    }
}

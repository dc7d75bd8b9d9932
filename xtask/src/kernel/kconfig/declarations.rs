//! The Kconfig files read far enough to say where a symbol is declared,
//! its type, and what it depends on: its own `depends on`, and those of
//! every `if`, `menu` and `choice` around it, across `source` (net/Kconfig's
//! `if INET` holds all of net/ipv4/Kconfig). A line ending in `\` continues
//! on the next one. The rest of the language (defaults, selects,
//! visibility) is left out: this serves "did you mean" and the "unmet
//! dependency" of an option that did not land, not an evaluation.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::LazyLock,
};

use regex::Regex;
use walkdir::WalkDir;

use super::{Kconfig, Kind};

/// Where each symbol is declared, and what it depends on.
#[derive(Debug, Default)]
pub struct SymbolIndex {
    symbols: HashMap<String, Vec<Declaration>>,
}

#[derive(Debug, Clone)]
pub struct Declaration {
    pub file: PathBuf,
    pub line: usize,
    /// The blocks' around it, outermost first, then its own.
    pub depends: Vec<Dependency>,
    /// `bool`, `tristate`, ... as the block declares it.
    pub kind: Option<Kind>,
}

/// A `depends on` or `if` expression, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub expr: String,
    pub file: PathBuf,
    pub line: usize,
}

static CONFIG_DECL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:menu)?config\s+(\w+)\s*$").unwrap());
static TYPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(bool|tristate|string|int|hex|def_bool|def_tristate)\b").unwrap()
});
static DEPENDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*depends\s+on\s+(.+?)\s*$").unwrap());
/// Entries that end the one before them, and take no `depends on` of ours.
static ENTRY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:comment|mainmenu)\b").unwrap());
static IF_BLOCK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*if\s+(.+?)\s*$").unwrap());
static OPEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*(menu|choice)\b").unwrap());
static CLOSE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*end(if|menu|choice)\b").unwrap());
static SOURCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^\s*o?(r?)source\s+"([^"]+)""#).unwrap());
static HELP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:help|---help---)\s*$").unwrap());
static SYMBOL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(!?)\s*\b([A-Z0-9_]*[A-Z_][A-Z0-9_]*)\b").unwrap());
static VARIABLE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\\\$\\\(\w+\\\)").unwrap());

/// One Kconfig file read on its own: its symbols with the dependencies
/// written in it, and what it sources with the dependencies around each.
#[derive(Debug, Default)]
struct FileScan {
    decls: Vec<(String, Declaration)>,
    sources: Vec<Source>,
}

#[derive(Debug)]
struct Source {
    /// Relative to the tree, `$(SRCARCH)` and the like left in.
    path: String,
    depends: Vec<Dependency>,
}

/// An open `if`, `menu` or `choice`, and the dependencies it gives.
struct Block {
    kind: String,
    depends: Vec<Dependency>,
}

impl SymbolIndex {
    /// Reads every `Kconfig*` file of the tree.
    pub fn scan(tree: &Path) -> SymbolIndex {
        let files = WalkDir::new(tree)
            .into_iter()
            .filter_entry(|e| !is_skipped_dir(e.path(), tree))
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_type().is_file() && e.file_name().to_string_lossy().starts_with("Kconfig")
            })
            .filter_map(|entry| {
                let text = std::fs::read_to_string(entry.path()).ok()?;
                let rel = entry.path().strip_prefix(tree).unwrap_or(entry.path());
                Some((rel.to_path_buf(), text))
            });
        SymbolIndex::from_files(files)
    }

    /// The index of these files (paths relative to the tree): each symbol
    /// depends on what its own file says, and on what surrounds the
    /// `source` lines that bring its file in.
    fn from_files(files: impl IntoIterator<Item = (PathBuf, String)>) -> SymbolIndex {
        let scans: BTreeMap<PathBuf, FileScan> = files
            .into_iter()
            .map(|(path, text)| {
                let scan = read_file(&path, &text);
                (path, scan)
            })
            .collect();
        let mut sourced_by: HashMap<&Path, Vec<(&Path, &[Dependency])>> = HashMap::new();
        for (file, scan) in &scans {
            for source in &scan.sources {
                for target in resolve(&source.path, &scans) {
                    sourced_by
                        .entry(target)
                        .or_default()
                        .push((file, &source.depends));
                }
            }
        }
        let mut inherited = HashMap::new();
        let mut index = SymbolIndex::default();
        for (file, scan) in &scans {
            let around = inherit(file, &sourced_by, &mut inherited, &mut HashSet::new());
            for (name, decl) in &scan.decls {
                let mut decl = decl.clone();
                decl.depends.splice(0..0, around.iter().cloned());
                index.symbols.entry(name.clone()).or_default().push(decl);
            }
        }
        index
    }

    pub fn contains(&self, name: &str) -> bool {
        self.symbols.contains_key(name)
    }

    pub fn declarations(&self, name: &str) -> &[Declaration] {
        self.symbols.get(name).map_or(&[], Vec::as_slice)
    }

    /// The symbol's type and the declaration that gives it.
    pub fn kind(&self, name: &str) -> Option<(Kind, &Declaration)> {
        self.declarations(name)
            .iter()
            .find_map(|d| d.kind.map(|k| (k, d)))
    }

    /// Known symbols closest to `name`, for "did you mean".
    pub fn nearest(&self, name: &str, count: usize) -> Vec<String> {
        let mut scored: Vec<(usize, &String)> = self
            .symbols
            .keys()
            .map(|s| (strsim::levenshtein(name, s), s))
            .collect();
        scored.sort();
        scored
            .into_iter()
            .filter(|(d, _)| *d <= name.len() / 3 + 1)
            .take(count)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The dependencies of `name` with the symbols in them that are off in
    /// `config`, and where each is written: `"CGROUPS (CGROUPS=n;
    /// init/Kconfig:1113)"`.
    pub fn unmet_dependencies(&self, name: &str, config: &Kconfig) -> Vec<String> {
        let mut out = Vec::new();
        for dep in self.declarations(name).iter().flat_map(|d| &d.depends) {
            // A plain symbol is unmet when off, a negated one when on.
            let off: Vec<String> = SYMBOL
                .captures_iter(&dep.expr)
                .filter(|c| self.contains(&c[2]))
                .filter(|c| (config.get(&c[2]) == "n") == c[1].is_empty())
                .map(|c| format!("{}={}", &c[2], config.get(&c[2])))
                .collect();
            let line = format!(
                "{} ({}; {}:{})",
                dep.expr,
                off.join(", "),
                dep.file.display(),
                dep.line
            );
            if !off.is_empty() && !out.contains(&line) {
                out.push(line);
            }
        }
        out
    }
}

/// The dependencies around every `source` line that brings `file` in, and
/// around those that bring in its sourcing file, outermost first. A file
/// sourced from several places keeps those that all of them share.
fn inherit<'a>(
    file: &'a Path,
    sourced_by: &HashMap<&'a Path, Vec<(&'a Path, &'a [Dependency])>>,
    memo: &mut HashMap<&'a Path, Vec<Dependency>>,
    visiting: &mut HashSet<&'a Path>,
) -> Vec<Dependency> {
    if let Some(done) = memo.get(file) {
        return done.clone();
    }
    // A file that sources itself, through others, adds nothing the second time.
    if !visiting.insert(file) {
        return Vec::new();
    }
    let mut sites = sourced_by
        .get(file)
        .into_iter()
        .flatten()
        .map(|&(by, deps)| {
            let mut all = inherit(by, sourced_by, memo, visiting);
            all.extend(deps.iter().cloned());
            all
        });
    let mut around = sites.next().unwrap_or_default();
    for other in sites {
        around.retain(|d| other.iter().any(|o| o.expr == d.expr));
    }
    visiting.remove(file);
    memo.insert(file, around.clone());
    around
}

/// The files a `source` path names: itself, or with `$(SRCARCH)` and the
/// like, every file it can name.
fn resolve<'a>(path: &str, files: &'a BTreeMap<PathBuf, FileScan>) -> Vec<&'a Path> {
    if !path.contains("$(") {
        return files
            .get_key_value(Path::new(path))
            .map(|(p, _)| p.as_path())
            .into_iter()
            .collect();
    }
    let escaped = regex::escape(path);
    let pattern = VARIABLE.replace_all(&escaped, "[^/]+");
    let Ok(pattern) = Regex::new(&format!("^{pattern}$")) else {
        return Vec::new();
    };
    files
        .keys()
        .filter(|p| p.to_str().is_some_and(|p| pattern.is_match(p)))
        .map(PathBuf::as_path)
        .collect()
}

/// A Kconfig file's declarations and `source` lines, each with the
/// dependencies written around it in this file.
fn read_file(file: &Path, text: &str) -> FileScan {
    let mut scan = FileScan::default();
    let mut current: Option<(String, Declaration)> = None;
    let mut blocks: Vec<Block> = Vec::new();
    // A `depends on` right after `menu` or `choice` is the block's.
    let mut block_head = false;
    // Help text is prose: "... if SHUFFLE_PAGE_ALLOCATOR=y. The ..." in
    // mm/Kconfig is no `if` block. It ends at the first line indented
    // less than its own first line.
    let mut help: Option<Option<usize>> = None;
    let mut lines = text.lines().enumerate();
    while let Some((i, first)) = lines.next() {
        let indent = first.len() - first.trim_start().len();
        if let Some(depth) = help {
            if first.trim().is_empty() {
                continue;
            }
            match depth {
                None => {
                    help = Some(Some(indent));
                    continue;
                }
                Some(depth) if indent >= depth => continue,
                Some(_) => help = None,
            }
        }
        // Outside help text, a `\` at the end of a line joins the next.
        let mut line = first.to_string();
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, next)) => line.push_str(next),
                None => break,
            }
        }
        let line = line.as_str();
        let dependency = |expr: &str| Dependency {
            expr: clean(expr),
            file: file.to_path_buf(),
            line: i + 1,
        };
        let around = |blocks: &[Block]| -> Vec<Dependency> {
            blocks
                .iter()
                .flat_map(|b| b.depends.iter().cloned())
                .collect()
        };
        if HELP.is_match(line) {
            help = Some(None);
            continue;
        }
        let is_entry = CONFIG_DECL.is_match(line)
            || IF_BLOCK.is_match(line)
            || OPEN.is_match(line)
            || CLOSE.is_match(line)
            || SOURCE.is_match(line)
            || ENTRY.is_match(line);
        if is_entry {
            if let Some(done) = current.take() {
                scan.decls.push(done);
            }
            block_head = false;
        }
        if let Some(c) = CONFIG_DECL.captures(line) {
            let decl = Declaration {
                file: file.to_path_buf(),
                line: i + 1,
                depends: around(&blocks),
                kind: None,
            };
            current = Some((c[1].to_string(), decl));
        } else if let Some(c) = IF_BLOCK.captures(line) {
            blocks.push(Block {
                kind: "if".into(),
                depends: vec![dependency(&c[1])],
            });
        } else if let Some(c) = OPEN.captures(line) {
            blocks.push(Block {
                kind: c[1].to_string(),
                depends: Vec::new(),
            });
            block_head = true;
        } else if let Some(c) = CLOSE.captures(line) {
            if let Some(open) = blocks.iter().rposition(|b| b.kind == c[1]) {
                blocks.truncate(open);
            }
        } else if let Some(c) = SOURCE.captures(line) {
            // `rsource` is relative to this file's folder.
            let path = match (&c[1], file.parent()) {
                ("r", Some(dir)) => dir.join(&c[2]).to_string_lossy().into_owned(),
                _ => c[2].to_string(),
            };
            scan.sources.push(Source {
                path,
                depends: around(&blocks),
            });
        } else if let Some(c) = DEPENDS.captures(line) {
            if let Some((_, decl)) = current.as_mut() {
                decl.depends.push(dependency(&c[1]));
            } else if let (true, Some(block)) = (block_head, blocks.last_mut()) {
                block.depends.push(dependency(&c[1]));
            }
        } else if let (Some((_, decl)), Some(c)) = (current.as_mut(), TYPE.captures(line)) {
            decl.kind = decl.kind.or(Kind::parse(&c[1]));
        }
    }
    scan.decls.extend(current);
    scan
}

/// An expression without its comment, its spaces (and a joined line's
/// indent) made single.
fn clean(expr: &str) -> String {
    let expr = expr.split_once('#').map_or(expr, |(e, _)| e);
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_skipped_dir(path: &Path, tree: &Path) -> bool {
    let rel = path.strip_prefix(tree).unwrap_or(path);
    matches!(
        rel.to_str(),
        Some("Documentation" | ".git" | "tools" | "samples")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::profile::KValue;

    fn one_file(path: &str, text: &str) -> SymbolIndex {
        SymbolIndex::from_files([(PathBuf::from(path), text.to_string())])
    }

    /// A help text's "if" is prose, not a block (mm/Kconfig's
    /// SHUFFLE_PAGE_ALLOCATOR help, before ZONE_DEVICE).
    #[test]
    fn help_text_is_not_kconfig() {
        let index = one_file(
            "mm/Kconfig",
            "config SHUFFLE_PAGE_ALLOCATOR\n\tbool \"Page allocator randomization\"\n\thelp\n\
             \t  this reason, by default, the randomization is not enabled even\n\
             \t  if SHUFFLE_PAGE_ALLOCATOR=y. The randomization may be force enabled\n\n\
             \t  Say Y if unsure.\n\nconfig ZONE_DEVICE\n\tbool \"Device memory\"\n\
             \tdepends on MEMORY_HOTPLUG\n\n\thelp\n\t  depends on nothing here\n\n\
             config X\n\tbool\n",
        );
        let zone = &index.declarations("ZONE_DEVICE")[0];
        let exprs: Vec<&str> = zone.depends.iter().map(|d| d.expr.as_str()).collect();
        assert_eq!(exprs, ["MEMORY_HOTPLUG"]);
        assert_eq!(zone.line, 9);
        assert!(index.declarations("X")[0].depends.is_empty());
    }

    #[test]
    fn unmet_dependencies_from_kconfig_text() {
        let index = one_file(
            "init/Kconfig",
            "menuconfig CGROUPS\n\tbool \"cgroups\"\n\nconfig MEMCG\n\tbool \"Memory controller\"\n\
             \tdepends on CGROUPS && !PREEMPT_RT\n\tselect PAGE_COUNTER\n\nif CGROUPS\nconfig X\n\tbool\nendif\n\
             config PREEMPT_RT\n\tbool\nif CGROUPS\nconfig MEMCG_V1\n\tbool\n\tdepends on MEMCG\nendif\n",
        );
        let config = Kconfig::parse(Path::new(".config"), "# CONFIG_CGROUPS is not set\n").unwrap();
        assert_eq!(
            index.unmet_dependencies("MEMCG", &config),
            vec!["CGROUPS && !PREEMPT_RT (CGROUPS=n; init/Kconfig:6)"]
        );
        assert_eq!(
            index.unmet_dependencies("MEMCG_V1", &config),
            vec![
                "CGROUPS (CGROUPS=n; init/Kconfig:15)",
                "MEMCG (MEMCG=n; init/Kconfig:18)"
            ]
        );
        assert!(index.contains("X"));
        assert_eq!(index.nearest("MEMGC", 1), vec!["MEMCG"]);
    }

    #[test]
    fn symbol_types_and_the_values_they_take() {
        let index = one_file(
            "drivers/net/Kconfig",
            "config TUN\n\ttristate \"Universal TUN/TAP device driver support\"\n\tdepends on INET\n\n\
             config NET\n\tdef_bool y\n\nconfig LOG_BUF_SHIFT\n\tint \"Kernel log buffer size\"\n\trange 12 25\n\n\
             config CMDLINE\n\tstring \"Built-in kernel command string\"\n\nconfig PHYSICAL_START\n\thex \"Physical address\"\n",
        );
        let (kind, decl) = index.kind("TUN").unwrap();
        assert_eq!((kind, decl.line), (Kind::Tristate, 1));
        assert_eq!(index.kind("NET").unwrap().0, Kind::Bool);
        assert_eq!(index.kind("LOG_BUF_SHIFT").unwrap().0, Kind::Int);
        assert_eq!(index.kind("CMDLINE").unwrap().0, Kind::String);
        assert_eq!(index.kind("PHYSICAL_START").unwrap().0, Kind::Hex);
        assert!(!Kind::Tristate.accepts(&KValue::Str("yes".into())));
        assert!(Kind::Tristate.accepts(&KValue::Module));
        assert!(!Kind::Bool.accepts(&KValue::Module));
        assert!(!Kind::Int.accepts(&KValue::Str("14".into())));
        assert!(Kind::String.accepts(&KValue::Str("console=ttyS0".into())));
    }

    /// Linux 6.12's net/Kconfig, net/netfilter/Kconfig and ipvs/Kconfig,
    /// cut to the lines around two options: IP_MULTICAST, whose only
    /// dependencies are the `if NET` and `if INET` around
    /// `source "net/ipv4/Kconfig"`, and IP_VS_FTP, whose `depends on` goes
    /// on over a `\`, under an `if IP_VS` in a file netfilter's sources.
    const TREE: &[(&str, &str)] = &[
        (
            "Kconfig",
            "mainmenu \"Linux/$(ARCH) $(KERNELVERSION) Kernel Configuration\"\n\n\
             source \"arch/$(SRCARCH)/Kconfig\"\nsource \"init/Kconfig\"\nsource \"net/Kconfig\"\n",
        ),
        (
            "arch/x86/Kconfig",
            "config X86_64\n\tdef_bool y\n\tdepends on 64BIT\n\n\
             choice\n\tprompt \"Processor family\"\n\tdepends on X86_64\n\tdefault GENERIC_CPU\n\n\
             config MK8\n\tbool \"AMD Opteron/Athlon64/Hammer/K8\"\n\tdepends on !EXPERT\n\nendchoice\n\n\
             config AFTER\n\tbool\n",
        ),
        (
            "init/Kconfig",
            "config EXPERT\n\tbool \"Configure standard kernel features (expert users)\"\n",
        ),
        (
            "net/Kconfig",
            "menuconfig NET\n\tbool \"Networking support\"\n\nif NET\n\n\
             menu \"Networking options\"\n\nconfig INET\n\tbool \"TCP/IP networking\"\n\n\
             if INET\nsource \"net/ipv4/Kconfig\"\nendif # if INET\n\n\
             menuconfig NETFILTER\n\tbool \"Network packet filtering framework (Netfilter)\"\n\n\
             if NETFILTER\nsource \"net/netfilter/Kconfig\"\nendif\n\nendmenu\n\nendif   # if NET\n",
        ),
        (
            "net/ipv4/Kconfig",
            "#\n# IP configuration\n#\nconfig IP_MULTICAST\n\tbool \"IP: multicasting\"\n\thelp\n\
             \t  This is code for addressing several networked computers at once,\n",
        ),
        (
            "net/netfilter/Kconfig",
            "menu \"Core Netfilter Configuration\"\n\tdepends on INET && NETFILTER\n\n\
             config NF_CONNTRACK\n\ttristate \"Netfilter connection tracking support\"\n\n\
             config NF_CONNTRACK_FTP\n\ttristate \"FTP protocol support\"\n\n\
             endmenu\n\nsource \"net/netfilter/ipvs/Kconfig\"\n",
        ),
        (
            "net/netfilter/ipvs/Kconfig",
            "menuconfig IP_VS\n\ttristate \"IP virtual server support\"\n\tdepends on INET && NETFILTER\n\n\
             if IP_VS\n\nconfig\tIP_VS_FTP\n\ttristate \"FTP protocol helper\"\n\
             \tdepends on IP_VS_PROTO_TCP && NF_CONNTRACK && NF_NAT && \\\n\t\tNF_CONNTRACK_FTP\n\
             \tselect IP_VS_NFCT\n\nendif # IP_VS\n",
        ),
    ];

    fn unmet(index: &SymbolIndex, name: &str, config: &str) -> Vec<String> {
        let config = Kconfig::parse(Path::new(".config"), config).unwrap();
        index.unmet_dependencies(name, &config)
    }

    #[test]
    fn dependencies_hold_across_source_and_continued_lines() {
        let tree = std::env::temp_dir().join(format!("kconfig-tree-{}", std::process::id()));
        for (path, text) in TREE {
            std::fs::create_dir_all(tree.join(path).parent().unwrap()).unwrap();
            std::fs::write(tree.join(path), text).unwrap();
        }
        let index = SymbolIndex::scan(&tree);
        std::fs::remove_dir_all(&tree).unwrap();
        // tinyconfig: no NET.
        let tiny = "# CONFIG_NET is not set\n";
        assert_eq!(
            unmet(&index, "IP_MULTICAST", tiny),
            [
                "NET (NET=n; net/Kconfig:4)",
                "INET (INET=n; net/Kconfig:11)"
            ]
        );
        assert_eq!(
            unmet(
                &index,
                "IP_VS_FTP",
                "CONFIG_NET=y\nCONFIG_INET=y\nCONFIG_NETFILTER=y\n"
            ),
            [
                "IP_VS (IP_VS=n; net/netfilter/ipvs/Kconfig:5)",
                "IP_VS_PROTO_TCP && NF_CONNTRACK && NF_NAT && NF_CONNTRACK_FTP \
                 (NF_CONNTRACK=n, NF_CONNTRACK_FTP=n; net/netfilter/ipvs/Kconfig:9)"
            ]
        );
        // A `menu`'s and a `choice`'s `depends on` hold for what they hold.
        assert_eq!(
            unmet(&index, "NF_CONNTRACK", tiny),
            [
                "NET (NET=n; net/Kconfig:4)",
                "NETFILTER (NETFILTER=n; net/Kconfig:18)",
                "INET && NETFILTER (INET=n, NETFILTER=n; net/netfilter/Kconfig:2)"
            ]
        );
        assert_eq!(
            unmet(&index, "MK8", "CONFIG_EXPERT=y\n"),
            [
                "X86_64 (X86_64=n; arch/x86/Kconfig:7)",
                "!EXPERT (EXPERT=y; arch/x86/Kconfig:12)"
            ]
        );
        assert!(unmet(&index, "AFTER", "").is_empty());
    }
}

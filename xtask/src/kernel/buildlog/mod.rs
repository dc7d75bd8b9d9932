//! Reading Kbuild's output: progress, which object failed and why (and
//! whether the compiler said so, or a tool around it), the undefined
//! references of a failed link, and what the checks after the link (modpost,
//! objtool) reported. Pure, so it is tested on the real compiler, linker,
//! modpost and objtool lines kept in `xtask/test_data/`.
//!
//! make runs with `--output-sync=target`, so a failed object's diagnostics
//! come as one block just before make's `*** [...: obj.o] Error 1` line.

use std::{collections::BTreeMap, sync::LazyLock};

use regex::Regex;

static COMPILE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s+(?:CC|AS|CC \[M\])\s+(\S+\.o)$").unwrap());
static MAKE_ERROR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^make\[\d+\]: \*\*\* \[[^\]]*?:\d+: (\S+)\] Error \d+").unwrap());
static UNDEFINED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"undefined reference to [`'‘](\S+?)['’]").unwrap());
static IN_FUNCTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\S*ld(?:\.\w+)?(?:-\d+)?: )?(\S+?): in function [`'‘](\S+?)['’]:").unwrap()
});
// lld: `ld.lld: error: undefined symbol: X` (`ld.lld-19:` under LLVM=-19),
// then `>>> referenced by file.c:12 (/abs/file.c:12)` and
// `>>>   obj.o:(function) in archive ...`.
static LLD_UNDEFINED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\S*ld\.lld(?:-\d+)?: error: undefined symbol: (\S+)").unwrap());
static LLD_SOURCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^>>> referenced by \S+ \((\S+?):\d+\)").unwrap());
static LLD_FUNCTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^>>>\s+\S+?:\((\S+?)\)").unwrap());
static SOURCE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:\S*ld(?:\.\w+)?(?:-\d+)?: )?(\S+?\.[chS]):\d+:").unwrap());
// A diagnostic of the compiler or the assembler: `file:line[:col]: error:`,
// gas's `file:line: Error:`, or an internal compiler error. Tools around the
// compiler (fixdep, objtool, `gcc: fatal error: Killed signal`) name no line.
static COMPILER_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\S+|\{standard input\}):\d+(?::\d+)?: (?:(?:fatal )?error|Error): |internal compiler error").unwrap()
});
// The compiler stopped by the file system, not by the code: a dependency
// file, an output file or a header it cannot open. Two makes in one build
// directory, or a killed one, leave exactly these; no level fixes them.
static FILE_SYSTEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"fatal error: .*: (?:No such file or directory|Is a directory|Permission denied|No space left on device|Read-only file system)$").unwrap()
});
// `net/ipv4/tcp.o: warning: objtool: tcp_foo+0x12: unreachable instruction`,
// `vmlinux.o: error: objtool: foo() falls through to next function bar()`.
static OBJTOOL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\S+\.o): (warning|error): objtool: (.*)$").unwrap());
static OBJTOOL_FUNCTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z_][\w.]*)(?:\+0x[0-9a-f]+:|\(\)) ").unwrap());
// modpost, 6.12: `WARNING: modpost: vmlinux: section mismatch in reference:
// memblock_alloc_low+0x1c (section: .text) -> memblock_alloc_try_nid
// (section: .init.text)`; older kernels name no offset.
static SECTION_MISMATCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"modpost: (\S+?):? section mismatch in reference: (\S+?)(?:\+0x[0-9a-f]+)? \(section: (\S+)\) -> (\S+?)(?:\+0x[0-9a-f]+)? \(section: (\S+)\)",
    )
    .unwrap()
});
static MODPOST_ERROR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^ERROR: modpost: (.*)$").unwrap());

/// Who stopped an object: the compiler, whose errors may be the optimization
/// level's doing; objtool, checking the compiled object (its complaints at
/// -O0 are about code the level shaped); or another tool around the compile
/// (fixdep, objtool failing to open a file, the compiler killed), which no
/// level fixes: those never move an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailedBy {
    Compiler,
    Objtool,
    Tool(String),
}

/// What objtool said about one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjtoolMessage {
    /// The object it checked: a compiled object, or `vmlinux.o`.
    pub object: String,
    pub error: bool,
    pub function: Option<String>,
    /// After `objtool: `.
    pub message: String,
}

/// A reference modpost found from one section into another that goes away
/// (`.text` calling `.init.text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionMismatch {
    /// `vmlinux`, or a module.
    pub module: String,
    pub from: String,
    pub from_section: String,
    pub to: String,
    pub to_section: String,
}

/// One object that did not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileFailure {
    /// Build-dir-relative object, e.g. `kernel/sched/core.o`.
    pub object: String,
    /// The first `error:` line of its block, or its last line.
    pub error: String,
    /// The whole block, for matching failure classes.
    pub block: String,
    pub by: FailedBy,
}

/// A symbol the final link could not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined {
    pub symbol: String,
    /// Tree-relative source files that reference it, from the linker's
    /// debug-info line (`net/socket.c:1234: undefined reference to ...`).
    pub sources: Vec<String>,
    /// The functions the references are in.
    pub functions: Vec<String>,
}

#[derive(Debug, Default)]
pub struct BuildLog {
    pub compiled: usize,
    pub warnings: usize,
    pub last_compiled: Option<String>,
    pub failures: Vec<CompileFailure>,
    pub undefined: Vec<Undefined>,
    /// Other failed targets (vmlinux, a directory, a generated file).
    pub failed_targets: Vec<String>,
    /// The first line that looks like an error, for the summary.
    pub first_error: Option<String>,
    /// Everything objtool said, warnings included.
    pub objtool: Vec<ObjtoolMessage>,
    pub section_mismatches: Vec<SectionMismatch>,
    /// modpost's `ERROR:` lines, without the prefix: when there are any,
    /// modpost failed the build.
    pub modpost_errors: Vec<String>,
    block: Vec<String>,
    function: Option<String>,
    undefined_index: BTreeMap<String, usize>,
    /// The symbol lld's `>>>` lines are about.
    lld_symbol: Option<usize>,
    tree_prefixes: Vec<String>,
}

impl BuildLog {
    /// `tree_prefixes` are stripped from absolute paths in messages (the
    /// kernel tree, `./`), so sources come out tree-relative.
    pub fn new(tree_prefixes: Vec<String>) -> BuildLog {
        BuildLog {
            tree_prefixes,
            ..BuildLog::default()
        }
    }

    #[cfg(test)]
    pub fn parse(text: &str, tree_prefixes: Vec<String>) -> BuildLog {
        let mut log = BuildLog::new(tree_prefixes);
        for line in text.lines() {
            log.line(line);
        }
        log
    }

    fn relative<'a>(&self, path: &'a str) -> &'a str {
        self.tree_prefixes
            .iter()
            .find_map(|p| path.strip_prefix(p.as_str()))
            .unwrap_or(path)
            .trim_start_matches("./")
    }

    fn undefined_entry(&mut self, symbol: &str) -> usize {
        if let Some(&i) = self.undefined_index.get(symbol) {
            return i;
        }
        self.undefined.push(Undefined {
            symbol: symbol.to_string(),
            sources: Vec::new(),
            functions: Vec::new(),
        });
        self.undefined_index
            .insert(symbol.to_string(), self.undefined.len() - 1);
        self.undefined.len() - 1
    }

    /// Feeds one line of make's output.
    pub fn line(&mut self, line: &str) {
        if let Some(c) = COMPILE.captures(line) {
            self.compiled += 1;
            self.last_compiled = Some(c[1].to_string());
            self.block.clear();
            self.block.push(line.to_string());
            return;
        }
        if line.contains(": warning: ") {
            self.warnings += 1;
        }
        if let Some(c) = MAKE_ERROR.captures(line) {
            let target = c[1].to_string();
            if target.ends_with(".o") && !target.ends_with("vmlinux.o") {
                let (by, error) = failed_by(&self.block);
                let error = self.relative(error.trim()).to_string();
                let block = self.block.join("\n");
                self.failures.push(CompileFailure {
                    object: target,
                    error,
                    block,
                    by,
                });
            } else if !self.failed_targets.contains(&target) {
                self.failed_targets.push(target);
            }
            self.block.clear();
            return;
        }
        if let Some(c) = OBJTOOL.captures(line) {
            let message = c[3].to_string();
            self.objtool.push(ObjtoolMessage {
                object: self.relative(&c[1]).to_string(),
                error: &c[2] == "error",
                function: OBJTOOL_FUNCTION
                    .captures(&message)
                    .map(|f| f[1].to_string()),
                message,
            });
        }
        if let Some(c) = SECTION_MISMATCH.captures(line) {
            self.section_mismatches.push(SectionMismatch {
                module: c[1].to_string(),
                from: c[2].to_string(),
                from_section: c[3].to_string(),
                to: c[4].to_string(),
                to_section: c[5].to_string(),
            });
        }
        if let Some(c) = MODPOST_ERROR.captures(line) {
            self.modpost_errors.push(c[1].to_string());
        }
        if self.first_error.is_none()
            && (line.contains(" error: ")
                || line.contains("undefined reference")
                || line.starts_with("ERROR: "))
        {
            self.first_error = Some(self.relative(line.trim()).to_string());
        }
        if let Some(c) = LLD_UNDEFINED.captures(line) {
            self.lld_symbol = Some(self.undefined_entry(&c[1]));
        } else if let (Some(i), Some(c)) = (self.lld_symbol, LLD_SOURCE.captures(line)) {
            let source = self.relative(&c[1]).to_string();
            push_new(&mut self.undefined[i].sources, source);
        } else if let (Some(i), Some(c)) = (self.lld_symbol, LLD_FUNCTION.captures(line)) {
            push_new(&mut self.undefined[i].functions, c[1].to_string());
        } else if !line.starts_with(">>>") {
            self.lld_symbol = None;
        }
        if let Some(c) = IN_FUNCTION.captures(line) {
            self.function = Some(c[2].to_string());
        }
        if let Some(c) = UNDEFINED.captures(line) {
            let source = SOURCE_LINE
                .captures(line)
                .map(|s| self.relative(&s[1]).to_string());
            let index = self.undefined_entry(&c[1]);
            if let Some(source) = source {
                push_new(&mut self.undefined[index].sources, source);
            }
            if let Some(function) = self.function.clone() {
                push_new(&mut self.undefined[index].functions, function);
            }
        }
        self.block.push(line.to_string());
    }
}

/// The object a `  CC      net/ipv4/tcp.o` line says was compiled.
pub fn compiled_object(line: &str) -> Option<&str> {
    COMPILE
        .captures(line)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// The warnings of a build log, grouped by the object whose block they
/// are in (make's `--output-sync=target` keeps each object's diagnostics
/// after its `CC` line), in the order the objects came, each line with
/// `tree_prefix` stripped. An object compiled again (a later pass) keeps
/// its last compile's warnings; warnings before any object (the build's
/// preparation) and after the link's first line (objtool on vmlinux.o,
/// modpost) are under `vmlinux` or `(preparation)`.
pub fn warnings_by_object(text: &str, tree_prefix: &str) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut current = "(preparation)".to_string();
    let mut linking = false;
    for line in text.lines() {
        if let Some(object) = compiled_object(line).filter(|_| !linking) {
            current = object.to_string();
            groups.retain(|(o, _)| *o != current);
            continue;
        }
        if !linking && stage_of(line).is_some() {
            linking = true;
            current = "vmlinux".to_string();
        }
        if !line.contains(": warning: ") {
            continue;
        }
        let line = line.strip_prefix(tree_prefix).unwrap_or(line).to_string();
        match groups.iter_mut().find(|(o, _)| *o == current) {
            Some((_, lines)) => lines.push(line),
            None => groups.push((current.clone(), vec![line])),
        }
    }
    groups
}

/// Who failed an object's block, and the line that says so: the compiler's
/// first error; else objtool's first complaint about the code; else the tool
/// that failed around the compile (`fixdep: error opening file: ...: No such
/// file or directory`), named by its line's first word.
fn failed_by(block: &[String]) -> (FailedBy, String) {
    if let Some(line) = block.iter().find(|l| FILE_SYSTEM.is_match(l)) {
        return (FailedBy::Tool("the compiler".into()), line.clone());
    }
    if let Some(line) = block.iter().find(|l| COMPILER_ERROR.is_match(l)) {
        return (FailedBy::Compiler, line.clone());
    }
    // Its errors only: its warnings do not fail an object (a block can hold
    // both a warning and another tool's failure).
    let objtool = block.iter().find(|l| {
        OBJTOOL.captures(l).is_some_and(|c| &c[2] == "error")
            && !l.contains("No such file")
            && !l.contains("Can't open")
    });
    if let Some(line) = objtool {
        return (FailedBy::Objtool, line.clone());
    }
    let said = |l: &&String| !COMPILE.is_match(l) && !l.contains(": warning: ");
    let line = block
        .iter()
        .filter(said)
        .find(|l| {
            let l = l.to_lowercase();
            l.contains("error") || l.contains("no such file") || l.contains("killed")
        })
        .or_else(|| block.iter().filter(said).find(|l| !l.trim().is_empty()))
        .or(block.last())
        .cloned()
        .unwrap_or_default();
    let tool = line
        .trim()
        .split(|c: char| c == ':' || c.is_whitespace())
        .next()
        .filter(|w| !w.is_empty())
        .unwrap_or("a tool")
        .rsplit('/')
        .next()
        .unwrap_or("a tool")
        .to_string();
    (FailedBy::Tool(tool), line)
}

fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The stage of a Kbuild run a line starts, in the order they come: the
/// link of vmlinux step by step, then the boot image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// `LD vmlinux.o`: every built-in object in one relocatable object
    /// (`ld -r`), and objtool over it where the configuration delays
    /// objtool to vmlinux.o (IBT, noinstr validation).
    VmlinuxO,
    /// `MODPOST vmlinux.symvers`: modpost's checks of vmlinux.o.
    Modpost,
    /// link-vmlinux.sh: the version stamp, then the links that settle the
    /// kallsyms table (`.tmp_vmlinux1`, `.tmp_vmlinux2`).
    Kallsyms,
    /// `LD vmlinux`: the final link with all debug information, then
    /// System.map and the sorted tables.
    FinalLink,
    Image,
}

pub fn stage_of(line: &str) -> Option<Stage> {
    let mut words = line.split_whitespace();
    let (Some(tool), Some(target), None) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    if !tool.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        return None;
    }
    match target {
        _ if target.starts_with("arch/") && target.contains("/boot/") => Some(Stage::Image),
        "vmlinux.o" => Some(Stage::VmlinuxO),
        "vmlinux.symvers" => Some(Stage::Modpost),
        "init/version-timestamp.o" => Some(Stage::Kallsyms),
        _ if target.starts_with(".tmp_vmlinux") => Some(Stage::Kallsyms),
        "vmlinux" => Some(Stage::FinalLink),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

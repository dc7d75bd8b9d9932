//! Reading Kbuild's output: progress, which object failed and why, and the
//! undefined references of a failed link. Pure, so it is tested on the real
//! compiler and linker lines kept in `xtask/test_data/`.
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
    Regex::new(r"^(?:\S*ld(?:\.\w+)?: )?(\S+?): in function [`'‘](\S+?)['’]:").unwrap()
});
// lld: `ld.lld: error: undefined symbol: X`, then `>>> referenced by
// file.c:12 (/abs/file.c:12)` and `>>>   obj.o:(function) in archive ...`.
static LLD_UNDEFINED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\S*ld\.lld: error: undefined symbol: (\S+)").unwrap());
static LLD_SOURCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^>>> referenced by \S+ \((\S+?):\d+\)").unwrap());
static LLD_FUNCTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^>>>\s+\S+?:\((\S+?)\)").unwrap());
static SOURCE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:\S*ld(?:\.\w+)?: )?(\S+?\.[chS]):\d+:").unwrap());

/// One object that did not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileFailure {
    /// Build-dir-relative object, e.g. `kernel/sched/core.o`.
    pub object: String,
    /// The first `error:` line of its block, or its last line.
    pub error: String,
    /// The whole block, for matching failure classes.
    pub block: String,
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
                let error = self
                    .block
                    .iter()
                    .find(|l| l.contains(" error: ") || l.contains("Error:"))
                    .or(self.block.last())
                    .cloned()
                    .unwrap_or_default();
                let error = self.relative(error.trim()).to_string();
                let block = self.block.join("\n");
                self.failures.push(CompileFailure {
                    object: target,
                    error,
                    block,
                });
            } else if !self.failed_targets.contains(&target) {
                self.failed_targets.push(target);
            }
            self.block.clear();
            return;
        }
        if self.first_error.is_none()
            && (line.contains(" error: ") || line.contains("undefined reference"))
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

fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The stage of a Kbuild run a line starts: the link of vmlinux (vmlinux.o,
/// the kallsyms passes, objtool, modpost), or the boot image after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Link,
    Image,
}

pub fn stage_of(line: &str) -> Option<Stage> {
    let mut words = line.split_whitespace();
    let (Some(tool), Some(target)) = (words.next(), words.next()) else {
        return None;
    };
    if !tool.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        return None;
    }
    if target.starts_with("arch/") && target.contains("/boot/") {
        Some(Stage::Image)
    } else if target == "vmlinux.o" || target == "vmlinux" || target.starts_with(".tmp_vmlinux") {
        Some(Stage::Link)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_of_kbuild_lines() {
        assert_eq!(stage_of("  CC      net/ipv4/tcp.o"), None);
        assert_eq!(stage_of("  LD      vmlinux.o"), Some(Stage::Link));
        assert_eq!(stage_of("  LD      .tmp_vmlinux1"), Some(Stage::Link));
        assert_eq!(
            stage_of("  KSYMS   .tmp_vmlinux1.kallsyms.S"),
            Some(Stage::Link)
        );
        assert_eq!(stage_of("  LD      vmlinux"), Some(Stage::Link));
        assert_eq!(
            stage_of("  OBJCOPY arch/x86/boot/compressed/vmlinux.bin"),
            Some(Stage::Image)
        );
        assert_eq!(
            stage_of("  GEN     arch/arm64/boot/Image"),
            Some(Stage::Image)
        );
        assert_eq!(stage_of("net/ipv4/tcp.c:12:3: warning: vmlinux x"), None);
    }

    fn data(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test_data")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn attributes_compile_errors_to_objects() {
        let log = BuildLog::parse(
            &data("build/og-compile-errors.log"),
            vec!["/work/main/kernel/".into()],
        );
        let failed: Vec<(&str, &str)> = log
            .failures
            .iter()
            .map(|f| (f.object.as_str(), f.error.as_str()))
            .collect();
        assert_eq!(
            failed,
            [
                ("kernel/sched/core.o", "include/linux/compiler_types.h:543:45: error: call to ‘__compiletime_assert_752’ declared with attribute error: min(tsk->normal_prio, pi_task->prio) signedness error"),
                ("arch/x86/events/intel/core.o", "include/linux/compiler_types.h:543:45: error: call to ‘__compiletime_assert_365’ declared with attribute error: max(*left, erratum_hsw11(event) ? 128 : 32) signedness error"),
                ("mm/mmu_gather.o", "include/linux/compiler_types.h:543:45: error: call to ‘__compiletime_assert_86’ declared with attribute error: BUILD_BUG_ON failed: flags > ENCODED_PAGE_BITS"),
                ("lib/iov_iter.o", "include/linux/compiler_types.h:543:45: error: call to ‘__compiletime_assert_401’ declared with attribute error: min(npages, maxpages) signedness error"),
            ]
        );
        assert!(log.failures[2]
            .block
            .contains("inlined from ‘__tlb_remove_folio_pages_size’"));
        assert_eq!(log.failed_targets, ["kernel/sched", "kernel"]);
        assert_eq!(log.compiled, 5);
    }

    #[test]
    fn collects_undefined_references() {
        let log = BuildLog::parse(
            &data("build/o0-link-errors.log"),
            vec!["/work/main/kernel/".into()],
        );
        let found: Vec<(&str, Vec<&str>)> = log
            .undefined
            .iter()
            .map(|u| {
                (
                    u.symbol.as_str(),
                    u.sources.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("__sock_recv_wifi_status", vec!["include/net/sock.h"]),
                (
                    "mem_cgroup_charge_skmem",
                    vec!["net/core/sock.c", "net/ipv4/tcp_output.c"]
                ),
                ("mem_cgroup_uncharge_skmem", vec!["net/core/sock.c"]),
                ("bpf_offload_dev_match", vec!["net/core/dev.c"]),
            ]
        );
        assert_eq!(log.undefined[0].functions, ["sock_recv_timestamp"]);
        assert_eq!(log.undefined[3].functions, ["dev_xdp_install"]);
        assert_eq!(log.failed_targets, ["vmlinux", "__sub-make"]);
        assert!(log.failures.is_empty());
    }

    #[test]
    fn collects_lld_undefined_symbols() {
        let log = BuildLog::parse(
            &data("build/lld-link-errors.log"),
            vec!["/work/main/kernel/".into()],
        );
        let found: Vec<(&str, Vec<&str>, Vec<&str>)> = log
            .undefined
            .iter()
            .map(|u| {
                (
                    u.symbol.as_str(),
                    u.sources.iter().map(String::as_str).collect(),
                    u.functions.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "__scoped_seqlock_bug",
                    vec!["include/linux/seqlock.h"],
                    vec!["do_task_stat"]
                ),
                (
                    "cmsghdr_from_user_compat_to_kern",
                    vec!["net/socket.c"],
                    vec!["____sys_sendmsg"]
                ),
                (
                    "get_compat_msghdr",
                    vec!["net/socket.c"],
                    vec!["sendmsg_copy_msghdr", "recvmsg_copy_msghdr"]
                ),
                ("put_cmsg_compat", vec!["net/core/scm.c"], vec!["put_cmsg"]),
                (
                    "scm_detach_fds_compat",
                    vec!["net/core/scm.c"],
                    vec!["scm_detach_fds"]
                ),
            ]
        );
        assert_eq!(log.failed_targets, ["vmlinux"]);
    }

    #[test]
    fn counts_progress_and_warnings() {
        let text = "  CC      net/ipv4/tcp.o\nnet/ipv4/tcp.c:1:1: warning: unused\n  AS      arch/x86/entry/entry_64.o\n";
        let log = BuildLog::parse(text, vec![]);
        assert_eq!((log.compiled, log.warnings), (2, 1));
        assert_eq!(
            log.last_compiled.as_deref(),
            Some("arch/x86/entry/entry_64.o")
        );
    }
}

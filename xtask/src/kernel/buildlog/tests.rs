use super::*;

#[test]
fn stages_of_kbuild_lines() {
    assert_eq!(stage_of("  CC      net/ipv4/tcp.o"), None);
    assert_eq!(stage_of("  LD      vmlinux.o"), Some(Stage::VmlinuxO));
    assert_eq!(stage_of("  MODPOST vmlinux.symvers"), Some(Stage::Modpost));
    assert_eq!(
        stage_of("  CC      init/version-timestamp.o"),
        Some(Stage::Kallsyms)
    );
    assert_eq!(stage_of("  LD      .tmp_vmlinux1"), Some(Stage::Kallsyms));
    assert_eq!(
        stage_of("  KSYMS   .tmp_vmlinux1.kallsyms.S"),
        Some(Stage::Kallsyms)
    );
    assert_eq!(stage_of("  LD      vmlinux"), Some(Stage::FinalLink));
    assert_eq!(
        stage_of("  OBJCOPY arch/x86/boot/compressed/vmlinux.bin"),
        Some(Stage::Image)
    );
    assert_eq!(
        stage_of("  GEN     arch/arm64/boot/Image"),
        Some(Stage::Image)
    );
    assert_eq!(stage_of("net/ipv4/tcp.c:12:3: warning: vmlinux x"), None);
    assert_eq!(stage_of("WARNING vmlinux has a problem"), None);
    assert!(Stage::VmlinuxO < Stage::Modpost && Stage::FinalLink < Stage::Image);
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
        &data("buildlog/og-compile-errors.log"),
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
        &data("buildlog/o0-link-errors.log"),
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

/// A versioned lld (`LLVM=-19`) names itself `ld.lld-19`: the same
/// failure, read the same way (real output of clang 19 on 6.12.117).
#[test]
fn a_versioned_lld_is_read_as_lld() {
    let log = BuildLog::parse(
        &data("buildlog/lld-19-link-errors.log"),
        vec!["/work/main/kernel/".into()],
    );
    assert_eq!(log.undefined.len(), 1);
    assert_eq!(log.undefined[0].symbol, "__scoped_seqlock_bug");
    assert_eq!(log.undefined[0].functions, ["do_task_stat"]);
    assert_eq!(log.undefined[0].sources, ["include/linux/seqlock.h"]);
}

#[test]
fn collects_lld_undefined_symbols() {
    let log = BuildLog::parse(
        &data("buildlog/lld-link-errors.log"),
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
fn compile_errors_are_the_compilers() {
    let log = BuildLog::parse(&data("buildlog/og-compile-errors.log"), vec![]);
    assert!(log.failures.iter().all(|f| f.by == FailedBy::Compiler));
    let text = "  AS      arch/x86/lib/foo.o\n{standard input}: Assembler messages:\n{standard input}:12: Error: no such instruction: `bogus'\nmake[4]: *** [/k/scripts/Makefile.build:361: arch/x86/lib/foo.o] Error 1\n";
    let log = BuildLog::parse(text, vec![]);
    assert_eq!(log.failures[0].by, FailedBy::Compiler);
    assert_eq!(
        log.failures[0].error,
        "{standard input}:12: Error: no such instruction: `bogus'"
    );
}

/// Seen when two makes shared a build directory: fixdep and objtool
/// found a file gone. Not the compiler: such failures must never move an
/// object (study/notes/arch-recipes.md, "Side finding").
#[test]
fn tools_around_the_compiler_are_not_the_compiler() {
    let text = concat!(
        "  CC      net/ipv4/ping.o\n",
        "fixdep: error opening file: net/ipv4/.ping.o.d: No such file or directory\n",
        "make[4]: *** [/work/main/kernel/scripts/Makefile.build:229: net/ipv4/ping.o] Error 2\n",
        "  CC      net/ipv4/ip_tunnel.o\n",
        "objtool: Can't open 'net/ipv4/ip_tunnel.o': No such file or directory\n",
        "make[4]: *** [/work/main/kernel/scripts/Makefile.build:229: net/ipv4/ip_tunnel.o] Error 1\n",
        "  CC      kernel/sched/core.o\n",
        "gcc: fatal error: Killed signal terminated program cc1\n",
        "compilation terminated.\n",
        "make[3]: *** [/work/main/kernel/scripts/Makefile.build:229: kernel/sched/core.o] Error 1\n",
        "  CC      net/ipv4/ping.o\n",
        "/work/main/kernel/net/ipv4/ping.c:1:1: fatal error: opening dependency file net/ipv4/.ping.o.d: Is a directory\n",
        "    1 | // SPDX-License-Identifier: GPL-2.0-or-later\n",
        "compilation terminated.\n",
        "make[4]: *** [/work/main/kernel/scripts/Makefile.build:229: net/ipv4/ping.o] Error 1\n",
    );
    let log = BuildLog::parse(text, vec!["/work/main/kernel/".into()]);
    let failed: Vec<(&str, &FailedBy, &str)> = log
        .failures
        .iter()
        .map(|f| (f.object.as_str(), &f.by, f.error.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (
                "net/ipv4/ping.o",
                &FailedBy::Tool("fixdep".into()),
                "fixdep: error opening file: net/ipv4/.ping.o.d: No such file or directory"
            ),
            (
                "net/ipv4/ip_tunnel.o",
                &FailedBy::Tool("objtool".into()),
                "objtool: Can't open 'net/ipv4/ip_tunnel.o': No such file or directory"
            ),
            (
                "kernel/sched/core.o",
                &FailedBy::Tool("gcc".into()),
                "gcc: fatal error: Killed signal terminated program cc1"
            ),
            (
                "net/ipv4/ping.o",
                &FailedBy::Tool("the compiler".into()),
                "net/ipv4/ping.c:1:1: fatal error: opening dependency file net/ipv4/.ping.o.d: Is a directory"
            ),
        ]
    );
}

/// objtool's words: the warnings are what the `tiny` build printed
/// (net/ at -O0, Linux 6.12.117); the vmlinux.o error is check.c's
/// format, as kernels that make objtool's warnings fatal print it.
#[test]
fn objtool_messages_name_object_and_function() {
    let text = concat!(
        "  CC      net/core/skbuff.o\n",
        "net/core/skbuff.o: warning: objtool: skb_over_panic+0x33: unreachable instruction\n",
        "  CC      net/core/scm.o\n",
        "net/core/scm.o: warning: objtool: put_cmsg+0x4ac: return with UACCESS enabled\n",
        "  LD      vmlinux.o\n",
        "vmlinux.o: error: objtool: baz() falls through to next function qux()\n",
    );
    let log = BuildLog::parse(text, vec![]);
    let seen: Vec<(&str, bool, Option<&str>, &str)> = log
        .objtool
        .iter()
        .map(|m| {
            (
                m.object.as_str(),
                m.error,
                m.function.as_deref(),
                m.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "net/core/skbuff.o",
                false,
                Some("skb_over_panic"),
                "skb_over_panic+0x33: unreachable instruction"
            ),
            (
                "net/core/scm.o",
                false,
                Some("put_cmsg"),
                "put_cmsg+0x4ac: return with UACCESS enabled"
            ),
            (
                "vmlinux.o",
                true,
                Some("baz"),
                "baz() falls through to next function qux()"
            ),
        ]
    );
    assert_eq!(log.warnings, 2);
    // An objtool error that fails an object's own compile rule is
    // objtool's, not a tool's mishap.
    let text = "  CC      net/core/scm.o\nnet/core/scm.o: error: objtool: put_cmsg+0x4ac: return with UACCESS enabled\nmake[4]: *** [/k/scripts/Makefile.build:229: net/core/scm.o] Error 255\n";
    let log = BuildLog::parse(text, vec![]);
    assert_eq!(log.failures[0].by, FailedBy::Objtool);
    // A warning, then fixdep's mishap: fixdep's.
    let text = concat!(
        "  CC      net/core/scm.o\n",
        "net/core/scm.o: warning: objtool: put_cmsg+0x4ac: return with UACCESS enabled\n",
        "fixdep: error opening file: net/core/.scm.o.d: No such file or directory\n",
        "make[4]: *** [/k/scripts/Makefile.build:229: net/core/scm.o] Error 2\n",
    );
    let log = BuildLog::parse(text, vec![]);
    assert_eq!(log.failures[0].by, FailedBy::Tool("fixdep".into()));
}

/// The arm64 `tiny` build's modpost failure (study/notes/arch-recipes.md).
#[test]
fn collects_modpost_section_mismatches() {
    let log = BuildLog::parse(
        &data("buildlog/modpost-section-mismatch.log"),
        vec!["/work/main/target/kernel-test/linux/".into()],
    );
    assert_eq!(
        log.section_mismatches,
        [SectionMismatch {
            module: "vmlinux".into(),
            from: "memblock_alloc_low".into(),
            from_section: ".text".into(),
            to: "memblock_alloc_try_nid".into(),
            to_section: ".init.text".into(),
        }]
    );
    assert_eq!(log.modpost_errors, ["Section mismatches detected."]);
    assert!(log.failures.is_empty());
    assert_eq!(
        log.first_error.as_deref(),
        Some("ERROR: modpost: Section mismatches detected.")
    );
    // Before 6.2 modpost named no offset and spelled vmlinux.o.
    let log = BuildLog::parse(
        "WARNING: modpost: vmlinux.o: section mismatch in reference: foo (section: .text) -> bar (section: .init.data)\n",
        vec![],
    );
    assert_eq!(
        (
            log.section_mismatches[0].from.as_str(),
            log.section_mismatches[0].to.as_str()
        ),
        ("foo", "bar")
    );
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

#[test]
fn warnings_group_by_object_and_a_later_compile_replaces_them() {
    let text = "
  CC      scripts/mod/empty.o
/k/scripts/mod/empty.c:1:1: warning: before
  CC      net/ipv4/tcp.o
/k/net/ipv4/tcp.c:10:3: warning: unused variable 'x' [-Wunused-variable]
   10 |   int x;
/k/include/net/sock.h:5:1: warning: in a header
  CC      mm/memory.o
  CC      net/ipv4/ping.o
/k/net/ipv4/ping.c:7:2: warning: one
# linux-study: pass 2
  CC      net/ipv4/tcp.o
/k/net/ipv4/tcp.c:10:3: warning: unused variable 'x' [-Wunused-variable]
  LD      vmlinux.o
vmlinux.o: warning: objtool: foo+0x1: unreachable instruction
  CC      init/version-timestamp.o
";
    let groups = warnings_by_object(text, "/k/");
    let shown: Vec<(&str, Vec<&str>)> = groups
        .iter()
        .map(|(o, l)| (o.as_str(), l.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "scripts/mod/empty.o",
                vec!["scripts/mod/empty.c:1:1: warning: before"]
            ),
            ("net/ipv4/ping.o", vec!["net/ipv4/ping.c:7:2: warning: one"]),
            (
                "net/ipv4/tcp.o",
                vec!["net/ipv4/tcp.c:10:3: warning: unused variable 'x' [-Wunused-variable]"]
            ),
            (
                "vmlinux",
                vec!["vmlinux.o: warning: objtool: foo+0x1: unreachable instruction"]
            ),
        ]
    );
}

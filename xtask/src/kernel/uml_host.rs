//! Whether this host can run a tree's User-Mode Linux on x86_64.
//!
//! UML keeps each guest process's FP state with ptrace's
//! `PTRACE_GETREGSET`/`PTRACE_SETREGSET NT_X86_XSTATE`. The host kernel takes
//! a SETREGSET only of its whole XSAVE area (arch/x86/kernel/fpu/regset.c,
//! `xstateregs_set`: a count other than `fpu_user_cfg.max_size` is EFAULT);
//! ptrace cuts a larger buffer down to that size, so only a smaller one
//! fails. Until upstream sized the buffer at run time, UML's was a constant
//! of the tree (`DEFINE_LONGS(HOST_FP_SIZE, 2696)` in
//! arch/x86/um/user-offsets.c, in 6.1 and 6.12). On a host whose XSAVE area
//! is larger (Intel's AMX adds 8 KiB of tile data: 11008 bytes), every
//! process in the guest dies of SIGSEGV after `ptrace set fp regs failed,
//! errno = 14`, and the kernel panics when init does. Nothing short of a
//! source patch changes either size: the host's is fixed at the host's
//! boot (`clearcpuid=` is the host owner's), the tree's at compile time.
//!
//! The decision is a pure function of the two sizes, tested for both kinds
//! of host; the probes read CPUID and the tree.

use std::{fmt, path::Path};

use regex::Regex;

use crate::study::arch::UmlHostFp;

/// What the host kernel wants in one NT_X86_XSTATE transfer: the size of
/// the standard-format XSAVE area of the features it enabled in XCR0,
/// CPUID leaf 0xD, sub-leaf 0, EBX. `None` where there is no XSAVE (UML
/// then falls back to PTRACE_GETFPREGS, of fixed size) or no x86 CPUID.
///
/// `LINUX_STUDY_HOST_XSAVE_BYTES` stands in for the probe: it lets a host
/// that fits show what another host would be told (the tests use it).
pub fn host_xsave_bytes() -> Option<u32> {
    if let Ok(text) = std::env::var(HOST_XSAVE_VAR) {
        return text.trim().parse().ok();
    }
    cpuid_xsave_bytes()
}

pub const HOST_XSAVE_VAR: &str = "LINUX_STUDY_HOST_XSAVE_BYTES";

#[cfg(target_arch = "x86_64")]
fn cpuid_xsave_bytes() -> Option<u32> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // Leaves above the maximum are not asked for.
    let max_leaf = __cpuid(0).eax;
    if max_leaf < 0xd {
        return None;
    }
    const OSXSAVE: u32 = 1 << 27;
    if __cpuid(1).ecx & OSXSAVE == 0 {
        return None;
    }
    Some(__cpuid_count(0xd, 0).ebx)
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_xsave_bytes() -> Option<u32> {
    None
}

/// How a tree's UML sizes its FP buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeFp {
    /// A constant of the tree, in bytes.
    Fixed(u32),
    /// Asked of the host at run time: any host fits.
    AtRunTime,
}

/// Reads the tree's constant (`DEFINE_LONGS(HOST_FP_SIZE, 2696)`) from the
/// file that `study` names; a tree without it sizes the buffer at run time.
pub fn tree_fp(tree: &Path, spec: &UmlHostFp) -> TreeFp {
    let text = std::fs::read_to_string(tree.join(&spec.constant_in)).unwrap_or_default();
    parse_tree_fp(&text)
}

fn parse_tree_fp(text: &str) -> TreeFp {
    let constant = Regex::new(r"DEFINE_LONGS\(\s*HOST_FP_SIZE\s*,\s*(\d+)\s*\)").unwrap();
    match constant.captures(text).and_then(|c| c[1].parse().ok()) {
        Some(bytes) => TreeFp::Fixed(bytes),
        None => TreeFp::AtRunTime,
    }
}

/// Why UML cannot run processes on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    pub host_bytes: u32,
    pub tree_bytes: u32,
    pub version: String,
    pub fixed_in: String,
    pub fix: String,
    pub constant_in: String,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UML cannot run processes on this host: its XSAVE area is {} bytes (CPUID leaf 0xD), \
             and Linux {}'s UML hands ptrace {} ({} HOST_FP_SIZE), so every guest process dies \
             after \"ptrace set fp regs failed, errno = 14\"; UML sizes it at run time from \
             Linux {} ({}); build for --arch x86_64 instead",
            self.host_bytes,
            self.version,
            self.tree_bytes,
            self.constant_in,
            self.fixed_in,
            self.fix
        )
    }
}

/// The decision: a tree whose constant is smaller than the host's XSAVE
/// area cannot run a process; any other pair can.
pub fn fits(host_bytes: Option<u32>, tree: TreeFp) -> Result<(), (u32, u32)> {
    match (host_bytes, tree) {
        (Some(host), TreeFp::Fixed(bytes)) if host > bytes => Err((host, bytes)),
        _ => Ok(()),
    }
}

/// This host against the tree at `tree` (Linux `version`).
pub fn check(tree: &Path, version: &str, spec: &UmlHostFp) -> Result<(), Unfit> {
    fits(host_xsave_bytes(), tree_fp(tree, spec)).map_err(|(host_bytes, tree_bytes)| Unfit {
        host_bytes,
        tree_bytes,
        version: version.to_string(),
        fixed_in: spec.fixed_in.clone(),
        fix: spec.fix.clone(),
        constant_in: spec.constant_in.clone(),
    })
}

/// What `setup --arch um` says of this host and tree: the two sizes and
/// the verdict, in one line.
pub fn report(tree: &Path, version: &str, spec: &UmlHostFp) -> String {
    let host = match host_xsave_bytes() {
        Some(bytes) => format!("this host's XSAVE area is {bytes} bytes"),
        None => "this host has no XSAVE".to_string(),
    };
    let kernel = match tree_fp(tree, spec) {
        TreeFp::Fixed(bytes) => format!("Linux {version}'s UML hands ptrace {bytes}"),
        TreeFp::AtRunTime => format!("Linux {version}'s UML asks the host"),
    };
    match check(tree, version, spec) {
        Ok(()) => format!("uml: {host}; {kernel}: UML runs here"),
        Err(unfit) => format!("uml: {unfit}"),
    }
}

/// UML's own words when the host refused a process's FP state
/// (arch/um/os-Linux/skas/process.c).
pub fn is_fp_refusal(console_line: &str) -> bool {
    console_line.contains("ptrace set fp regs failed")
        || console_line.contains("ptrace get fp regs failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On an AMD EPYC with AVX-512 (2432 or 2696 bytes with PKRU) 6.12's
    /// UML runs; on an Intel Xeon with AMX (11008 bytes) it cannot; a tree
    /// that asks the host at run time runs on both; no XSAVE, no question.
    #[test]
    fn both_kinds_of_host() {
        let tree = TreeFp::Fixed(2696);
        assert_eq!(fits(Some(2432), tree), Ok(()));
        assert_eq!(fits(Some(2696), tree), Ok(()));
        assert_eq!(fits(Some(11008), tree), Err((11008, 2696)));
        assert_eq!(fits(Some(11008), TreeFp::AtRunTime), Ok(()));
        assert_eq!(fits(None, tree), Ok(()));
    }

    #[test]
    fn the_trees_constant_is_read_from_its_source() {
        let text = "#ifdef FP_XSTATE_MAGIC1\n\tDEFINE_LONGS(HOST_FP_SIZE, 2696);\n#else\n\
                    \tDEFINE(HOST_FP_SIZE, sizeof(struct _fpstate) / sizeof(unsigned long));\n#endif\n";
        assert_eq!(parse_tree_fp(text), TreeFp::Fixed(2696));
        assert_eq!(
            parse_tree_fp("\tDEFINE(HOST_PC, RIP);\n"),
            TreeFp::AtRunTime
        );
    }

    /// The probe answers on every x86_64 host with XSAVE, with at least
    /// the legacy area and the XSAVE header (512 + 64 bytes).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_probe_reads_this_hosts_xsave_area() {
        if let Some(bytes) = cpuid_xsave_bytes() {
            assert!(bytes >= 576, "{bytes}");
        }
    }

    #[test]
    fn the_line_names_both_sizes_the_fix_and_the_alternative() {
        let unfit = Unfit {
            host_bytes: 11008,
            tree_bytes: 2696,
            version: "6.12.117".into(),
            fixed_in: "6.X".into(),
            fix: "commit".into(),
            constant_in: "arch/x86/um/user-offsets.c".into(),
        };
        let line = unfit.to_string();
        for part in [
            "11008 bytes",
            "Linux 6.12.117",
            "2696",
            "6.X",
            "--arch x86_64",
        ] {
            assert!(line.contains(part), "{part}: {line}");
        }
        assert!(!line.contains('\n'));
        assert!(is_fp_refusal(
            "userspace - ptrace set fp regs failed, errno = 14"
        ));
        assert!(!is_fp_refusal(
            "Kernel panic - not syncing: Attempted to kill init!"
        ));
    }
}

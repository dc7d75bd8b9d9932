//! Running the built kernel: the QEMU and kernel command lines, the guest
//! programs and the initramfs, supervising QEMU and reading init's exit
//! status, the KVM probe, and what the guest is told to do for gdb and for
//! ftrace (the gdb session file, the trace script). It uses `ctx`, `study`
//! and `util`; it never builds (callers ask `builder` first).

pub mod clock;
pub mod console;
pub mod drgn;
pub mod freebsd_guest;
pub mod gdb;
pub mod gdb_session;
pub mod hold;
pub mod initramfs;
pub mod kvm;
pub mod live;
pub mod packetdrill_script;
pub mod programs;
pub mod qemu;
pub mod qmp;
pub mod recording;
pub mod run;
pub mod run_request;
pub mod snapshot;
pub mod status;
pub mod trace_script;
pub mod tracing;
pub mod uml;

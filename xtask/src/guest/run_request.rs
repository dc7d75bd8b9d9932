//! What a caller asks of one guest run: memory, CPUs, the debugger, the
//! command line's extras, the bounds on time, and where the console goes.

use std::{path::PathBuf, time::Duration};

use crate::{
    ctx::Prepared,
    guest::{qemu::Accel, recording::Rr},
};

pub struct RunRequest {
    pub accel: Accel,
    pub mem: String,
    pub cpus: u32,
    pub gdb_port: Option<u16>,
    pub wait_gdb: bool,
    /// With a command and a gdb port: the kernel boots at once, while gdb
    /// reads vmlinux, and init holds the command until gdb first continues
    /// ([`GdbWait::JobHeld`]); where the guest cannot be held that way,
    /// the stub waits at the reset vector instead.
    pub hold_for_gdb: bool,
    pub append: Vec<String>,
    /// Appended to QEMU's `-cpu` model (`debug --record`: no SMAP).
    pub cpu_features: Vec<String>,
    pub qemu_args: Vec<String>,
    pub timeout: Duration,
    /// With `wait_gdb`: how long the guest waits for a debugger to attach
    /// before it is killed. Once one has attached there is no bound at all.
    pub attach_timeout: Duration,
    pub initramfs: bool,
    pub out_dir: Option<PathBuf>,
    /// Host files the command reads: in an initramfs, at the same path.
    pub files: Vec<PathBuf>,
    /// The console goes to stderr, not stdout: for a command whose stdout
    /// is a result of its own (a trace, a graph) and the guest's output
    /// is incidental.
    pub console_to_stderr: bool,
    /// The guest stays up after its command, until the tool stops it: for
    /// a reader of its memory (drgn, `dump`), whatever the command does.
    pub linger: bool,
    /// Record or replay the run (QEMU's record/replay, on an initramfs:
    /// the status comes from the console, as QEMU cannot replay a 9p
    /// export).
    pub rr: Option<Rr>,
}

impl RunRequest {
    /// A run that `rr` records or replays on `p`'s build: under TCG, on an
    /// initramfs (QEMU cannot replay a 9p export), with the CPU features of
    /// the arch file's `record` (the guest a replay's `study-record` can
    /// follow: no SMAP); otherwise plain.
    pub fn recorded(p: &Prepared, rr: Rr) -> RunRequest {
        RunRequest {
            cpu_features: p
                .arch
                .record
                .as_ref()
                .map_or(Vec::new(), |r| r.cpu_features.clone()),
            initramfs: true,
            rr: Some(rr),
            ..RunRequest::new(Accel::Tcg)
        }
    }

    /// A plain run: 1 GiB, one CPU, no debugger, the host's root, 600 s
    /// (and 300 s for a debugger to attach, should one be asked for).
    pub fn new(accel: Accel) -> RunRequest {
        RunRequest {
            accel,
            mem: "1G".into(),
            cpus: 1,
            gdb_port: None,
            wait_gdb: false,
            hold_for_gdb: false,
            append: Vec::new(),
            cpu_features: Vec::new(),
            qemu_args: Vec::new(),
            timeout: Duration::from_secs(600),
            attach_timeout: Duration::from_secs(300),
            initramfs: false,
            out_dir: None,
            files: Vec::new(),
            console_to_stderr: false,
            linger: false,
            rr: None,
        }
    }
}

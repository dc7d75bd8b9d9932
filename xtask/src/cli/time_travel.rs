//! The flags of `record` and `replay`: one run recorded by QEMU, and
//! replayed, under gdb when asked, where reverse commands work.

use clap::Args;

use crate::cli::{Session, TargetArgs};

#[derive(Args, Debug)]
pub struct Record {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The recording's name, a folder under the build's .study/record/
    #[arg(long, default_value = "last", value_name = "NAME")]
    pub name: String,
    /// Seconds before a guest that has not reported an exit status is killed
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// The command to record, after `--`: a guest program or a busybox applet
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Replay {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The recording to replay
    #[arg(value_name = "NAME", default_value = "last")]
    pub name: String,
    #[command(flatten)]
    pub session: Session,
    /// The stub's port on 127.0.0.1 [default: a free one]
    #[arg(long)]
    pub port: Option<u16>,
    /// Leave every reverse command to QEMU, which replays from the boot
    /// (about 20 s each on tiny) [default: gdb's own record from the first
    /// stop answers at once back to it; `record stop` hands over to QEMU]
    #[arg(long)]
    pub qemu_reverse: bool,
}

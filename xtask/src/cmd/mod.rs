//! One thin file per subcommand: each turns its flags (`cli`) into requests
//! for the layers below and prints the result. A command never calls
//! another command; what two commands share lives a layer down.

pub mod bench;
pub mod build;
pub mod callgraph;
pub mod ci;
pub mod completions;
pub mod config;
pub mod debug;
pub mod drgn;
pub mod dump;
pub mod follow;
pub mod gdb;
pub mod kernel;
pub mod opt_report;
pub mod packetdrill;
pub mod record;
pub mod replay;
pub mod run;
pub mod setup;
pub mod trace;

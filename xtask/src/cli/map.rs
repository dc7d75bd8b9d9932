//! The flags of the map's commands: `callgraph` (the static call graph,
//! with what each indirect site can call and what a run did call) and
//! `follow` (one run's path, rebuilt at -O0).

use std::path::PathBuf;

use clap::Args;

use crate::cli::{AccelArg, TargetArgs};

#[derive(Args, Debug)]
pub struct Callgraph {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The function at the centre
    #[arg(value_name = "FUNC", required_unless_present = "sites_under")]
    pub function: Option<String>,
    /// Instead of a graph: how many indirect call sites of the functions under DIR (tree-relative, e.g. net/) have their member named
    #[arg(long, value_name = "DIR", conflicts_with = "run")]
    pub sites_under: Option<String>,
    /// Levels of calls to follow
    #[arg(long, default_value_t = 2)]
    pub depth: usize,
    /// Who calls FUNC, instead of what FUNC calls
    #[arg(long)]
    pub callers: bool,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
    /// Write the graph to FILE instead of printing it
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Trace CMD (function_graph below FUNC) and mark what the run reached
    #[arg(long)]
    pub run: bool,
    /// With --run: write the raw trace to FILE too
    #[arg(long, value_name = "FILE")]
    pub trace_output: Option<PathBuf>,
    /// Accelerator for --run, as for `run`
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// Seconds before a --run guest is killed
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// The command to run under the trace, after `--` (with --run)
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Follow {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The function the run stops in (the path above it from gdb's stack, below it from the trace)
    #[arg(value_name = "FUNC", required_unless_present = "clear")]
    pub function: Option<String>,
    /// Remove the rules earlier `follow` runs wrote (the next build puts their files back)
    #[arg(long)]
    pub clear: bool,
    /// The command whose path to follow, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// A tree, one function a line, its call sites beside it
    Text,
    /// Graphviz's DOT
    Dot,
    /// DOT drawn by graphviz's `dot -Tsvg`
    Svg,
    Json,
}

//! Parser and analyses for the kernel's ftrace `function_graph` text output.
//!
//! [`Trace::parse`] turns the text of `/sys/kernel/tracing/trace` (or
//! `trace_pipe`) into call trees; the analyses on top of it are [`Trace::find`],
//! [`chain`] (one line per layer below a function) and
//! [`Trace::folded`] (folded stacks for flamegraph.pl / inferno).
//!
//! The format is the one printed by `kernel/trace/trace_functions_graph.c`:
//!
//! ```text
//!  [abstime |] [rel us |] [CPU)] [task-pid |] [lat |] [mark duration us |]  indent function
//! ```
//!
//! where the function column is `func() {` (entry), `func();` (leaf, duration on
//! the same line), `}` or `} /* func */` (exit, duration of the entry), a
//! comment `/* text */`, or the irq markers `==========>` / `<==========`.
//! Context switches are printed as a block around ` 0) task-1 => task-2`.
//!
//! Nesting follows the braces. Indentation (2 spaces per depth) is only used
//! to repair lost events: an exit whose entry is not in the buffer (truncated
//! start, `CPU:n [LOST m EVENTS]`) becomes a call with `entry_missing` set
//! that adopts the preceding deeper calls; an entry whose exit is lost is
//! closed without a duration. Open calls are kept per task (pid from the
//! task column or the context-switch lines, else per CPU), since the kernel
//! keeps the graph depth per task.
//!
//! `model` holds the call tree, `parse` builds it from text, and `chain`
//! condenses it by layer.

mod chain;
mod model;
mod parse;

pub use chain::chain;
pub use model::{base_name, Call, Trace};

#[cfg(test)]
mod tests;

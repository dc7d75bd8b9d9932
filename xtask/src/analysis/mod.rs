//! Reading what a build and a run produced: the DWARF of each object (the
//! -O level used and what gdb can see), the opt-report built on it, ftrace
//! output (model, parser, per-layer chain), and the layer spine of a call.
//! Pure over files and text: it starts no process (the call graph writes
//! its index through the executor). It uses `builder::fallback` (what each
//! object's step is), `ctx`, `study` and `util`.

pub mod callgraph;
pub mod dwarf;
pub mod ftrace;
pub mod opt_report;
pub mod packetdrill_results;
pub mod spine;
pub mod symbols;
pub mod trace_report;

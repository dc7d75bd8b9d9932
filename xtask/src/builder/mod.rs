//! Turning a prepared profile into a kernel: `configure` (Kconfig in a
//! scratch directory, then the proof that every option landed), `request`
//! (what a build is asked for, and its make command line), `passes` (the
//! make passes), `fallback` (the ladder: where each object stands, what was
//! recorded, and what moves after a failed pass), `stale` (whether the
//! image must be built again), `inputs` (what the last build was made
//! from: "nothing changed" without make's walk), `watch` (make's output
//! into the build log and the progress display, with the total known before
//! the first object), `outcome` (what a build did), the compiler
//! cache and the distcc farm; `freebsd`, a FreeBSD tree's build (make.py).
//! It uses `ctx`, `kernel`, `study` and `util`.

pub mod ccache;
pub mod configure;
pub mod distcc;
pub mod fallback;
pub mod freebsd;
pub mod inputs;
pub mod outcome;
pub mod passes;
pub mod request;
pub mod stale;
pub mod watch;

pub use passes::build;
pub use request::{default_jobs, BuildRequest};
pub use stale::ensure_built;

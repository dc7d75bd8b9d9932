//! Turning a prepared profile into a kernel: `configure` (Kconfig in a
//! scratch directory, then the proof that every option landed), `passes`
//! (the make passes and the fallback decisions between them), `fallback`
//! (where each object stands on the ladder, and what the build directory
//! recorded), the compiler cache and the distcc farm. It uses `ctx`,
//! `kernel`, `study` and `util`.

pub mod ccache;
pub mod configure;
pub mod distcc;
pub mod fallback;
pub mod passes;

pub use passes::{build, ensure_built, BuildRequest};

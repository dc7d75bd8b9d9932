//! The bottom layer: starting processes ([`exec`], the one executor, over
//! xshell), supervising them so none outlives the tool ([`supervise`]:
//! process groups, parent-death signals, bounds, the signal handler and
//! temporary files), file locks that name their holder ([`lock`]),
//! writing files safely ([`fsutil`]), and how far a long step is
//! ([`progress`], and apt's own account of it, [`apt_status`]). It knows
//! nothing of kernels or profiles and uses no other module of the crate.

pub mod apt_sources;
pub mod apt_status;
pub mod exec;
pub mod fsutil;
pub mod lock;
pub mod progress;
pub mod supervise;

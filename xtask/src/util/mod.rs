//! The bottom layer: starting processes ([`exec`], the one executor, over
//! xshell) and writing files safely ([`fsutil`]). It knows nothing of
//! kernels or profiles and uses no other module of the crate.

pub mod exec;
pub mod fsutil;

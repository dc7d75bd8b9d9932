//! CI, as GitHub Actions and a local run share it: the matrix of
//! ci/matrix.toml ([`matrix`]), the workflow generated from it
//! ([`workflow`]), and running its rows step for step with their results
//! ([`rows`]). It uses `ctx`, `kernel`, `study` and `util`.

pub mod matrix;
pub mod rows;
pub mod workflow;

//! The kernel tree and the tools it ships: finding and unpacking the tree,
//! Kbuild's make command lines, its `.cmd` files, `.config` and the Kconfig symbol index,
//! reading a build log, and tracing an undefined symbol to the option that
//! would define it, and whether this host can run the tree's UML. It uses `study` (the options a profile asks for) and
//! `util`; it holds no build-directory state of its own.

pub mod buildlog;
pub mod compdb;
pub mod depfile;
pub mod freebsd_src;
pub mod kbuild;
pub mod kconfig;
pub mod linkfix;
pub mod tarball;
pub mod tree;
pub mod uml_host;

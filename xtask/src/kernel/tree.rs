//! The kernel source tree: finding it, checking it (6.1 or later), filling
//! it from a release tarball (`cargo xtask kernel --tarball`, which records
//! where it came from), and saying where a tree came from and how it stands
//! against the `kernel/` submodule's pin.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use xshell::cmd;

use crate::{
    kernel::{freebsd_src as freebsd, tarball},
    study::os::Os,
    util::{
        exec::Exec,
        lock::{Access, Wait},
        progress::{Progress, Shown},
        supervise::TempPath,
    },
};

pub const DEBIAN_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

/// The `kernel/` submodule's pinned commit and the release it is (a test
/// checks the commit against `git ls-tree HEAD kernel`).
pub const PIN_COMMIT: &str = "adc218676eef25575469234709c2d87185ca223a";
pub const PIN_VERSION: &str = "6.12";

/// The oldest release the profiles, the fallback and the guest support.
pub const MIN_VERSION: (u32, u32) = (6, 1);

/// Written into a tree that `unpack` made: the tarball it came from.
pub const ORIGIN_FILE: &str = ".linux-study-origin";

#[derive(Debug, Clone)]
pub struct KernelTree {
    pub path: PathBuf,
    pub version: String,
    /// Which kernel it is: Linux, or FreeBSD (recognised by its own files,
    /// `kernel::freebsd_src::MARKERS`).
    pub os: Os,
}

impl KernelTree {
    /// Opens the tree at `path`, or says how to get one.
    pub fn open(path: &Path) -> Result<KernelTree> {
        KernelTree::open_given(path, false)
    }

    /// [`KernelTree::open`] of a path the user gave (`--kernel`): a
    /// directory that holds something else is their mistake, said in one
    /// line, not a checkout to fetch.
    pub fn open_given(path: &Path, explicit: bool) -> Result<KernelTree> {
        if freebsd::is_tree(path) {
            return KernelTree::open_freebsd(path);
        }
        let makefile = path.join("Makefile");
        if !path.join("Kconfig").is_file() || !makefile.is_file() {
            let holds_files = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some());
            if explicit && holds_files {
                bail!(
                    "--kernel {}: no Linux tree there (no Kconfig and Makefile at its top), \
                     nor a FreeBSD one (no {}); point --kernel at a kernel source tree",
                    path.display(),
                    freebsd::MARKERS.join(" and ")
                );
            }
            bail!(
                "no kernel tree in {}: run `git submodule update --init --depth 1 kernel`, or \
                 `cargo xtask kernel --tarball {DEBIAN_TARBALL}` (apt-get install linux-source-6.12)",
                path.display()
            );
        }
        let text = std::fs::read_to_string(&makefile)
            .with_context(|| format!("cannot read {}", makefile.display()))?;
        let version = version_from_makefile(&text).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no VERSION/PATCHLEVEL lines; is this a Linux tree?",
                makefile.display()
            )
        })?;
        let path = path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        if let Some(refusal) = too_old(&version) {
            bail!("{}: {refusal}", path.display());
        }
        Ok(KernelTree {
            path,
            version,
            os: Os::Linux,
        })
    }

    /// A FreeBSD tree: its release from `sys/conf/newvers.sh`. Whether the
    /// tool supports that release is study/os/freebsd.toml's to say.
    fn open_freebsd(path: &Path) -> Result<KernelTree> {
        let newvers = path.join(freebsd::MARKERS[0]);
        let text = std::fs::read_to_string(&newvers)
            .with_context(|| format!("cannot read {}", newvers.display()))?;
        let version = freebsd::version_from_newvers(&text).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no REVISION= line; is this a FreeBSD tree?",
                newvers.display()
            )
        })?;
        let path = path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        Ok(KernelTree {
            path,
            version,
            os: Os::FreeBsd,
        })
    }

    /// `6.12` from `6.12.117`: the key for version-specific data.
    pub fn series(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// (major, minor, sublevel) of `6.12.117`, `6.12`, `6.12-rc3`.
pub fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let numeric = version.split(['-', '+']).next()?;
    let mut parts = numeric.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let sub = parts.next().flatten().unwrap_or(0);
    Some((major, minor, sub))
}

/// The one-line refusal of a release older than [`MIN_VERSION`].
pub fn too_old(version: &str) -> Option<String> {
    let (major, minor, _) = parse_version(version)?;
    ((major, minor) < MIN_VERSION).then(|| {
        format!(
            "Linux {version} is older than {}.{}, the oldest this tool supports (its profiles, \
             fallback data and guest need {}.{} or later)",
            MIN_VERSION.0, MIN_VERSION.1, MIN_VERSION.0, MIN_VERSION.1
        )
    })
}

/// One line when `version` is not the submodule's pin, else nothing: what
/// this repository pins and what is being built can differ (Debian's
/// 6.12.117 against v6.12), and results with them.
pub fn pin_note(version: &str) -> Option<String> {
    (version != PIN_VERSION).then(|| {
        format!(
            "note: Linux {version} is not the kernel/ submodule's pin, v{PIN_VERSION} ({}); \
             results may differ from the pinned release's",
            &PIN_COMMIT[..12]
        )
    })
}

/// Where a tree came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The `kernel/` submodule, at this commit.
    Submodule { commit: String },
    /// Unpacked by `unpack` from this tarball; `package` for Debian's.
    Tarball {
        tarball: String,
        package: Option<String>,
    },
    /// A git checkout of the user's, as `git describe` names it.
    Git { describe: String },
    /// Neither: unpacked by hand, or copied.
    Unknown,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Submodule { commit } if commit == PIN_COMMIT => write!(
                f,
                "the kernel/ submodule at {}, the pin (v{PIN_VERSION})",
                &commit[..12.min(commit.len())]
            ),
            Origin::Submodule { commit } => write!(
                f,
                "the kernel/ submodule at {}, not the pin {} (v{PIN_VERSION})",
                &commit[..12.min(commit.len())],
                &PIN_COMMIT[..12]
            ),
            Origin::Tarball {
                tarball,
                package: Some(package),
            } => write!(f, "Debian's tarball {tarball} ({package})"),
            Origin::Tarball {
                tarball,
                package: None,
            } => write!(f, "unpacked from {tarball}"),
            Origin::Git { describe } => write!(f, "a git checkout at {describe}"),
            Origin::Unknown => write!(
                f,
                "a tree of unknown origin (no .git, no {ORIGIN_FILE}: unpacked by hand?)"
            ),
        }
    }
}

/// `linux-source-6.12` for Debian's `/usr/src/linux-source-6.12.tar.xz`.
pub fn debian_package(tarball: &Path) -> Option<String> {
    if tarball.parent() != Some(Path::new("/usr/src")) {
        return None;
    }
    let name = tarball.file_name()?.to_str()?;
    let stem = name.split(".tar").next()?;
    stem.starts_with("linux-source-").then(|| stem.to_string())
}

/// The origin file's text for a tree unpacked from `tarball`.
pub fn origin_file_text(tarball: &Path) -> String {
    let mut text = format!(
        "# Written by `cargo xtask kernel --tarball` when it unpacked this tree.\n\
         tarball = {:?}\n",
        tarball.display().to_string()
    );
    if let Some(package) = debian_package(tarball) {
        text.push_str(&format!("package = {package:?}\n"));
    }
    text
}

/// Reads the origin file's text back.
pub fn parse_origin_file(text: &str) -> Option<Origin> {
    let table: toml::Table = text.parse().ok()?;
    let tarball = table.get("tarball")?.as_str()?.to_string();
    let package = table
        .get("package")
        .and_then(|p| p.as_str())
        .map(String::from);
    Some(Origin::Tarball { tarball, package })
}

/// Where `tree` came from: the origin file `unpack` wrote, else git (the
/// submodule when the tree is `ROOT/kernel`, a user's checkout elsewhere).
pub fn origin(exec: &Exec, tree: &KernelTree, root: &Path) -> Origin {
    if let Some(origin) = std::fs::read_to_string(tree.path.join(ORIGIN_FILE))
        .ok()
        .and_then(|text| parse_origin_file(&text))
    {
        return origin;
    }
    // Only the tree's own .git: git would otherwise find an enclosing repo.
    if !tree.path.join(".git").exists() {
        return Origin::Unknown;
    }
    let git = |args: &[&str]| {
        let dir = &tree.path;
        let cmd = cmd!(exec.sh(), "git -C {dir} {args...}");
        exec.query(cmd)
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let submodule = root
        .join("kernel")
        .canonicalize()
        .is_ok_and(|k| k == tree.path);
    if submodule {
        if let Some(commit) = git(&["rev-parse", "HEAD"]) {
            return Origin::Submodule { commit };
        }
    }
    match git(&["describe", "--tags", "--always", "--dirty"]) {
        Some(describe) => Origin::Git { describe },
        None => Origin::Unknown,
    }
}

/// `6.12.117` from the top Makefile's VERSION, PATCHLEVEL, SUBLEVEL and
/// EXTRAVERSION lines.
pub fn version_from_makefile(text: &str) -> Option<String> {
    let field = |name: &str| {
        text.lines().take(20).find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let version = field("VERSION")?;
    let patchlevel = field("PATCHLEVEL")?;
    let sublevel = field("SUBLEVEL").unwrap_or_default();
    let extra = field("EXTRAVERSION").unwrap_or_default();
    let mut out = format!("{version}.{patchlevel}");
    if !sublevel.is_empty() && sublevel != "0" {
        out.push_str(&format!(".{sublevel}"));
    }
    out.push_str(&extra);
    Some(out)
}

/// Unpacks `tarball` into `dest` (absent or empty) through a temporary
/// sibling directory, so a failed or killed unpack leaves nothing
/// half-written. A lock beside `dest` keeps two unpacks apart: the second
/// waits (or, with `wait` = refuse, fails) and then finds the tree there.
/// `None`: a dry run, which unpacked nothing.
pub fn unpack(exec: &Exec, tarball: &Path, dest: &Path, wait: Wait) -> Result<Option<KernelTree>> {
    let name = dest.file_name().context("destination has no name")?;
    let path = dest.with_file_name(format!(".{}.lock", name.to_string_lossy()));
    let what = format!("kernel tree {}", dest.display());
    let lock = exec.lock(&path, &what, Access::Exclusive, wait)?;
    let result = unpack_locked(exec, tarball, dest);
    if let Some(lock) = lock {
        lock.remove_file();
    }
    result
}

fn unpack_locked(exec: &Exec, tarball: &Path, dest: &Path) -> Result<Option<KernelTree>> {
    if let Ok(tree) = KernelTree::open(dest) {
        // Another command unpacked it while this one waited.
        return Ok(Some(tree));
    }
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        bail!(
            "{} is not empty and holds no kernel tree; move it away first",
            dest.display()
        );
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .context("destination has no name")?
        .to_string_lossy();
    let tmp = parent.join(format!(".{name}.unpacking"));
    let not_a_kernel = |why: &str| {
        anyhow::anyhow!(
            "{} {why}: give a Linux release tarball, e.g. {DEBIAN_TARBALL}",
            tarball.display()
        )
    };
    let cmd = tarball::unpack_command(exec, tarball, &tmp);
    // Removed on every way out but the rename, a signal included.
    let _tmp = TempPath::new(tmp.clone());
    exec.remove_all(&tmp)?;
    exec.create_dir_all(&tmp)?;
    let total = tarball::unpacked_size(exec, tarball).map(|bytes| bytes / 1_000_000);
    let mut progress = Progress::new("unpacking", "MB", total, Shown::detect());
    let mut said = Vec::new();
    let status = exec.stream(cmd, |line| match tarball::checkpoint(line) {
        Some(records) => progress.at(records * tarball::RECORD / 1_000_000),
        None => said.push(line.to_string()),
    })?;
    if status.is_some_and(|s| !s.success()) {
        let why = said
            .iter()
            .find(|l| !l.trim().is_empty())
            .map_or("tar failed", |l| l.trim());
        return Err(not_a_kernel(&format!("cannot be unpacked ({why})")));
    }
    exec.check(|| {
        KernelTree::open(&tmp)
            .map(drop)
            .map_err(|_| not_a_kernel("holds no Linux tree (no Kconfig and Makefile at its top)"))
    })?;
    // Done only once it holds a tree: bad input gets its one line alone.
    if status.is_some() {
        progress.finish();
    }
    let tarball_abs = tarball
        .canonicalize()
        .unwrap_or_else(|_| tarball.to_path_buf());
    exec.write(&tmp.join(ORIGIN_FILE), origin_file_text(&tarball_abs))?;
    // Empty, as checked above.
    exec.remove_all(dest)?;
    exec.rename(&tmp, dest)?;
    exec.check(|| KernelTree::open(dest).map(Some))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        let text =
            "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = x\n";
        assert_eq!(version_from_makefile(text).as_deref(), Some("6.12.117"));
        let text = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n";
        assert_eq!(version_from_makefile(text).as_deref(), Some("6.12-rc3"));
        assert_eq!(version_from_makefile("all:\n"), None);
    }

    #[test]
    fn versions_compare_and_old_trees_are_refused() {
        assert_eq!(parse_version("6.12.117"), Some((6, 12, 117)));
        assert_eq!(parse_version("6.12"), Some((6, 12, 0)));
        assert_eq!(parse_version("6.12-rc3"), Some((6, 12, 0)));
        assert_eq!(parse_version("6.1.192"), Some((6, 1, 192)));
        assert_eq!(parse_version("x"), None);
        assert_eq!(too_old("6.1"), None);
        assert_eq!(too_old("6.1.192"), None);
        assert_eq!(too_old("6.12.117"), None);
        assert_eq!(too_old("7.0"), None);
        assert_eq!(
            too_old("5.15.170").as_deref(),
            Some(
                "Linux 5.15.170 is older than 6.1, the oldest this tool supports (its profiles, \
                 fallback data and guest need 6.1 or later)"
            )
        );
        assert!(too_old("6.0-rc1").is_some());
    }

    #[test]
    fn an_old_tree_is_refused_in_one_line() {
        let dir = std::env::temp_dir().join(format!("study-old-tree-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Kconfig"), "").unwrap();
        std::fs::write(
            dir.join("Makefile"),
            "VERSION = 5\nPATCHLEVEL = 10\nSUBLEVEL = 0\nEXTRAVERSION =\n",
        )
        .unwrap();
        let err = KernelTree::open(&dir).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            err.contains(": Linux 5.10 is older than 6.1, the oldest"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    fn pin_note_only_off_the_pin() {
        assert_eq!(pin_note("6.12"), None);
        assert_eq!(
            pin_note("6.12.117").as_deref(),
            Some(
                "note: Linux 6.12.117 is not the kernel/ submodule's pin, v6.12 (adc218676eef); \
                 results may differ from the pinned release's"
            )
        );
        assert!(pin_note("6.1.192").is_some());
    }

    #[test]
    fn the_pin_is_the_gitlink() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let out = std::process::Command::new("git")
            .args(["ls-tree", "HEAD", "kernel"])
            .current_dir(root)
            .output()
            .unwrap_or_else(|e| panic!("git, which cloned this repository: {e}"));
        // The README's setup starts from a clone: a copy without git's
        // record is no place to run the tests, so this fails, never skips.
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "`git ls-tree HEAD kernel` in {} found no gitlink: run the tests in a clone \
             of the repository (git clone --recurse-submodules): {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(
            line.contains(&format!("commit {PIN_COMMIT}\tkernel")),
            "{line}"
        );
    }

    #[test]
    fn origin_file_round_trip_and_display() {
        let debian = Path::new("/usr/src/linux-source-6.1.tar.xz");
        assert_eq!(debian_package(debian).as_deref(), Some("linux-source-6.1"));
        assert_eq!(debian_package(Path::new("/tmp/linux-6.1.tar.xz")), None);
        let origin = parse_origin_file(&origin_file_text(debian)).unwrap();
        assert_eq!(
            origin.to_string(),
            "Debian's tarball /usr/src/linux-source-6.1.tar.xz (linux-source-6.1)"
        );
        let other = parse_origin_file(&origin_file_text(Path::new("/tmp/linux-6.6.tar.gz")));
        assert_eq!(
            other.unwrap().to_string(),
            "unpacked from /tmp/linux-6.6.tar.gz"
        );
        let pinned = Origin::Submodule {
            commit: PIN_COMMIT.into(),
        };
        assert_eq!(
            pinned.to_string(),
            "the kernel/ submodule at adc218676eef, the pin (v6.12)"
        );
        let moved = Origin::Submodule {
            commit: "0123456789abcdef0123".into(),
        };
        assert_eq!(
            moved.to_string(),
            "the kernel/ submodule at 0123456789ab, not the pin adc218676eef (v6.12)"
        );
        let git = Origin::Git {
            describe: "v6.6-rc1-12-gdeadbeef".into(),
        };
        assert_eq!(git.to_string(), "a git checkout at v6.6-rc1-12-gdeadbeef");
    }

    #[test]
    fn origin_from_git_the_submodule_and_a_users_checkout() {
        let root = std::env::temp_dir().join(format!("study-origin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let git = |dir: &Path, args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(dir)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let exec = Exec::new(false, false).unwrap();
        let mut seen = Vec::new();
        for name in ["kernel", "mine"] {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("Kconfig"), "").unwrap();
            std::fs::write(dir.join("Makefile"), "VERSION = 6\nPATCHLEVEL = 6\n").unwrap();
            // git is there wherever the README's setup ran (it cloned the
            // repository): a failure here is a failure, never a skip.
            for args in [
                &["init", "-q"][..],
                &["add", "."],
                &["commit", "-qm", "t"],
                &["tag", "v6.6"],
            ] {
                assert!(
                    git(&dir, args),
                    "git {} in {}",
                    args.join(" "),
                    dir.display()
                );
            }
            let tree = KernelTree::open(&dir).unwrap();
            seen.push(origin(&exec, &tree, &root));
        }
        let _ = std::fs::remove_dir_all(&root);
        assert!(
            matches!(&seen[0], Origin::Submodule { commit } if commit.len() == 40),
            "{seen:?}"
        );
        assert_eq!(
            seen[1],
            Origin::Git {
                describe: "v6.6".into()
            }
        );
    }

    #[test]
    fn a_given_directory_that_is_no_kernel_is_one_line() {
        let dir = std::env::temp_dir().join(format!("not-a-kernel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("README"), "hello").unwrap();
        let err = KernelTree::open_given(&dir, true).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "--kernel {}: no Linux tree there (no Kconfig and Makefile at its top), \
                 nor a FreeBSD one (no sys/conf/newvers.sh and tools/build/make.py); \
                 point --kernel at a kernel source tree",
                dir.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_tree_says_how_to_get_one() {
        let err = KernelTree::open(Path::new("/nonexistent/kernel"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "no kernel tree in /nonexistent/kernel: run `git submodule update --init --depth 1 kernel`, \
             or `cargo xtask kernel --tarball /usr/src/linux-source-6.12.tar.xz` (apt-get install linux-source-6.12)"
        );
    }
}

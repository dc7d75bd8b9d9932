//! What the last build was made from, so that "nothing changed" is a stat
//! pass over the files Kbuild recorded (each object's `.cmd` file) and not
//! make's walk over every object: on `study` the walk costs seconds on
//! every `debug`, `run --build` and `bench` call, the stat pass a fraction
//! of one. The index (`.study/inputs.index`) is written after each
//! successful build, re-reading only the `.cmd` files make rewrote.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::{
    ctx::Prepared,
    kernel::depfile::{self, Input},
    util::exec::Exec,
};

const FORMAT: u32 = 3;

/// A reference to `Index::files`; the high bit marks a wildcard (a file
/// that need not exist).
const WILDCARD: u32 = 1 << 31;

#[derive(Serialize, Deserialize, Default)]
struct Index {
    format: u32,
    /// vmlinux's mtime when the index was written, as nanoseconds.
    vmlinux: u128,
    /// When the index was written, after a build that went through: the
    /// Makefiles older than this were that build's (a walk that relinks
    /// nothing leaves vmlinux older than a touched Makefile).
    recorded: u128,
    /// Every input once, as the `.cmd` files name it (absolute, or
    /// relative to the build directory).
    files: Vec<String>,
    objects: Vec<Object>,
    /// The Makefiles that decide what is built: not in any `.cmd` file.
    makefiles: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Object {
    /// Relative to the build directory.
    path: String,
    /// Its `.cmd` file's mtime when read, as nanoseconds.
    cmd: u128,
    inputs: Vec<u32>,
    /// Its `.cmd` file could not be read or is not one Kbuild wrote: its
    /// inputs are unknown, so it is never "unchanged"; make decides.
    unknown: bool,
}

/// What the stat pass found.
pub struct Comparison {
    /// The objects older than one of their inputs (or newer than
    /// vmlinux: built, not yet linked), relative to the build directory.
    pub stale: Vec<String>,
    /// The first reason found, for `-v`.
    pub first: Option<String>,
    pub objects: usize,
    pub files: usize,
    pub elapsed: Duration,
}

/// Where a build's files are: what the index reads and where it is kept.
struct Layout<'a> {
    build_dir: &'a Path,
    tree: &'a Path,
    index: PathBuf,
    /// `arch/x86/boot/`: the boot image's objects, made after vmlinux.
    boot: String,
}

impl<'a> Layout<'a> {
    fn of(p: &'a Prepared) -> Layout<'a> {
        Layout {
            build_dir: &p.build_dir,
            tree: &p.tree.path,
            index: p.state().inputs_index(),
            boot: format!("arch/{}/boot/", p.arch.src_arch),
        }
    }
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn mtime(path: &Path) -> Option<u128> {
    path.metadata().and_then(|m| m.modified()).ok().map(nanos)
}

fn load(at: &Layout) -> Option<Index> {
    let bytes = std::fs::read(&at.index).ok()?;
    let index: Index = bincode::deserialize(&bytes).ok()?;
    (index.format == FORMAT).then_some(index)
}

/// Which walk the build that is recorded made.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Walk {
    /// make's walk over the whole tree, begun at `began`: an object it
    /// left older than inputs that changed before it began is not part of
    /// this build (a leftover of an earlier configuration,
    /// `arch/x86/kernel/cet.o` after IBT went off), and is left out of the
    /// index, or it would read as changed forever. An input changed while
    /// make ran keeps its object in, to be built next time.
    Full { began: SystemTime },
    /// The walk of what changed: every object of the last index stays, so
    /// that what it did not reach still reads as changed; what the last
    /// full walk left out stays out, unless this one built it.
    Filtered,
}

/// Records the inputs of every object of `p`'s build, after a successful
/// build.
pub fn record(exec: &Exec, p: &Prepared, made_by: Walk) -> Result<()> {
    record_in(exec, &Layout::of(p), made_by)
}

fn record_in(exec: &Exec, at: &Layout, made_by: Walk) -> Result<()> {
    let build_dir = at.build_dir;
    let Some(vmlinux) = mtime(&build_dir.join("vmlinux")) else {
        return Ok(());
    };
    let old = load(at).unwrap_or_default();
    let old_objects: HashMap<&str, &Object> =
        old.objects.iter().map(|o| (o.path.as_str(), o)).collect();
    let mut files: Vec<String> = Vec::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut id_of = |name: &str, files: &mut Vec<String>| -> u32 {
        if let Some(&id) = ids.get(name) {
            return id;
        }
        let id = files.len() as u32;
        files.push(name.to_string());
        ids.insert(name.to_string(), id);
        id
    };
    // An old file's id in the new list, looked up once per old file.
    let mut renumbered: Vec<Option<u32>> = vec![None; old.files.len()];
    let mut objects = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    // tools/ (objtool) is built by the tools' own make, whose `.cmd` files
    // name paths from their own folders: an edit of objtool's own sources
    // takes `cargo xtask build`.
    let skipped = [
        build_dir.join(crate::ctx::StateDir::NAME),
        build_dir.join("source"),
        build_dir.join("tools"),
    ];
    let walk = walkdir::WalkDir::new(build_dir)
        .into_iter()
        .filter_entry(|e| !skipped.iter().any(|s| e.path() == s));
    for entry in walk.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy();
        let Some(object_name) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".o.cmd"))
        else {
            continue;
        };
        let dir = entry
            .path()
            .parent()
            .and_then(|d| d.strip_prefix(build_dir).ok())
            .unwrap_or(Path::new(""));
        let path = dir.join(format!("{object_name}.o"));
        if !build_dir.join(&path).is_file() {
            continue;
        }
        let path = path.display().to_string();
        let cmd = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .map_or(0, nanos);
        // What the last full walk left out stays out, unless this build
        // made it (its `.cmd` file is new).
        if made_by == Walk::Filtered
            && old.format == FORMAT
            && !old_objects.contains_key(path.as_str())
            && cmd <= old.recorded
        {
            continue;
        }
        let (inputs, unknown) = match old_objects.get(path.as_str()) {
            Some(o) if o.cmd == cmd => {
                let inputs = o
                    .inputs
                    .iter()
                    .map(|&r| {
                        let old_id = (r & !WILDCARD) as usize;
                        let id = *renumbered[old_id]
                            .get_or_insert_with(|| id_of(&old.files[old_id], &mut files));
                        id | (r & WILDCARD)
                    })
                    .collect();
                (inputs, o.unknown)
            }
            _ => match std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|text| depfile::inputs(&text))
            {
                Some(inputs) => {
                    let inputs = inputs
                        .into_iter()
                        .map(|input| match input {
                            Input::File(f) => id_of(&f, &mut files),
                            Input::Wildcard(f) => id_of(&f, &mut files) | WILDCARD,
                        })
                        .collect();
                    (inputs, false)
                }
                None => (Vec::new(), true),
            },
        };
        dirs.insert(dir.to_path_buf());
        objects.push(Object {
            path,
            cmd,
            inputs,
            unknown,
        });
    }
    if let Walk::Full { began } = made_by {
        let began = nanos(began);
        let times = stat_all(&files.iter().map(|f| resolve(at, f)).collect::<Vec<_>>());
        objects.retain(|o| {
            let built = mtime(&build_dir.join(&o.path)).unwrap_or(0);
            let left_behind =
                |&r: &u32| times[(r & !WILDCARD) as usize].is_some_and(|t| t > built && t < began);
            !o.inputs.iter().any(left_behind)
        });
    }
    let tree = at.tree;
    let mut makefiles: Vec<String> = dirs
        .iter()
        .flat_map(|d| [tree.join(d).join("Makefile"), tree.join(d).join("Kbuild")])
        .chain([tree.join("Makefile"), tree.join("scripts/link-vmlinux.sh")])
        .chain(
            std::fs::read_dir(tree.join("scripts"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("Makefile"))
                }),
        )
        .filter(|m| m.is_file())
        .map(|m| m.display().to_string())
        .collect();
    makefiles.sort();
    makefiles.dedup();
    let index = Index {
        format: FORMAT,
        vmlinux,
        recorded: nanos(SystemTime::now()),
        files,
        objects,
        makefiles,
    };
    exec.write(
        &at.index,
        bincode::serialize(&index).expect("plain data serializes"),
    )?;
    Ok(())
}

/// What changed since the last build, object by object: each object
/// older than one of its recorded inputs (or a wildcard input that has
/// appeared since), or newer than vmlinux. `Err` when the index cannot
/// tell: there is none, vmlinux is not the one it was written for, a
/// Makefile changed, an object or input is gone, or an object's `.cmd`
/// file could not be read; then make decides.
pub fn compare(p: &Prepared) -> Result<Comparison, String> {
    compare_in(&Layout::of(p))
}

fn compare_in(at: &Layout) -> Result<Comparison, String> {
    let start = Instant::now();
    let index = load(at).ok_or("no index of the last build's inputs yet")?;
    if let Some(o) = index.objects.iter().find(|o| o.unknown) {
        return Err(format!(
            "the .cmd file of {} could not be read at the last build, so its inputs are unknown",
            o.path
        ));
    }
    let vmlinux = mtime(&at.build_dir.join("vmlinux")).ok_or("no vmlinux")?;
    if vmlinux != index.vmlinux {
        return Err("vmlinux was linked after the index was written".into());
    }
    let files: Vec<PathBuf> = index.files.iter().map(|f| resolve(at, f)).collect();
    let objects: Vec<PathBuf> = index
        .objects
        .iter()
        .map(|o| at.build_dir.join(&o.path))
        .collect();
    let makefiles: Vec<PathBuf> = index.makefiles.iter().map(PathBuf::from).collect();
    let (file_times, object_times, makefile_times) =
        (stat_all(&files), stat_all(&objects), stat_all(&makefiles));
    let walked = vmlinux.max(index.recorded);
    for (makefile, t) in makefiles.iter().zip(&makefile_times) {
        if t.is_none_or(|t| t > walked) {
            return Err(format!("{} changed", makefile.display()));
        }
    }
    // The boot image's objects are made from vmlinux, so after it.
    let boot = &at.boot;
    let (mut stale, mut first) = (Vec::new(), None);
    for ((object, path), built) in index.objects.iter().zip(&objects).zip(&object_times) {
        let built = built.ok_or_else(|| format!("{} is gone", path.display()))?;
        let mut why = None;
        if built > vmlinux && !object.path.starts_with(boot.as_str()) {
            why = Some(format!("{} is newer than vmlinux", object.path));
        }
        for &r in &object.inputs {
            let id = (r & !WILDCARD) as usize;
            let wildcard = r & WILDCARD != 0;
            match (file_times[id], wildcard) {
                (Some(t), _) if t > built => {
                    why.get_or_insert_with(|| {
                        format!("{} is newer than {}", files[id].display(), object.path)
                    });
                }
                (None, false) => return Err(format!("{} is gone", files[id].display())),
                _ => {}
            }
        }
        if let Some(why) = why {
            first.get_or_insert(why);
            stale.push(object.path.clone());
        }
    }
    Ok(Comparison {
        stale,
        first,
        objects: index.objects.len(),
        files: files.len() + makefiles.len(),
        elapsed: start.elapsed(),
    })
}

/// An input as a path: the `.cmd` files name it absolute, or relative to
/// the build directory.
fn resolve(at: &Layout, name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        at.build_dir.join(path)
    }
}

/// Every path's mtime, stat'ed on all CPUs: the files are many and each
/// stat is a system call.
fn stat_all(paths: &[PathBuf]) -> Vec<Option<u128>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) * 2;
    let chunk = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|p| mtime(p)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a stat thread does not panic"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree with two sources and a build directory with their objects,
    /// `.cmd` files as fixdep writes them, and vmlinux, in a directory of
    /// its own under the system's temporary directory.
    struct Scratch {
        root: PathBuf,
    }

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let root =
                std::env::temp_dir().join(format!("xtask-inputs-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("tree")).unwrap();
            std::fs::create_dir_all(root.join("build/.study")).unwrap();
            for source in ["a", "b"] {
                std::fs::write(root.join(format!("tree/{source}.c")), "int x;\n").unwrap();
            }
            for object in ["a", "b"] {
                let source = root.join(format!("tree/{object}.c"));
                let cmd = format!(
                    "savedcmd_{object}.o := gcc -c -o {object}.o {0}\n\n\
                     source_{object}.o := {0}\n\n\
                     deps_{object}.o := \\\n  include/generated/autoconf.h \\\n\n\
                     {object}.o: $(deps_{object}.o)\n\n$(deps_{object}.o):\n",
                    source.display()
                );
                std::fs::write(root.join(format!("build/.{object}.o.cmd")), cmd).unwrap();
            }
            std::fs::create_dir_all(root.join("build/include/generated")).unwrap();
            std::fs::write(root.join("build/include/generated/autoconf.h"), "").unwrap();
            for object in ["a.o", "b.o", "vmlinux"] {
                std::fs::write(root.join("build").join(object), "ELF").unwrap();
            }
            Scratch { root }
        }

        fn layout(&self) -> Layout<'_> {
            Layout {
                build_dir: Box::leak(self.root.join("build").into_boxed_path()),
                tree: Box::leak(self.root.join("tree").into_boxed_path()),
                index: self.root.join("build/.study/inputs.index"),
                boot: "arch/x86/boot/".into(),
            }
        }

        fn compare_after_record(&self) -> Result<Comparison, String> {
            let exec = Exec::new(false, false).unwrap();
            let at = self.layout();
            record_in(&exec, &at, Walk::Filtered).unwrap();
            compare_in(&at)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn readable_cmd_files_give_nothing_changed_then_the_touched_source() {
        let scratch = Scratch::new("readable");
        let same = scratch.compare_after_record().unwrap();
        assert_eq!((same.stale.len(), same.objects), (0, 2));
        let later = SystemTime::now() + Duration::from_secs(60);
        let source = std::fs::File::options()
            .write(true)
            .open(scratch.root.join("tree/b.c"))
            .unwrap();
        source.set_modified(later).unwrap();
        assert_eq!(compare_in(&scratch.layout()).unwrap().stale, ["b.o"]);
    }

    #[test]
    fn an_unreadable_cmd_file_leaves_the_decision_to_make() {
        let scratch = Scratch::new("unreadable");
        // Not UTF-8: read_to_string fails on it (as root, a mode of 000
        // would not stop the read).
        std::fs::write(
            scratch.root.join("build/.b.o.cmd"),
            b"savedcmd_b.o := \xff\xfe\n",
        )
        .unwrap();
        let why = scratch.compare_after_record().err().expect("make decides");
        assert_eq!(
            why,
            "the .cmd file of b.o could not be read at the last build, so its inputs are unknown"
        );
    }

    #[test]
    fn a_garbled_cmd_file_leaves_the_decision_to_make() {
        let scratch = Scratch::new("garbled");
        std::fs::write(
            scratch.root.join("build/.a.o.cmd"),
            "deps_a.o := \\\n  include/generated/autoconf.h \\\n",
        )
        .unwrap();
        let why = scratch.compare_after_record().err().expect("make decides");
        assert!(
            why.starts_with("the .cmd file of a.o could not be read"),
            "{why}"
        );
    }
}

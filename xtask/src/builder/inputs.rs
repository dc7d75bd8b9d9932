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

const FORMAT: u32 = 2;

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

fn index_path(p: &Prepared) -> PathBuf {
    p.state().inputs_index()
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn mtime(path: &Path) -> Option<u128> {
    path.metadata().and_then(|m| m.modified()).ok().map(nanos)
}

fn load(p: &Prepared) -> Option<Index> {
    let bytes = std::fs::read(index_path(p)).ok()?;
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
    let Some(vmlinux) = mtime(&p.build_dir.join("vmlinux")) else {
        return Ok(());
    };
    let old = load(p).unwrap_or_default();
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
        p.build_dir.join(crate::ctx::StateDir::NAME),
        p.build_dir.join("source"),
        p.build_dir.join("tools"),
    ];
    let walk = walkdir::WalkDir::new(&p.build_dir)
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
            .and_then(|d| d.strip_prefix(&p.build_dir).ok())
            .unwrap_or(Path::new(""));
        let path = dir.join(format!("{object_name}.o"));
        if !p.build_dir.join(&path).is_file() {
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
        let inputs = match old_objects.get(path.as_str()) {
            Some(o) if o.cmd == cmd => o
                .inputs
                .iter()
                .map(|&r| {
                    let old_id = (r & !WILDCARD) as usize;
                    let id = *renumbered[old_id]
                        .get_or_insert_with(|| id_of(&old.files[old_id], &mut files));
                    id | (r & WILDCARD)
                })
                .collect(),
            _ => depfile::inputs(&std::fs::read_to_string(entry.path()).unwrap_or_default())
                .into_iter()
                .map(|input| match input {
                    Input::File(f) => id_of(&f, &mut files),
                    Input::Wildcard(f) => id_of(&f, &mut files) | WILDCARD,
                })
                .collect(),
        };
        dirs.insert(dir.to_path_buf());
        objects.push(Object { path, cmd, inputs });
    }
    if let Walk::Full { began } = made_by {
        let began = nanos(began);
        let times = stat_all(&files.iter().map(|f| resolve(p, f)).collect::<Vec<_>>());
        objects.retain(|o| {
            let built = mtime(&p.build_dir.join(&o.path)).unwrap_or(0);
            let left_behind =
                |&r: &u32| times[(r & !WILDCARD) as usize].is_some_and(|t| t > built && t < began);
            !o.inputs.iter().any(left_behind)
        });
    }
    let tree = &p.tree.path;
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
        &index_path(p),
        bincode::serialize(&index).expect("plain data serializes"),
    )?;
    Ok(())
}

/// What changed since the last build, object by object: each object
/// older than one of its recorded inputs (or a wildcard input that has
/// appeared since), or newer than vmlinux. `Err` when the index cannot
/// tell: there is none, vmlinux is not the one it was written for, a
/// Makefile changed, or an object or input is gone; then make decides.
pub fn compare(p: &Prepared) -> Result<Comparison, String> {
    let start = Instant::now();
    let index = load(p).ok_or("no index of the last build's inputs yet")?;
    let vmlinux = mtime(&p.build_dir.join("vmlinux")).ok_or("no vmlinux")?;
    if vmlinux != index.vmlinux {
        return Err("vmlinux was linked after the index was written".into());
    }
    let files: Vec<PathBuf> = index.files.iter().map(|f| resolve(p, f)).collect();
    let objects: Vec<PathBuf> = index
        .objects
        .iter()
        .map(|o| p.build_dir.join(&o.path))
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
    let boot = format!("arch/{}/boot/", p.arch.src_arch);
    let (mut stale, mut first) = (Vec::new(), None);
    for ((object, path), built) in index.objects.iter().zip(&objects).zip(&object_times) {
        let built = built.ok_or_else(|| format!("{} is gone", path.display()))?;
        let mut why = None;
        if built > vmlinux && !object.path.starts_with(&boot) {
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
fn resolve(p: &Prepared, name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        p.build_dir.join(path)
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

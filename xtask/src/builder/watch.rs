//! Watching make: its whole output into the build log (every pass of one
//! build, one after the other), each line to the log's reader, and the
//! progress display (util::progress) with the objects this build will
//! compile. The total comes before the first object: on a rebuild, the
//! objects the inputs index finds older than their inputs; on a first
//! build, the size the last first build of its kind measured
//! (target/learned), else the shipped one (study/build-size.toml). A
//! directory that has built before but whose index cannot tell (a changed
//! `.config`) shows its count without a total. Make's own lines are shown
//! only with `-v`; the rest is in the build log.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Result;
use xshell::Cmd;

use crate::{
    builder::fallback::Learned,
    ctx::{Ctx, Prepared},
    kernel::buildlog::{compiled_object, stage_of, BuildLog, Stage},
    study::build_size::{self, BuildSize},
    util::{
        exec::{Exec, Sink},
        progress::{Progress, Shown},
    },
};

/// What the display is told before make starts.
pub struct Plan {
    pub total: Option<u64>,
    /// Where the total comes from, said once before the display.
    pub source: String,
    /// How long the link takes after the last object.
    pub link: Option<Duration>,
}

/// The size a build of this kind measured last, kept beside what it
/// learned of fallbacks.
fn learned_path(root: &Path, p: &Prepared) -> PathBuf {
    Learned::new(root, p).path.with_extension("size.toml")
}

fn learned(root: &Path, p: &Prepared) -> Option<BuildSize> {
    let text = std::fs::read_to_string(learned_path(root, p)).ok()?;
    toml::from_str(&text).ok()
}

/// The size of a first build of `p`: learned here, else shipped.
fn first_build_size(ctx: &Ctx, p: &Prepared) -> Result<Option<(BuildSize, String)>> {
    if let Some(size) = learned(&ctx.root, p) {
        let path = learned_path(&ctx.root, p);
        return Ok(Some((
            size,
            format!("the count the last one measured, in {}", path.display()),
        )));
    }
    let known = build_size::known(
        &ctx.study_dir(),
        &p.profile.name,
        &p.tree.version,
        &p.arch.name,
    )?;
    Ok(known.map(|size| (size, "the count in study/build-size.toml".to_string())))
}

/// Whether nothing of the image was compiled in `build_dir` yet.
pub fn nothing_built(build_dir: &Path) -> bool {
    !build_dir.join("init/.main.o.cmd").exists()
}

impl Plan {
    /// The objects older than their inputs, as the index found them,
    /// leaving out the boot image's, which the link makes.
    pub fn stale(ctx: &Ctx, p: &Prepared, stale: &[String]) -> Plan {
        let boot = format!("arch/{}/boot/", p.arch.src_arch);
        let total = stale.iter().filter(|o| !o.starts_with(&boot)).count() as u64;
        Plan {
            total: Some(total),
            source: "the inputs index".into(),
            link: learned(&ctx.root, p).map(|s| Duration::from_secs(s.link_seconds)),
        }
    }

    /// A walk whose objects the index cannot name.
    pub fn unindexed(ctx: &Ctx, p: &Prepared, why: &str) -> Result<Plan> {
        let first = first_build_size(ctx, p)?;
        let link = first
            .as_ref()
            .map(|(s, _)| Duration::from_secs(s.link_seconds));
        if !nothing_built(&p.build_dir) {
            return Ok(Plan {
                total: None,
                source: format!("total unknown: {why}"),
                link,
            });
        }
        Ok(match first {
            Some((size, whose)) => Plan {
                total: Some(size.objects),
                source: format!("a first build: {whose}"),
                link,
            },
            None => Plan {
                total: None,
                source: format!(
                    "total unknown: a first build of {} on Linux {} for {}, of which nothing is known yet",
                    p.profile.name,
                    build_size::series_of(&p.tree.version),
                    p.arch.name
                ),
                link,
            },
        })
    }
}

/// One build's make runs, watched.
pub struct Watch {
    progress: Progress,
    log: Sink,
    /// The objects compiled before the link, over every pass.
    objects: BTreeSet<String>,
    /// make's lines shown as they come (`-v`).
    verbose: bool,
    passes: usize,
    /// From the link's first line to make's end, in the last pass.
    pub link: Option<Duration>,
}

impl Watch {
    pub fn new(exec: &Exec, p: &Prepared, plan: &Plan) -> Result<Watch> {
        let shown = if exec.verbose {
            Shown::Off
        } else {
            Shown::detect()
        };
        let mut progress = Progress::new("build", "objects", plan.total, shown);
        progress.set(|s| s.tail = plan.link.unwrap_or_default());
        if shown != Shown::Off {
            progress.println(&format!(
                "build: {} object(s) to compile ({}); make's output goes to {}",
                plan.total.map_or("?".to_string(), |t| t.to_string()),
                plan.source,
                p.state().build_log().display()
            ));
        }
        Ok(Watch {
            progress,
            log: exec.create(&p.state().build_log())?,
            objects: BTreeSet::new(),
            verbose: exec.verbose,
            passes: 0,
            link: None,
        })
    }

    /// A fallback pass: the same display, its total grown by the objects
    /// the ladder moved, which compile again.
    pub fn next_pass(&mut self, moved: usize) {
        self.passes += 1;
        let pass = self.passes;
        self.progress.update(|s| {
            s.phase = Some(format!("pass {pass}"));
            s.tail_began = None;
            s.total = s.total.map(|t| t.max(s.done) + moved as u64);
        });
        let _ = writeln!(self.log, "# linux-study: pass {pass}");
    }

    /// A line above the display.
    pub fn say(&self, line: &str) {
        self.progress.println(line);
    }

    /// The distinct objects compiled before the link, over every pass.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// Runs make, feeding each line to the build log (file and parser)
    /// and the display. `None`: a dry run.
    pub fn run(
        &mut self,
        exec: &Exec,
        p: &Prepared,
        cmd: Cmd<'_>,
        start: Instant,
        stages: &mut BTreeMap<Stage, Duration>,
    ) -> Result<Option<(BuildLog, bool)>> {
        if self.passes == 0 {
            self.passes = 1;
        }
        let tree_prefix = format!("{}/", p.tree.path.display());
        let mut log = BuildLog::new(vec![tree_prefix]);
        let mut linking: Option<Instant> = None;
        let verbose = self.verbose;
        let (file, progress, objects) = (&mut self.log, &mut self.progress, &mut self.objects);
        let status = exec.stream(cmd, |line| {
            let _ = writeln!(file, "{line}");
            log.line(line);
            if let Some(stage) = stage_of(line) {
                stages.entry(stage).or_insert_with(|| start.elapsed());
                if linking.is_none() {
                    linking = Some(Instant::now());
                    progress.tail("linking", &words(line));
                }
            }
            match (compiled_object(line), linking) {
                (Some(object), None) => {
                    objects.insert(object.to_string());
                    progress.step(object);
                }
                (_, Some(_)) => progress.update(|s| s.current = words(line)),
                _ => {}
            }
            if verbose {
                println!("{line}");
            }
        })?;
        self.link = linking.map(|l| l.elapsed());
        Ok(status.map(|status| (log, status.success())))
    }

    /// The display's last word: cleared on a terminal, the figures on a
    /// plain stream.
    pub fn finish(self) {
        self.progress.finish();
    }
}

/// `LD vmlinux.o` for make's `  LD      vmlinux.o`.
fn words(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a build that went through measured, for the next one: the link's
/// time after every build that linked, the object count after a first
/// build (`first`), whose objects are all of them.
pub fn learn(ctx: &Ctx, p: &Prepared, watch: &Watch, first: bool) -> Result<()> {
    let Some(link) = watch.link else {
        return Ok(());
    };
    let before = learned(&ctx.root, p);
    let objects = match (first, before) {
        (true, _) => watch.objects() as u64,
        (false, Some(b)) => b.objects,
        (false, None) => return Ok(()),
    };
    let size = BuildSize {
        objects,
        link_seconds: link.as_secs().max(1),
    };
    let text = format!(
        "# What the last build of this kind measured, for the next first build's progress.\n{}",
        toml::to_string(&size).expect("plain data serializes")
    );
    ctx.exec.write(&learned_path(&ctx.root, p), text)?;
    Ok(())
}

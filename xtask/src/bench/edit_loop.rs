//! The edit loop, timed: append a comment to net/ipv4/tcp.c (restored
//! after), rebuild, boot under TCG while gdb reads vmlinux (the command held
//! until gdb's breakpoints are in, as under `debug`), and stop gdb in
//! tcp_sendmsg_locked with the size tcp-echo sends, each phase on its own.

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};

use crate::{
    bench::{median, Target},
    builder::{self, BuildRequest},
    ctx::{Ctx, Prepared},
    guest::{
        gdb::{free_port, gdb_command, GdbRequest},
        hold::release_file,
        qemu::Accel,
        run::{start_background, RunRequest},
    },
    kernel::{self, buildlog::Stage},
    util::{exec::Exec, lock::Access, supervise},
};

/// What tcp-echo sends in one `send()`: the stop must show it as `size`.
pub const LOOP_SIZE: &str = "1000";

/// One edit → stop, timed.
pub struct LoopTimes {
    /// make up to the link: its walk, and the changed objects compiled.
    pub compile: Duration,
    /// The link of vmlinux, stage by stage (kernel::buildlog::Stage).
    pub vmlinux_o: Duration,
    pub modpost: Duration,
    pub kallsyms: Duration,
    pub final_link: Duration,
    pub image: Duration,
    /// The inputs index written after make, for the next "nothing changed".
    pub recording: Duration,
    /// gdb's start to its breakpoints, while the kernel boots.
    pub gdb_load: Duration,
    /// What the guest waited for gdb: the command, held by init until the
    /// breakpoints are in, for what gdb's start took beyond the boot to it;
    /// or, at the reset vector (`--from-boot`), the boot for all of it.
    pub held: Duration,
    /// From QEMU's start to the stop, without `held`.
    pub boot_to_stop: Duration,
    pub total: Duration,
    /// tcp.o compiled alone with the command line Kbuild recorded for it,
    /// the edit in place: with the boot to the stop, the loop's floor.
    pub floor_compile: Duration,
    pub size: String,
}

impl LoopTimes {
    pub fn link(&self) -> Duration {
        self.vmlinux_o + self.modpost + self.kallsyms + self.final_link
    }

    /// What no build tool can beat on this machine: the one compile the
    /// edit needs, and the boot to the stop.
    pub fn floor(&self) -> Duration {
        self.floor_compile + self.boot_to_stop
    }
}

/// Each target's loop times, and the request its full builds used.
pub struct TimedLoops {
    pub rows: Vec<Vec<LoopTimes>>,
    pub requests: Vec<BuildRequest>,
}

/// Each target built first, then `runs` rounds of: edit tcp.c, rebuild,
/// boot, stop in gdb, for each target in turn (one tree: the same edit
/// serves every architecture); each rebuilt after, as the restored tcp.c
/// is newer than tcp.o. `None`: a dry run, which built and timed nothing.
pub fn timed_loops(
    targets: &[Target],
    runs: usize,
    jobs: usize,
    from_boot: bool,
) -> Result<Option<TimedLoops>> {
    // It edits, builds and boots in turn: alone in each directory.
    let mut locks = Vec::new();
    let mut requests = Vec::new();
    for t in targets {
        locks.push(t.p.lock(&t.ctx, Access::Exclusive)?);
        let Some(request) = built_first(&t.ctx, &t.p, jobs)? else {
            return Ok(None);
        };
        requests.push(request);
    }
    let tcp = targets[0].p.tree.path.join("net/ipv4/tcp.c");
    let mut rows: Vec<Vec<LoopTimes>> = targets.iter().map(|_| Vec::new()).collect();
    for run in 0..runs.max(1) {
        for (i, t) in targets.iter().enumerate() {
            let _restore = edit_for_a_while(
                &t.ctx.exec,
                &tcp,
                &format!("\n/* cargo xtask bench loop {run} {} */\n", t.p.arch.name),
            )?;
            let quick = BuildRequest {
                quick: true,
                jobs: requests[i].jobs,
                ..BuildRequest::default_for_run()
            };
            rows[i].push(one_loop(&t.ctx, &t.p, &quick, from_boot)?);
        }
    }
    for (i, t) in targets.iter().enumerate() {
        builder::build(&t.ctx, &t.p, &requests[i])?;
    }
    drop(locks);
    Ok(Some(TimedLoops { rows, requests }))
}

/// Builds `p` (the caller holds its lock) before anything is timed; the
/// request, with `jobs`, for the timed builds; `None` under a dry run.
pub fn built_first(ctx: &Ctx, p: &Prepared, jobs: usize) -> Result<Option<BuildRequest>> {
    let request = BuildRequest {
        jobs,
        ..BuildRequest::default_for_run()
    };
    eprintln!(
        "bench: making sure {} is built first",
        p.build_dir.display()
    );
    Ok(builder::build(ctx, p, &request)?.map(|_| request))
}

fn one_loop(ctx: &Ctx, p: &Prepared, request: &BuildRequest, from_boot: bool) -> Result<LoopTimes> {
    let start = Instant::now();
    let outcome = builder::build(ctx, p, request)?.context("a timed loop is never a dry run")?;
    let built = start.elapsed();
    // make's own share: the index is written after it.
    let made = built.saturating_sub(outcome.recording);
    let floor_compile = compile_alone(ctx, p, "net/ipv4/tcp.o")?;
    // Each stage runs from its first line to the next stage's (or to the
    // end of make); a stage that did not run takes no time.
    let stages = [
        Stage::VmlinuxO,
        Stage::Modpost,
        Stage::Kallsyms,
        Stage::FinalLink,
        Stage::Image,
    ];
    let starts: Vec<Duration> = stages
        .iter()
        .map(|s| outcome.stages.get(s).copied().unwrap_or(made).min(made))
        .collect();
    let span = |i: usize| {
        let end = starts[i + 1..].iter().copied().min().unwrap_or(made);
        end.saturating_sub(starts[i])
    };
    let port = free_port()?;
    let run = RunRequest {
        gdb_port: Some(port),
        wait_gdb: true,
        hold_for_gdb: !from_boot,
        ..RunRequest::new(Accel::Tcg)
    };
    let console = p.state().bench().join("console.log");
    let argv: Vec<String> = ["tcp-echo", "-4", "-n", "1"].map(String::from).to_vec();
    let launched = SystemTime::now();
    let guest = start_background(&ctx.exec, p, &run, &argv, &console)?;
    let release = release_file(p, &run);
    let stamp = p.state().bench().join("stamp.gdb");
    ctx.exec.write(
        &stamp,
        "python print('bench-loop connected %f' % __import__('time').time())\n",
    )?;
    let breaks = ["tcp_sendmsg_locked".to_string()];
    let batch = [
        "python print('bench-loop stopped %f' % __import__('time').time())".to_string(),
        "info args".to_string(),
    ];
    let scripts = [stamp];
    let gdb = GdbRequest {
        port,
        hardware: false,
        breaks: &breaks,
        only_comm: None,
        scripts: &scripts,
        batch: &batch,
        // Each loop's vmlinux is new: a cache would only be written.
        index_cache: false,
        release: release.as_deref(),
        record: false,
        no_reverse: None,
    };
    let gdb_start = SystemTime::now();
    let output = ctx
        .exec
        .capture(gdb_command(&ctx.exec, p, &ctx.study_dir(), &gdb)?)?;
    drop(guest);
    let init_held = held_for_gdb(&std::fs::read_to_string(&console).unwrap_or_default());
    let text = String::from_utf8_lossy(&output.stdout);
    let stamp_of = |what: &str| -> Result<SystemTime> {
        let secs: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("bench-loop {what} "))?.parse().ok())
            .with_context(|| format!("gdb never printed `bench-loop {what}`:\n{text}"))?;
        Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
    };
    let (connected, stopped) = (stamp_of("connected")?, stamp_of("stopped")?);
    let since = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
    // At the reset vector, QEMU starts while gdb reads vmlinux, the boot
    // begins as gdb connects, and it waits for the whole of gdb's start.
    let (boot_start, held) = if from_boot {
        (connected, since(gdb_start, connected))
    } else {
        (launched, init_held)
    };
    let size = text
        .lines()
        .find_map(|l| l.strip_prefix("size = "))
        .unwrap_or("?")
        .to_string();
    if size != LOOP_SIZE {
        bail!("the stop in tcp_sendmsg_locked shows size = {size}, not {LOOP_SIZE}:\n{text}");
    }
    Ok(LoopTimes {
        compile: starts.iter().copied().min().unwrap_or(made),
        vmlinux_o: span(0),
        modpost: span(1),
        kallsyms: span(2),
        final_link: span(3),
        image: span(4),
        recording: outcome.recording,
        gdb_load: since(gdb_start, connected),
        held,
        boot_to_stop: since(boot_start, stopped).saturating_sub(init_held),
        total: built + since(launched, stopped),
        floor_compile,
        size,
    })
}

/// What init printed it held the command for gdb (study/guest/init.c's
/// hold_until); nothing when it did not hold it.
fn held_for_gdb(console: &str) -> Duration {
    console
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("study-init: held the job ")?;
            rest.strip_suffix(" s for gdb")?.parse::<f64>().ok()
        })
        .map_or(Duration::ZERO, Duration::from_secs_f64)
}

/// Compiles `object` once more with the command line Kbuild recorded for
/// it (its `.cmd` file), into a scratch file: the compile alone, without
/// make or the compiler cache, in the build directory as make runs it.
fn compile_alone(ctx: &Ctx, p: &Prepared, object: &str) -> Result<Duration> {
    let (dir, name) = object.rsplit_once('/').unwrap_or(("", object));
    let cmd_file = p.build_dir.join(dir).join(format!(".{name}.cmd"));
    let text = std::fs::read_to_string(&cmd_file)
        .with_context(|| format!("{}: no recorded command line", cmd_file.display()))?;
    let mut argv = kernel::depfile::saved_command(&text)
        .with_context(|| format!("{}: no savedcmd_ line", cmd_file.display()))?;
    let scratch = p.state().bench().join("floor.o");
    let Some(at) = argv.iter().position(|w| w == "-o") else {
        bail!(
            "{}: the recorded command line has no -o",
            cmd_file.display()
        );
    };
    argv[at + 1] = scratch.display().to_string();
    for word in argv.iter_mut() {
        if word.starts_with("-Wp,-MMD,") {
            *word = format!("-Wp,-MMD,{}.d", scratch.display());
        }
    }
    ctx.exec.create_dir_all(&p.state().bench())?;
    let sh = ctx.exec.sh();
    let _in = sh.push_dir(&p.build_dir);
    let cmd = sh.cmd(&argv[0]).args(&argv[1..]);
    match ctx.exec.time(cmd, None)? {
        Some(Ok(took)) => Ok(took),
        Some(Err(why)) => bail!("{object} did not compile alone: {why}"),
        None => Ok(Duration::ZERO),
    }
}

/// Appends to a source file; the original bytes go back when the returned
/// guard drops, or when the tool is stopped by a signal.
fn edit_for_a_while(exec: &Exec, path: &Path, append: &str) -> Result<supervise::Restore> {
    let guard =
        supervise::Restore::new(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut edited = std::fs::read(path)?;
    edited.extend_from_slice(append.as_bytes());
    exec.write(path, edited)?;
    Ok(guard)
}

fn median_of(rows: &[LoopTimes], f: impl Fn(&LoopTimes) -> Duration) -> Duration {
    median(rows.iter().map(f).collect())
}

/// One target's loop, phase by phase.
pub fn phase_table(loops: &TimedLoops, profile: &str) -> String {
    let rows = &loops.rows[0];
    let table = [
        (
            "compile (make's walk, tcp.o)",
            median_of(rows, |r| r.compile),
        ),
        (
            "link: vmlinux.o (ld -r, objtool)",
            median_of(rows, |r| r.vmlinux_o),
        ),
        ("link: modpost", median_of(rows, |r| r.modpost)),
        ("link: kallsyms links", median_of(rows, |r| r.kallsyms)),
        (
            "link: vmlinux, System.map, sorttable",
            median_of(rows, |r| r.final_link),
        ),
        ("boot image", median_of(rows, |r| r.image)),
        ("inputs index", median_of(rows, |r| r.recording)),
        (
            "gdb start, connect, breakpoints",
            median_of(rows, |r| r.gdb_load),
        ),
        ("the guest waiting for gdb", median_of(rows, |r| r.held)),
        ("boot to the stop", median_of(rows, |r| r.boot_to_stop)),
        ("edit to the stop", median_of(rows, |r| r.total)),
        (
            "floor: tcp.o alone, no make, no cache",
            median_of(rows, |r| r.floor_compile),
        ),
        (
            "floor: that, and the boot to the stop",
            median_of(rows, |r| r.floor()),
        ),
    ];
    let mut out = format!("{:<52} {:>9}\n", format!("phase ({profile})"), "time");
    for (name, time) in table {
        out += &format!("{name:<52} {:>8.2}s\n", time.as_secs_f64());
    }
    let total = median_of(rows, |r| r.total).as_secs_f64();
    let ratio = median(
        rows.iter()
            .map(|r| {
                Duration::from_secs_f64(r.total.as_secs_f64() / r.floor().as_secs_f64().max(1e-9))
            })
            .collect(),
    )
    .as_secs_f64();
    let goal = goal_seconds(profile);
    out += &format!(
        "edit to the stop: {total:.2} s{}; {ratio:.2}x the floor (goal: at most {FLOOR_GOAL}x): {}\n",
        goal.map_or(String::new(), |g| format!(
            " (goal: at most {g} s: {})",
            if total <= g { "met" } else { "not met" }
        )),
        if ratio <= FLOOR_GOAL { "met" } else { "not met" }
    );
    if ratio > FLOOR_GOAL {
        out += &beyond_the_floor(rows);
    }
    out + &format!(
        "(median of {} runs; -j{}; stopped in tcp_sendmsg_locked with size = {})\n",
        rows.len(),
        loops.requests[0].jobs,
        rows[0].size
    )
}

/// What the loop spends beyond its floor, longest first, against what the
/// floor's goal leaves for it: the phases left to shorten.
fn beyond_the_floor(rows: &[LoopTimes]) -> String {
    let floor = median_of(rows, |r| r.floor()).as_secs_f64();
    let mut phases = [
        (
            "compile beyond tcp.o alone",
            median_of(rows, |r| r.compile.saturating_sub(r.floor_compile)),
        ),
        ("vmlinux.o", median_of(rows, |r| r.vmlinux_o)),
        ("modpost", median_of(rows, |r| r.modpost)),
        ("kallsyms links", median_of(rows, |r| r.kallsyms)),
        ("vmlinux", median_of(rows, |r| r.final_link)),
        ("boot image", median_of(rows, |r| r.image)),
        ("inputs index", median_of(rows, |r| r.recording)),
        ("waiting for gdb", median_of(rows, |r| r.held)),
    ];
    phases.sort_by_key(|&(_, t)| std::cmp::Reverse(t));
    let listed: Vec<String> = phases
        .iter()
        .filter(|(_, t)| t.as_secs_f64() >= 0.005)
        .map(|(name, t)| format!("{name} {:.2} s", t.as_secs_f64()))
        .collect();
    format!(
        "beyond the floor, longest first (its goal leaves {:.2} s for all of them): {}\n",
        floor * (FLOOR_GOAL - 1.0),
        listed.join(", ")
    )
}

/// The edit loop's goal against its own floor, measured in the same run.
const FLOOR_GOAL: f64 = 1.5;

/// The absolute goal for a shipped profile on the 2-core machines measured
/// so far; a profile of one's own has only the floor's.
fn goal_seconds(profile: &str) -> Option<f64> {
    match profile {
        "study" => Some(10.0),
        "tiny" => Some(5.0),
        _ => None,
    }
}

/// Each target's loop, rebuild and boot, as a ratio to the first's.
pub fn arches_table(targets: &[Target], loops: &TimedLoops, runs: usize) -> String {
    let totals: Vec<Duration> = loops
        .rows
        .iter()
        .map(|r| median_of(r, |t| t.total))
        .collect();
    let mut out = format!(
        "{:<8} {:>9} {:>14} {:>15} {:>7}\n",
        "arch", "rebuild", "boot to stop", "edit to stop", "ratio"
    );
    for (i, t) in targets.iter().enumerate() {
        let r = &loops.rows[i];
        let rebuild = median_of(r, |t| t.compile + t.link() + t.image);
        let boot = median_of(r, |t| t.held + t.boot_to_stop);
        out += &format!(
            "{:<8} {:>8.2}s {:>13.2}s {:>14.2}s {:>6.2}x\n",
            t.arch,
            rebuild.as_secs_f64(),
            boot.as_secs_f64(),
            totals[i].as_secs_f64(),
            totals[i].as_secs_f64() / totals[0].as_secs_f64()
        );
    }
    out + &format!(
        "(median of {} runs each, alternating; profile {}; stopped in tcp_sendmsg_locked with size = {LOOP_SIZE}; the ratio is to {})\n",
        runs.max(1),
        targets[0].p.profile.name,
        targets[0].arch
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(total: f64, floor_compile: f64, boot: f64) -> LoopTimes {
        let s = Duration::from_secs_f64;
        LoopTimes {
            compile: s(1.0),
            vmlinux_o: s(0.5),
            modpost: Duration::ZERO,
            kallsyms: s(0.25),
            final_link: s(0.25),
            image: Duration::ZERO,
            recording: Duration::ZERO,
            gdb_load: s(0.9),
            held: s(0.5),
            boot_to_stop: s(boot),
            total: s(total),
            floor_compile: s(floor_compile),
            size: LOOP_SIZE.into(),
        }
    }

    fn loops(rows: Vec<LoopTimes>) -> TimedLoops {
        TimedLoops {
            rows: vec![rows],
            requests: vec![BuildRequest::default_for_run()],
        }
    }

    /// init's line, among the boot's; a guest that held nothing, none.
    #[test]
    fn the_hold_is_read_from_the_console() {
        let console = "[    0.1] random: crng init done\r\nstudy-init: held the job 0.412 s for gdb\r\nrunning\n";
        assert_eq!(held_for_gdb(console), Duration::from_millis(412));
        assert_eq!(
            held_for_gdb("study-init: running: tcp-echo\n"),
            Duration::ZERO
        );
    }

    /// The verdicts come from the same run's figures, each way.
    #[test]
    fn the_loop_is_judged_against_its_goal_and_its_floor() {
        // 4.5 s against a floor of 1 + 2 = 3 s: 1.5x, both goals met.
        let met = phase_table(&loops(vec![times(4.5, 1.0, 2.0)]), "tiny");
        assert!(
            met.contains("edit to the stop: 4.50 s (goal: at most 5 s: met); 1.50x the floor (goal: at most 1.5x): met"),
            "{met}"
        );
        // 12 s against 2 + 3 = 5 s: both missed; the median of three runs.
        let rows = vec![
            times(12.0, 2.0, 3.0),
            times(11.0, 2.0, 3.0),
            times(30.0, 2.0, 3.0),
        ];
        let missed = phase_table(&loops(rows), "study");
        assert!(
            missed.contains("edit to the stop: 12.00 s (goal: at most 10 s: not met); 2.40x the floor (goal: at most 1.5x): not met"),
            "{missed}"
        );
        // The compile is within the floor's (1 s against 2 s alone), so
        // not listed; 1.5x of a 5 s floor leaves 2.5 s.
        assert!(
            missed.contains("beyond the floor, longest first (its goal leaves 2.50 s for all of them): vmlinux.o 0.50 s, waiting for gdb 0.50 s, kallsyms links 0.25 s, vmlinux 0.25 s\n"),
            "{missed}"
        );
        assert!(!met.contains("beyond the floor"), "{met}");
        // A profile of one's own: the floor's goal only.
        let own = phase_table(&loops(vec![times(4.0, 2.0, 2.0)]), "mine");
        assert!(
            own.contains("edit to the stop: 4.00 s; 1.00x the floor"),
            "{own}"
        );
    }
}

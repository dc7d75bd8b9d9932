//! gdb on a guest this command boots itself: the guest started in the
//! background, gdb run on it, the guest stopped when gdb exits (`debug`,
//! `replay`), or one stop's batch output captured (`follow`, `dump --at`).

use std::process::ExitStatus;

use anyhow::{bail, Result};

use crate::{
    ctx::{Ctx, Prepared},
    guest::{
        gdb::{comm_word, free_port, gdb_command, run_gdb, GdbRequest},
        hold::release_file,
        qemu::Accel,
        run::{start_background, RunRequest},
    },
    util::exec::describe,
};

/// Boots `argv` in the background as `run` asks (its console in the build's
/// debug folder), runs gdb on it as `gdb` asks (the held command released
/// at gdb's first continue), and stops the guest when gdb exits: `debug`
/// and `replay`. gdb's exit status is ours.
pub fn session_on_guest(
    ctx: &Ctx,
    p: &Prepared,
    run: &RunRequest,
    argv: &[String],
    gdb: GdbRequest,
) -> Result<std::process::ExitCode> {
    let console = p.state().debug().join(format!("console-{}.log", gdb.port));
    let guest = start_background(&ctx.exec, p, run, argv, &console)?;
    let release = release_file(p, run);
    if guest.is_some() {
        eprintln!(
            "guest console: {} (`tail -f` it in another terminal)",
            console.display()
        );
        if release.is_some() {
            eprintln!(
                "the kernel boots while gdb reads vmlinux; the command starts at gdb's \
                 first continue (--from-boot: stop in the boot too)"
            );
        }
    }
    let gdb = GdbRequest {
        release: release.as_deref(),
        ..gdb
    };
    let status = run_gdb(&ctx.exec, p, &ctx.study_dir(), &gdb)?;
    if let Some(guest) = &guest {
        match guest.exit() {
            Some(code) => eprintln!("the guest command exited with status {code}"),
            None => eprintln!("gdb exited; stopping the guest"),
        }
    }
    drop(guest);
    Ok(if status.success() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Boots `argv` with the stub waiting, stops in `function` in `argv`'s own
/// task, runs `batch` there and returns what gdb printed; `None` under a
/// dry run. gdb failing is an error.
pub fn batch_at_stop(
    ctx: &Ctx,
    p: &Prepared,
    function: &str,
    argv: &[String],
    batch: &[String],
) -> Result<Option<String>> {
    let Some((status, stdout, stderr)) = batch_at_stop_output(ctx, p, function, argv, batch)?
    else {
        return Ok(None);
    };
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
        bail!(
            "gdb failed ({}) at the stop in {function}:\n{}",
            describe(status),
            tail[tail.len().saturating_sub(15)..].join("\n")
        );
    }
    Ok(Some(stdout))
}

/// [`batch_at_stop`], whatever gdb's exit status: the status, gdb's
/// stdout and its stderr, for a caller that judges them itself (`dump
/// --at` looks for study-dump's own line).
pub fn batch_at_stop_output(
    ctx: &Ctx,
    p: &Prepared,
    function: &str,
    argv: &[String],
    batch: &[String],
) -> Result<Option<(ExitStatus, String, String)>> {
    let port = free_port()?;
    // The stop is in the command's own task, which starts after gdb's
    // breakpoints are in: gdb may read vmlinux during the boot.
    let run = RunRequest {
        gdb_port: Some(port),
        hold_for_gdb: true,
        ..RunRequest::new(Accel::Tcg)
    };
    let console = p.state().debug().join(format!("console-{port}.log"));
    let guest = start_background(&ctx.exec, p, &run, argv, &console)?;
    let release = release_file(p, &run);
    let breaks = [function.to_string()];
    // The command's own stop, not a kernel thread's (a kworker's IPv6
    // router solicitation reaches tun_net_xmit first under tun-peer).
    let program = argv[0].rsplit('/').next().unwrap_or(&argv[0]);
    let comm: String = program.chars().take(15).collect();
    let gdb = GdbRequest {
        port,
        hardware: false,
        breaks: &breaks,
        only_comm: comm_word(&comm),
        scripts: &[],
        batch,
        index_cache: false,
        release: release.as_deref(),
        record: false,
        no_reverse: None,
    };
    let output = ctx
        .exec
        .output(gdb_command(&ctx.exec, p, &ctx.study_dir(), &gdb)?)?;
    let Some(_guest) = guest else {
        return Ok(None);
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(Some((
        output.status,
        text(&output.stdout),
        text(&output.stderr),
    )))
}

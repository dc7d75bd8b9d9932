//! The User-Mode Linux command line: the kernel is a host program, started
//! directly (or under gdbserver, stopped before its first instruction, for
//! a debugger), with the host's root read-only over hostfs.

use std::path::Path;

use xshell::{Cmd, Shell};

use crate::{
    guest::qemu::{init_words, quiet_words, Guest},
    study::arch::Uml,
};

/// The kernel's command line: its words are the program's arguments.
pub fn uml_args(u: &Uml, guest: &Guest, uml_dir: &Path) -> Vec<String> {
    let mut words = vec![format!("{}{}", u.mem_arg, guest.mem)];
    words.extend(u.root_args.iter().cloned());
    // hostfs mounts any host folder: the status folder by its path.
    let status = guest
        .status
        .as_ref()
        .map(|dir| format!("hostfs:{}", dir.display()));
    words.extend(init_words(guest, status));
    words.extend(u.args.iter().cloned());
    words.push(if guest.interactive {
        u.con0_interactive.clone()
    } else {
        u.con0_batch.clone()
    });
    words.push(format!("{}{}", u.dir_arg, uml_dir.display()));
    words.extend(quiet_words(guest));
    // Last, so that --append can override any word above.
    words.extend(guest.append.iter().cloned());
    words
}

/// `linux ARGS`, or `gdbserver --once 127.0.0.1:PORT linux ARGS`: loopback
/// only, as QEMU's stub, and gone when the debugger detaches.
pub fn uml_command<'a>(sh: &'a Shell, u: &Uml, guest: &Guest, uml_dir: &Path) -> Cmd<'a> {
    let args = uml_args(u, guest, uml_dir);
    match guest.gdb_port {
        Some(port) => sh
            .cmd(&u.gdbserver)
            .arg("--once")
            .arg(format!("127.0.0.1:{port}"))
            .arg(&guest.image)
            .args(args),
        None => sh.cmd(&guest.image).args(args),
    }
}

/// A panicking UML calls abort(): no core file of a 70 MB kernel in the
/// working directory, whatever the host's limits say. Children (the
/// kernel) inherit the limit.
pub fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we own; lowering a limit of our
    // own process cannot fail in a way that matters here.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::exec::cmd_text;

    fn uml() -> Uml {
        let study = crate::study::shipped();
        crate::study::arch::Arch::load(&study, "um")
            .unwrap()
            .uml
            .unwrap()
    }

    fn guest() -> Guest {
        Guest {
            image: "/b/tiny-um/linux".into(),
            job: Some("/b/tiny-um/.study/run/job-1".into()),
            env: Some("/b/tiny-um/.study/run/env-1".into()),
            host_tsc_khz: None,
            keep: vec!["/tmp/clone".into()],
            ..crate::guest::qemu::test_guest()
        }
    }

    #[test]
    fn a_batch_run_on_the_hosts_root() {
        let dir = Path::new("/b/tiny-um/.study/run/uml-1");
        assert_eq!(
            cmd_text(uml_command(&Shell::new().unwrap(), &uml(), &guest(), dir)),
            "/b/tiny-um/linux mem=1G root=/dev/root rootfstype=hostfs rootflags=/ ro \
             init=/t/study-init study.job=/b/tiny-um/.study/run/job-1 \
             study.env=/b/tiny-um/.study/run/env-1 study.keep=/tmp/clone noreboot con=null \
             con0=null,fd:1 uml_dir=/b/tiny-um/.study/run/uml-1 quiet loglevel=2"
        );
    }

    /// The debugger's way in is gdbserver on loopback, stopped before the
    /// kernel runs; --append still comes last.
    #[test]
    fn under_gdbserver_on_loopback() {
        let g = Guest {
            gdb_port: Some(4321),
            wait_gdb: true,
            append: vec!["loglevel=8".into()],
            ..guest()
        };
        let argv: Vec<String> = std::process::Command::from(uml_command(
            &Shell::new().unwrap(),
            &uml(),
            &g,
            Path::new("/d"),
        ))
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        assert_eq!(argv[..3], ["--once", "127.0.0.1:4321", "/b/tiny-um/linux"]);
        assert_eq!(argv.last().unwrap(), "loglevel=8");
    }
}

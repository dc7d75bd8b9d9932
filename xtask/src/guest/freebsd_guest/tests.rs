use super::*;
use crate::util::exec::cmd_text;

fn data() -> GuestData {
    GuestData::load(&crate::study::shipped()).unwrap()
}

fn guest() -> FreebsdGuest {
    FreebsdGuest {
        kernel: "/b/fb/kernel".into(),
        root: "/b/fb/.study/freebsd-root".into(),
        argv: vec!["tcp-echo".into(), "-4".into(), "-n".into(), "2".into()],
        status: Some("/b/fb/.study/run/status-0-7".into()),
        mem: "1G".into(),
        cpus: 1,
        gdb_port: None,
        wait_gdb: false,
        verbose: false,
        append: vec![],
        qemu_args: vec![],
    }
}

/// The batch run: PVH -kernel, the two 9p shares, the kenv in order.
#[test]
fn a_batch_run() {
    assert_eq!(
        cmd_text(qemu_command(&Shell::new().unwrap(), &data(), &guest()).unwrap()),
        "qemu-system-x86_64 -machine q35,hpet=off -accel tcg -cpu max -m 1G -smp 1 -nodefaults \
         -no-user-config -display none -no-reboot -chardev stdio,id=console,signal=off \
         -serial chardev:console -kernel /b/fb/kernel \
         -fsdev local,id=root,path=/b/fb/.study/freebsd-root,security_model=none,readonly=on \
         -device virtio-9p-pci,fsdev=root,mount_tag=study-root \
         -fsdev local,id=status,path=/b/fb/.study/run/status-0-7,security_model=none \
         -device virtio-9p-pci,fsdev=status,mount_tag=study-status \
         -append 'machdep.disable_tsc_calibration=1 boot_serial=YES hw.uart.console=io:0x3f8 \
         vfs.root.mountfrom=p9fs:study-root init_path=/bin/study-init boot_mute=YES \
         study.status=p9fs:study-status study.argv.0=tcp-echo study.argv.1=-4 study.argv.2=-n \
         study.argv.3=2'"
    );
}

/// A debugger's stub on loopback, waiting at the reset vector; verbose
/// keeps the boot messages; --append and --qemu-arg come last.
#[test]
fn with_gdb_verbose_and_extras() {
    let g = FreebsdGuest {
        gdb_port: Some(1234),
        wait_gdb: true,
        verbose: true,
        status: None,
        root: "/b/a,b/root".into(),
        append: vec!["boot_verbose=1".into()],
        qemu_args: vec!["-d".into(), "int".into()],
        ..guest()
    };
    let text = cmd_text(qemu_command(&Shell::new().unwrap(), &data(), &g).unwrap());
    assert!(
        text.contains("path=/b/a,,b/root,security_model=none,readonly=on"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "-gdb tcp:127.0.0.1:1234 -S -append 'machdep.disable_tsc_calibration=1 \
             boot_serial=YES hw.uart.console=io:0x3f8 vfs.root.mountfrom=p9fs:study-root \
             init_path=/bin/study-init study.verbose=1 study.argv.0=tcp-echo study.argv.1=-4 \
             study.argv.2=-n study.argv.3=2 boot_verbose=1' -d int"
        ),
        "{text}"
    );
    assert!(!text.contains("study-status") && !text.contains("boot_mute"));
}

/// Spaces, commas, quotes and % survive FreeBSD's split as %XX, which
/// study-init decodes; a word past FreeBSD's 127 bytes is refused in one
/// line that names it.
#[test]
fn words_are_encoded_and_bounded() {
    assert_eq!(encode("a b,c\"d%e/f.g:h=-"), "a%20b%2Cc%22d%25e/f.g:h=-");
    assert_eq!(encode("é"), "%C3%A9");
    let spaced = FreebsdGuest {
        argv: vec!["tcp-echo".into(), "-s".into(), "1 2,3".into()],
        ..guest()
    };
    assert!(kenv_words(&data(), &spaced)
        .unwrap()
        .ends_with(&["study.argv.2=1%202%2C3".to_string()]));
    let long = "x".repeat(120);
    let g = FreebsdGuest {
        argv: vec!["tcp-echo".into(), long.clone()],
        ..guest()
    };
    let err = kenv_words(&data(), &g).unwrap_err().to_string();
    assert!(
        err.starts_with("the command's word 1 (\"xxx") && err.ends_with("give a shorter argument"),
        "{err}"
    );
    let fits = "x".repeat(KENV_WORD_MAX - "study.argv.1=".len());
    let g = FreebsdGuest {
        argv: vec!["tcp-echo".into(), fits.clone()],
        ..guest()
    };
    assert!(kenv_words(&data(), &g)
        .unwrap()
        .contains(&format!("study.argv.1={fits}")));
}

/// The compile line of a guest program: the tree's headers and the
/// build directory's links, freestanding, linked by lld.
#[test]
fn the_compile_line() {
    let sh = Shell::new().unwrap();
    assert_eq!(
        cmd_text(compile_command(
            &sh,
            &data(),
            Path::new("/src/fb"),
            Path::new("/b/fb/.study/freebsd-include"),
            Path::new("/r/study/guest/freebsd/init.c"),
            Path::new("/b/fb/.study/freebsd-root/bin/.study-init.partial"),
        )),
        "clang-14 --target=x86_64-unknown-freebsd15 -ffreestanding -nostdlibinc \
         -fno-stack-protector -isystem /b/fb/.study/freebsd-include -isystem /src/fb/sys \
         -isystem /src/fb/include -static -nostdlib -fuse-ld=lld -Os -Wall -Wextra -Werror \
         -o /b/fb/.study/freebsd-root/bin/.study-init.partial /r/study/guest/freebsd/init.c"
    );
}

/// A dry run prints the compile lines and writes nothing.
#[test]
fn a_dry_run_writes_no_root() {
    let exec = Exec::new(true, false).unwrap();
    let build = std::env::temp_dir().join(format!("fb-root-dry-{}", std::process::id()));
    let root = build_root(
        &exec,
        &data(),
        &crate::study::shipped(),
        Path::new("/src/fb"),
        &build,
    )
    .unwrap();
    assert_eq!(root, build.join(".study/freebsd-root"));
    assert!(!build.exists());
}

use super::*;
use crate::util::exec::cmd_text;

fn arch() -> Qemu {
    let study = crate::study::shipped();
    crate::study::arch::Arch::load(&study, "x86_64")
        .unwrap()
        .qemu
        .unwrap()
}

fn guest() -> Guest {
    test_guest()
}

#[test]
fn tcg_batch_run() {
    assert_eq!(
        cmd_text(qemu_command(&Shell::new().unwrap(), &arch(), &guest())),
        "qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 1G -smp 1 -nodefaults -no-user-config \
         -display none -no-reboot -chardev stdio,id=console,signal=off -serial chardev:console \
         -kernel /b/tiny/arch/x86/boot/bzImage \
         -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
         -device virtio-9p-pci,fsdev=root,mount_tag=study-root \
         -append 'console=ttyS0 root=study-root rootfstype=9p \
         rootflags=trans=virtio,version=9p2000.L,msize=524288,access=any ro init=/t/study-init \
         study.job=/b/tiny/.study/run/job panic=-1 quiet loglevel=2 tsc=reliable tsc_early_khz=2596128'"
    );
}

#[test]
fn kvm_interactive_with_gdb_and_extras() {
    let g = Guest {
        accel: Accel::Kvm,
        mem: "2G".into(),
        cpus: 2,
        job: None,
        gdb_port: Some(1234),
        wait_gdb: true,
        verbose: true,
        interactive: true,
        out_dir: Some("/b/out".into()),
        append: vec!["loglevel=8".into()],
        qemu_args: vec!["-device".into(), "virtio-rng-pci".into()],
        ..guest()
    };
    assert_eq!(
        cmd_text(qemu_command(&Shell::new().unwrap(), &arch(), &g)),
        "qemu-system-x86_64 -machine q35 -accel kvm -cpu host -m 2G -smp 2 -nodefaults -no-user-config \
         -display none -no-reboot -serial mon:stdio -kernel /b/tiny/arch/x86/boot/bzImage \
         -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
         -device virtio-9p-pci,fsdev=root,mount_tag=study-root \
         -fsdev local,id=out,path=/b/out,security_model=none -device virtio-9p-pci,fsdev=out,mount_tag=study-out \
         -gdb tcp:127.0.0.1:1234 -S \
         -append 'console=ttyS0 root=study-root rootfstype=9p \
         rootflags=trans=virtio,version=9p2000.L,msize=524288,access=any ro init=/t/study-init \
         panic=-1 nokaslr loglevel=8' -device virtio-rng-pci"
    );
}

#[test]
fn the_tsc_words_are_for_tcg_only() {
    let g = Guest {
        accel: Accel::Kvm,
        ..guest()
    };
    let line = kernel_cmdline(&arch(), &g);
    assert!(!line.contains("tsc"), "{line}");
    let line = kernel_cmdline(&arch(), &guest());
    assert!(
        line.ends_with(" tsc=reliable tsc_early_khz=2596128"),
        "{line}"
    );
}

#[test]
fn initramfs_root() {
    let g = Guest {
        root: Root::Initramfs("/b/initramfs.cpio".into()),
        job: None,
        ..guest()
    };
    let shell = cmd_text(qemu_command(&Shell::new().unwrap(), &arch(), &g));
    assert!(
        shell.contains(
            " -initrd /b/initramfs.cpio -append 'console=ttyS0 rdinit=/init panic=-1 quiet loglevel=2 tsc=reliable tsc_early_khz=2596128'"
        ),
        "{shell}"
    );
    assert!(!shell.contains("9p"), "{shell}");
}

#[test]
fn paths_under_a_tmpfs_are_kept_visible() {
    let keep: Vec<PathBuf> = [
        "/tmp/clone",
        "/tmp/clone/build/tiny",
        "/root/src",
        "/work/x",
        "/tmp",
        "/variable/y",
    ]
    .map(PathBuf::from)
    .to_vec();
    assert_eq!(
        shadowed(&keep),
        ["/root/src", "/tmp/clone"].map(PathBuf::from)
    );
    let g = Guest { keep, ..guest() };
    assert!(kernel_cmdline(&arch(), &g).contains(" study.keep=/root/src study.keep=/tmp/clone "));
    // An initramfs holds the run's files at their host paths: a build
    // directory under /tmp stays visible there too.
    let g = Guest {
        root: Root::Initramfs("/b/initramfs.cpio".into()),
        keep: vec!["/tmp/b/.study/trace/run-1".into()],
        ..guest()
    };
    assert!(kernel_cmdline(&arch(), &g).contains(" study.keep=/tmp/b/.study/trace/run-1 "));
    // init keeps eight: a ninth is refused in one line that names it.
    let nine: Vec<PathBuf> = (0..9)
        .map(|i| PathBuf::from(format!("/tmp/k{i}")))
        .collect();
    let err = check_paths(&Guest {
        keep: nine,
        ..guest()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("/tmp/k8 must stay visible in the guest"),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

/// A checkout or working directory with a space or a comma in its path:
/// each value is one word for the kernel and init, each QEMU option
/// value keeps its comma, and what cannot be quoted is refused.
#[test]
fn paths_with_spaces_and_commas_are_quoted() {
    let g = Guest {
        init: "/w/my repo/study-init".into(),
        job: Some("/w/b,1/.study/run/job-1".into()),
        env: Some("/w/b,1/.study/run/env 1".into()),
        cwd: Some("/tmp/a b,c".into()),
        keep: vec!["/tmp/a b,c".into()],
        out_dir: Some("/w/b,1/.study/trace/run-1".into()),
        ..guest()
    };
    let cmdline = kernel_cmdline(&arch(), &g);
    for word in [
        " init=\"/w/my repo/study-init\" ",
        " study.job=/w/b,1/.study/run/job-1 ",
        " study.env=\"/w/b,1/.study/run/env 1\" ",
        " study.cwd=\"/tmp/a b,c\" ",
        " study.keep=\"/tmp/a b,c\" ",
    ] {
        assert!(cmdline.contains(word), "{word} in {cmdline}");
    }
    let argv: Vec<String> =
        std::process::Command::from(qemu_command(&Shell::new().unwrap(), &arch(), &g))
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
    assert!(
        argv.contains(&"local,id=out,path=/w/b,,1/.study/trace/run-1,security_model=none".into()),
        "{argv:?}"
    );
    assert!(check_paths(&g).is_ok());
    let bad = Guest {
        cwd: Some("/tmp/say \"hi\"".into()),
        ..g
    };
    let err = check_paths(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "the working directory \"/tmp/say \\\"hi\\\"\" holds '\"', which the kernel command line \
         cannot carry; run from (or move the checkout to) a path without it"
    );
}

/// Security: the gdb stub listens on loopback only, and the host's root
/// is shared read-only.
#[test]
fn gdb_stub_on_loopback_and_root_read_only() {
    let g = Guest {
        gdb_port: Some(4321),
        ..guest()
    };
    let argv: Vec<String> =
        std::process::Command::from(qemu_command(&Shell::new().unwrap(), &arch(), &g))
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
    let after = |flag: &str| -> Vec<&String> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| &w[1])
            .collect()
    };
    assert_eq!(after("-gdb"), ["tcp:127.0.0.1:4321"]);
    assert!(
        !argv.contains(&"-s".to_string()),
        "-s listens on every address"
    );
    let fsdevs = after("-fsdev");
    let root: Vec<&&String> = fsdevs.iter().filter(|f| f.contains("id=root")).collect();
    assert_eq!(root.len(), 1);
    assert!(root[0].split(',').any(|o| o == "readonly=on"), "{root:?}");
    assert!(root[0].split(',').any(|o| o == "path=/"), "{root:?}");
    // The writable share is the trace's own output directory, never /.
    let out = Guest {
        out_dir: Some("/b/out".into()),
        ..guest()
    };
    let argv: Vec<String> =
        std::process::Command::from(qemu_command(&Shell::new().unwrap(), &arch(), &out))
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
    for fsdev in argv.windows(2).filter(|w| w[0] == "-fsdev").map(|w| &w[1]) {
        assert!(
            fsdev.contains("readonly=on") || fsdev.contains("path=/b/out,"),
            "{fsdev}"
        );
    }
}

#[test]
fn job_file_format() {
    assert_eq!(
        job_text(
            Path::new("/w"),
            &["sh".into(), "-c".into(), "exit 7".into()]
        ),
        b"/w\0sh\0-c\0exit 7\0"
    );
}

/// A guest with a QMP socket: the socket (a comma in its path written
/// twice), the vmcoreinfo device, and the words that tell the kernel where
/// fw_cfg is, which only a QMP guest gets.
#[test]
fn a_qmp_guest_gets_its_socket_vmcoreinfo_and_fw_cfg() {
    let g = Guest {
        qmp: Some("/b/a,b/.study/run/qmp-7".into()),
        ..guest()
    };
    let line = cmd_text(qemu_command(&Shell::new().unwrap(), &arch(), &g));
    assert!(
        line.contains("-qmp unix:/b/a,,b/.study/run/qmp-7,server=on,wait=off -device vmcoreinfo"),
        "{line}"
    );
    let words = arch().cmdline_fw_cfg;
    assert!(!words.is_empty());
    let with = kernel_cmdline(&arch(), &g);
    let without = kernel_cmdline(&arch(), &guest());
    for word in &words {
        assert!(with.split(' ').any(|w| w == word), "{with}");
        assert!(!without.contains(word.as_str()), "{without}");
    }
}

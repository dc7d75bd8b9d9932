//! Unpacking a release tarball with its progress: GNU tar's checkpoints
//! (`tar: Read checkpoint N`, every [`EVERY`] records of 10 KiB of the
//! uncompressed archive) against the archive's uncompressed size, which
//! `xz --list` and `gzip -l` read from the file's index or trailer without
//! unpacking it (a few milliseconds).

use std::path::Path;

use xshell::{cmd, Cmd};

use crate::util::exec::Exec;

/// Records between checkpoints: 10 MB of the 1.5 GB 6.12 archive.
pub const EVERY: u64 = 1000;
/// tar's record: 20 blocks of 512 bytes.
pub const RECORD: u64 = 10240;

/// tar, unpacking `tarball` into `into`, saying each checkpoint.
pub fn unpack_command<'a>(exec: &'a Exec, tarball: &Path, into: &Path) -> Cmd<'a> {
    let checkpoint = format!("--checkpoint={EVERY}");
    cmd!(
        exec.sh(),
        "tar -xf {tarball} -C {into} --strip-components=1 {checkpoint} --checkpoint-action=echo"
    )
}

/// The records read at a `tar: Read checkpoint N` line.
pub fn checkpoint(line: &str) -> Option<u64> {
    let n = line.strip_prefix("tar: Read checkpoint ")?;
    n.trim().parse().ok()
}

/// The archive's uncompressed size in bytes, when its compressor can say
/// it cheaply (xz, gzip) or it is not compressed.
pub fn unpacked_size(exec: &Exec, tarball: &Path) -> Option<u64> {
    let name = tarball.file_name()?.to_string_lossy().into_owned();
    if name.ends_with(".tar") {
        return tarball.metadata().ok().map(|m| m.len());
    }
    let out = if name.ends_with(".xz") {
        exec.query(cmd!(exec.sh(), "xz --robot --list {tarball}"))
            .ok()?
    } else if name.ends_with(".gz") || name.ends_with(".tgz") {
        exec.query(cmd!(exec.sh(), "gzip -l {tarball}")).ok()?
    } else {
        return None;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if name.ends_with(".xz") {
        xz_size(&text)
    } else {
        gzip_size(&text)
    }
}

/// `totals` line of `xz --robot --list`: its fifth field.
fn xz_size(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("totals\t"))?;
    line.split('\t').nth(4)?.parse().ok()
}

/// `gzip -l`'s second line, second column: the size modulo 4 GiB (gzip
/// keeps 32 bits of it), enough for the 1.5 GB of a kernel's archive.
fn gzip_size(text: &str) -> Option<u64> {
    text.lines().nth(1)?.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_checkpoints_as_the_tools_print_them() {
        // xz 5.4 on Debian's linux-source-6.12.tar.xz.
        let xz = "name\t/usr/src/linux-source-6.12.tar.xz\n\
                  file\t1\t62\t151970188\t1558548480\t0.098\tCRC64\t0\n\
                  totals\t1\t62\t151970188\t1558548480\t0.098\tCRC64\t0\t1\n";
        assert_eq!(xz_size(xz), Some(1558548480));
        let gzip = "         compressed        uncompressed  ratio uncompressed_name\n\
                    \x20          2345678            10485760  77.6% linux.tar\n";
        assert_eq!(gzip_size(gzip), Some(10485760));
        assert_eq!(checkpoint("tar: Read checkpoint 2000"), Some(2000));
        assert_eq!(checkpoint("tar: linux/x: Cannot open"), None);
    }
}

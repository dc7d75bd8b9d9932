//! apt's machine-readable progress (`-o APT::Status-Fd=N`), read line by
//! line. apt documents the lines in doc/progress-reporting.txt of its
//! source: `dlstatus:ITEM:PERCENT:DESCRIPTION` while it fetches (`apt-get
//! update`, `download`, `install`; the percent counts bytes),
//! `pmstatus:PACKAGE:PERCENT:DESCRIPTION` while dpkg unpacks and sets up
//! (the percent counts apt's steps, from 0 again), `pmerror:` and
//! `pmconffile:` beside them. apt 2.6 writes the percent with four
//! decimals (`20.0000`); the description is free text and may hold a `:`,
//! and so may a package's name (`libc6:arm64`). Every other line is apt's
//! or dpkg's own output.

/// One status line.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub kind: Kind,
    /// The item (`1`), the package (`bc`, `dpkg-exec` when apt starts
    /// dpkg), or for `pmconffile` the file.
    pub subject: String,
    pub percent: f64,
    /// `Retrieving file 2 of 2`, `Unpacking bc (amd64)`, an error.
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Fetching.
    Download,
    /// dpkg at work on a package.
    Package,
    /// dpkg failed on a package.
    Error,
    /// A configuration file dpkg would ask about.
    Conffile,
}

/// The status a line holds, or `None` for apt's and dpkg's own output.
/// The percent is the first field after the subject's first that reads
/// as a number, so a `:` in a package's name stays in the name.
pub fn parse(line: &str) -> Option<Status> {
    let (kind, rest) = line.split_once(':')?;
    let kind = match kind {
        "dlstatus" => Kind::Download,
        "pmstatus" => Kind::Package,
        "pmerror" => Kind::Error,
        "pmconffile" => Kind::Conffile,
        _ => return None,
    };
    let fields: Vec<&str> = rest.splitn(4, ':').collect();
    let at = (1..fields.len()).find(|&i| is_percent(fields[i]))?;
    let percent: f64 = fields[at].parse().ok()?;
    let what = rest.split(':').skip(at + 1).collect::<Vec<_>>().join(":");
    Some(Status {
        kind,
        subject: fields[..at].join(":"),
        percent: percent.clamp(0.0, 100.0),
        what,
    })
}

fn is_percent(field: &str) -> bool {
    !field.is_empty()
        && field.chars().all(|c| c.is_ascii_digit() || c == '.')
        && field.parse::<f64>().is_ok()
}

/// `(2, 2)` for `Retrieving file 2 of 2`: apt's file count, when apt
/// speaks English (under another locale its words are shown as they are).
pub fn file_count(what: &str) -> Option<(u64, u64)> {
    let rest = what.strip_prefix("Retrieving file ")?;
    let (n, of) = rest.split_once(" of ")?;
    Some((n.trim().parse().ok()?, of.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test_data/apt")
            .join(name);
        std::fs::read_to_string(&path).unwrap()
    }

    fn statuses(text: &str) -> Vec<Status> {
        text.lines().filter_map(parse).collect()
    }

    /// What apt 2.6.1 (Debian 12) wrote on stdout for `apt-get install
    /// --reinstall -y -o APT::Status-Fd=1 bc`, its own output and dpkg's
    /// (with dpkg's carriage returns) between the status lines.
    #[test]
    fn a_reinstall_reads_as_download_then_dpkg() {
        let text = sample("reinstall-bc.status");
        let all = statuses(&text);
        let kinds: Vec<Kind> = all.iter().map(|s| s.kind).collect();
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Download).count(), 6);
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Package).count(), 8);
        // Fetching comes before dpkg.
        let first_package = kinds.iter().position(|k| *k == Kind::Package).unwrap();
        assert!(kinds[first_package..].iter().all(|k| *k == Kind::Package));
        assert_eq!(
            all[first_package],
            Status {
                kind: Kind::Package,
                subject: "dpkg-exec".into(),
                percent: 0.0,
                what: "Running dpkg".into()
            }
        );
        let unpacking = all
            .iter()
            .find(|s| s.what.starts_with("Unpacking"))
            .unwrap();
        assert_eq!(
            (unpacking.subject.as_str(), unpacking.percent),
            ("bc", 20.0)
        );
        assert_eq!(all.last().unwrap().what, "Installed bc (amd64)");
        assert_eq!(all.last().unwrap().percent, 80.0);
        // Every other line is apt's or dpkg's: none looks like a status.
        let noise: Vec<&str> = text.lines().filter(|l| parse(l).is_none()).collect();
        assert_eq!(noise.len(), text.lines().count() - all.len());
        assert!(noise.iter().any(|l| l.starts_with("Setting up bc")));
        assert!(noise.iter().all(|l| !l.starts_with("pmstatus:")));
    }

    /// `apt-get download -q -o APT::Status-Fd=1 bc cpio` (apt 2.6.1): the
    /// percent counts bytes over both files.
    #[test]
    fn a_download_counts_files_and_bytes() {
        let all = statuses(&sample("download-bc-cpio.status"));
        assert!(all.iter().all(|s| s.kind == Kind::Download));
        let last = all.last().unwrap();
        assert_eq!((last.subject.as_str(), last.percent), ("2", 100.0));
        assert_eq!(file_count(&last.what), Some((2, 2)));
        let percents: Vec<f64> = all.iter().map(|s| s.percent).collect();
        assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
        assert!(percents.contains(&34.7314));
    }

    #[test]
    fn colons_in_names_and_descriptions_stay_there() {
        let s = parse("pmstatus:libc6:arm64:12.5000:Unpacking libc6:arm64 (arm64)").unwrap();
        assert_eq!(s.subject, "libc6:arm64");
        assert_eq!(s.percent, 12.5);
        assert_eq!(s.what, "Unpacking libc6:arm64 (arm64)");
        let e = parse("pmerror:/var/cache/apt/archives/x.deb:50.0000:trying to overwrite '/a', which is also in package y").unwrap();
        assert_eq!(e.kind, Kind::Error);
        assert_eq!(e.subject, "/var/cache/apt/archives/x.deb");
        for noise in [
            "Get:1 http://deb.debian.org/debian bookworm/main amd64 bc amd64 1.07.1-3+b1 [110 kB]",
            "pmstatus:bc:Unpacking",
            "dlstatus",
            "",
        ] {
            assert_eq!(parse(noise), None, "{noise}");
        }
        assert_eq!(file_count("Retrieving file 3 of 12"), Some((3, 12)));
        assert_eq!(file_count("Running dpkg"), None);
    }
}

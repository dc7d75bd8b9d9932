//! Builds on a distcc farm: the CC form Kbuild needs, -j scaled to the
//! farm, ccache in front (CCACHE_PREFIX=distcc), and how many jobs really
//! ran remotely, read from distcc's own log.

use std::{collections::BTreeMap, fmt, path::Path};

use anyhow::{bail, Result};

use crate::study::toolchain::Toolchain;

/// A DISTCC_HOSTS list and the compile slots it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Farm {
    pub hosts: String,
    pub slots: usize,
}

/// Parses a DISTCC_HOSTS value: `HOST[:PORT][/LIMIT][,OPTIONS]` words.
/// distcc's own default limit is 4 a host, 2 for localhost.
pub fn parse_hosts(hosts: &str) -> Result<Farm> {
    let mut slots = 0;
    for word in hosts.split_whitespace() {
        if word.starts_with("--") {
            continue;
        }
        if word.starts_with('+') {
            bail!(
                "distcc host `{word}`: zeroconf and pump hosts are not supported; list the hosts"
            );
        }
        let spec = word.split(',').next().unwrap_or(word);
        let (host, limit) = match spec.split_once('/') {
            Some((host, limit)) => {
                let n: usize = limit.parse().map_err(|_| {
                    anyhow::anyhow!("distcc host `{word}`: the limit after / is not a number")
                })?;
                (host, n)
            }
            None => (spec, if spec.starts_with("localhost") { 2 } else { 4 }),
        };
        if host.is_empty() {
            bail!("distcc host `{word}` names no host");
        }
        slots += limit;
    }
    if slots == 0 {
        bail!("no distcc hosts in \"{hosts}\"; give e.g. --distcc '10.0.0.2/8 10.0.0.3/8'");
    }
    Ok(Farm {
        hosts: hosts.trim().to_string(),
        slots,
    })
}

impl Farm {
    /// -j for the farm: its slots, plus the local CPUs that preprocess and link.
    pub fn jobs(&self, local_cpus: usize) -> usize {
        self.slots + local_cpus
    }
}

/// What a distcc build changes: environment and CC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistccSetup {
    pub env: Vec<(String, String)>,
    /// `CC=` for make; None when ccache (through its masquerade) calls distcc.
    pub cc: Option<String>,
}

/// Newer kernels need `CC="distcc gcc"` spelled out (distcc issue #358):
/// a bare `distcc` is not recognised as a compiler by Kbuild's checks. With
/// ccache in front, CC stays `gcc` and ccache hands misses to distcc.
pub fn setup(farm: &Farm, ccache: bool, compiler: Toolchain, log: &Path) -> DistccSetup {
    let mut env = vec![
        ("DISTCC_HOSTS".to_string(), farm.hosts.clone()),
        ("DISTCC_LOG".to_string(), log.display().to_string()),
    ];
    let cc = if ccache {
        env.push(("CCACHE_PREFIX".to_string(), "distcc".to_string()));
        None
    } else {
        Some(format!("distcc {}", compiler.name()))
    };
    DistccSetup { env, cc }
}

/// Jobs by where they ran, from the client log's `compile FILE on HOST
/// completed ok` lines (distcc logs them at every verbosity).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DistccStats {
    pub by_host: BTreeMap<String, usize>,
}

impl DistccStats {
    pub fn parse(log: &str) -> DistccStats {
        let mut stats = DistccStats::default();
        for line in log.lines() {
            let Some(rest) = line.split("] compile ").nth(1) else {
                continue;
            };
            let Some((_, host)) = rest.rsplit_once(" on ") else {
                continue;
            };
            let Some(host) = host.strip_suffix(" completed ok") else {
                continue;
            };
            *stats.by_host.entry(host.to_string()).or_default() += 1;
        }
        stats
    }

    pub fn remote(&self) -> usize {
        self.by_host
            .iter()
            .filter(|(h, _)| !h.starts_with("localhost"))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn local(&self) -> usize {
        self.by_host
            .iter()
            .filter(|(h, _)| h.starts_with("localhost"))
            .map(|(_, n)| n)
            .sum()
    }
}

impl fmt::Display for DistccStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .by_host
            .iter()
            .map(|(h, n)| format!("{h}: {n}"))
            .collect();
        write!(
            f,
            "distcc: {} compiles ran remotely, {} locally ({}; from distcc's log)",
            self.remote(),
            self.local(),
            hosts.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_slots() {
        assert_eq!(
            parse_hosts("10.0.0.2/8 10.0.0.3:3633/6,lzo --randomize")
                .unwrap()
                .slots,
            14
        );
        assert_eq!(parse_hosts("buildbox localhost").unwrap().slots, 6);
        assert_eq!(
            parse_hosts("  ").unwrap_err().to_string(),
            "no distcc hosts in \"  \"; give e.g. --distcc '10.0.0.2/8 10.0.0.3/8'"
        );
        assert!(parse_hosts("+zeroconf").is_err());
        assert!(parse_hosts("host/x")
            .unwrap_err()
            .to_string()
            .contains("not a number"));
    }

    #[test]
    fn env_and_cc_with_and_without_ccache() {
        let farm = parse_hosts("127.0.0.1:3632/2").unwrap();
        let log = Path::new("/b/.study/distcc.log");
        let plain = setup(&farm, false, Toolchain::GCC, log);
        assert_eq!(
            plain,
            DistccSetup {
                env: vec![
                    ("DISTCC_HOSTS".into(), "127.0.0.1:3632/2".into()),
                    ("DISTCC_LOG".into(), "/b/.study/distcc.log".into()),
                ],
                cc: Some("distcc gcc".into()),
            }
        );
        assert_eq!(farm.jobs(2), 4);
        let cached = setup(&farm, true, Toolchain::CLANG, log);
        assert_eq!(cached.cc, None);
        assert_eq!(cached.env[2], ("CCACHE_PREFIX".into(), "distcc".into()));
        assert_eq!(
            setup(&farm, false, Toolchain::CLANG, log).cc.as_deref(),
            Some("distcc clang")
        );
    }

    #[test]
    fn stats_from_the_client_log() {
        let log = "distcc[14688] compile from a.c to a.o\n\
                   distcc[14688] cpp a.c on localhost completed ok\n\
                   distcc[14688] compile a.c on 127.0.0.1:36321/2 completed ok\n\
                   distcc[14690] compile b.c on 127.0.0.1:36321/2 completed ok\n\
                   distcc[14691] compile c.c on localhost completed ok\n";
        let stats = DistccStats::parse(log);
        assert_eq!((stats.remote(), stats.local()), (2, 1));
        assert_eq!(
            stats.to_string(),
            "distcc: 2 compiles ran remotely, 1 locally (127.0.0.1:36321/2: 2, localhost: 1; from distcc's log)"
        );
    }
}

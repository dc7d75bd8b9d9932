//! packetdrill's results: one line per script and IP version from the
//! guest's `results` file and logs, the line of packetdrill's own output
//! that says why a run failed, and the report (KTAP, a summary table, JSON).

use std::time::Duration;

use serde::Serialize;

use crate::study::packetdrill_suite::Skew;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    NotOk,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub script: String,
    /// "ipv4" or "ipv6".
    pub ip: String,
    pub verdict: Verdict,
    pub seconds: f64,
    /// packetdrill's own words when it failed, or why the run was skipped.
    pub message: Option<String>,
}

/// Parses the guest's `results` lines (`N\tVERSION\tSTATUS\tMS\tSCRIPT`),
/// reading each run's log through `log_of(N)`.
pub fn parse_results(text: &str, log_of: &dyn Fn(&str) -> String) -> Vec<Outcome> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(5, '\t');
            let (n, version, status, ms, script) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            let status: i32 = status.parse().ok()?;
            let verdict = if status == 0 {
                Verdict::Ok
            } else {
                Verdict::NotOk
            };
            let message = (status != 0).then(|| {
                failure_line(&log_of(n))
                    .unwrap_or_else(|| format!("packetdrill exited with status {status}"))
            });
            Some(Outcome {
                script: script.to_string(),
                ip: format!("ipv{version}"),
                verdict,
                seconds: ms.parse::<f64>().unwrap_or(0.0) / 1000.0,
                message,
            })
        })
        .collect()
}

/// The line of packetdrill's output that says why a run failed: its
/// `FILE:LINE: ... error ...` report, an assertion, else the last line.
pub fn failure_line(log: &str) -> Option<String> {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.contains("error") || l.starts_with("assertion "))
        .or(lines.last())
        .map(|l| l.to_string())
}

/// KTAP: a plan, one line per run, and the totals.
pub fn ktap(outcomes: &[Outcome]) -> String {
    let mut out = format!("TAP version 13\n1..{}\n", outcomes.len());
    for (i, o) in outcomes.iter().enumerate() {
        let name = format!("{} {}", o.script, o.ip);
        let line = match o.verdict {
            Verdict::Ok => format!("ok {} {name} # {:.1} s", i + 1, o.seconds),
            Verdict::NotOk => format!(
                "not ok {} {name} # {:.1} s: {}",
                i + 1,
                o.seconds,
                o.message.as_deref().unwrap_or("")
            ),
            Verdict::Skip => format!(
                "ok {} {name} # SKIP {}",
                i + 1,
                o.message.as_deref().unwrap_or("")
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    let count = |v| outcomes.iter().filter(|o| o.verdict == v).count();
    out.push_str(&format!(
        "# totals: pass:{} fail:{} skip:{}\n",
        count(Verdict::Ok),
        count(Verdict::NotOk),
        count(Verdict::Skip)
    ));
    out
}

/// One line per kind of failure that is packetdrill's own (`skews`), with
/// how many runs it failed and the fix; the runs still count as failures.
pub fn skew_notes(outcomes: &[Outcome], skews: &[Skew]) -> String {
    let mut out = String::new();
    for skew in skews {
        let runs = outcomes
            .iter()
            .filter(|o| o.verdict == Verdict::NotOk)
            .filter(|o| o.message.as_deref().is_some_and(|m| m.contains(&skew.says)))
            .count();
        if runs > 0 {
            out.push_str(&format!(
                "note: {runs} run(s) failed in packetdrill's own code, `{}`: {}\n",
                skew.says, skew.why
            ));
        }
    }
    out
}

/// Scripts down, IP versions across.
pub fn summary(outcomes: &[Outcome], elapsed: Duration) -> String {
    let mut scripts: Vec<&str> = outcomes.iter().map(|o| o.script.as_str()).collect();
    scripts.dedup();
    let name = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let width = scripts
        .iter()
        .map(|s| name(s).len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!("{:<width$} {:>8} {:>8}\n", "script", "ipv4", "ipv6");
    for script in scripts {
        let cell = |ip: &str| {
            outcomes
                .iter()
                .find(|o| o.script == script && o.ip == ip)
                .map_or("-".to_string(), |o| match o.verdict {
                    Verdict::Ok => "ok".into(),
                    Verdict::NotOk => "FAIL".into(),
                    Verdict::Skip => "skip".into(),
                })
        };
        out.push_str(&format!(
            "{:<width$} {:>8} {:>8}\n",
            name(script),
            cell("ipv4"),
            cell("ipv6")
        ));
    }
    let failed = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::NotOk)
        .count();
    out.push_str(&format!(
        "{} run(s), {} passed, {failed} failed, in {:.1} s\n",
        outcomes.len(),
        outcomes.iter().filter(|o| o.verdict == Verdict::Ok).count(),
        elapsed.as_secs_f64()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_packetdrills_own_line() {
        // packetdrill's formats: `FILE:LINE: <kind> error ...` from its
        // script checks, and an assert()'s message (measured, with a
        // packetdrill newer than the kernel's tcp_info).
        let logs = |n: &str| {
            match n {
            "2" => "tcp_inq_client.pkt:25: error handling packet: live packet field tcp_ack: expected: 1 (0x1) vs actual: 2 (0x2)\n".to_string(),
            "3" => "\nassertion len >= sizeof(struct _tcp_info) failed at code.c line 148\n".to_string(),
            "4" => "tcp_zerocopy_basic.pkt:30: timing error: expected system call return at 0.030000 sec but happened at 0.171004 sec; tolerance 0.004000 sec\n".to_string(),
            _ => String::new(),
        }
        };
        let results = "1\t4\t0\t3120\t/s/tcp_inq_client.pkt\n\
                       2\t6\t1\t2900\t/s/tcp_inq_client.pkt\n\
                       3\t4\t134\t800\t/s/tcp_slow_start_slow-start-ack-per-1pkt.pkt\n\
                       4\t6\t1\t1000\t/s/tcp_zerocopy_basic.pkt\n\
                       5\t6\t1\t10\t/s/silent.pkt\n";
        let outcomes = parse_results(results, &logs);
        expect_test::expect![[r#"
            TAP version 13
            1..5
            ok 1 /s/tcp_inq_client.pkt ipv4 # 3.1 s
            not ok 2 /s/tcp_inq_client.pkt ipv6 # 2.9 s: tcp_inq_client.pkt:25: error handling packet: live packet field tcp_ack: expected: 1 (0x1) vs actual: 2 (0x2)
            not ok 3 /s/tcp_slow_start_slow-start-ack-per-1pkt.pkt ipv4 # 0.8 s: assertion len >= sizeof(struct _tcp_info) failed at code.c line 148
            not ok 4 /s/tcp_zerocopy_basic.pkt ipv6 # 1.0 s: tcp_zerocopy_basic.pkt:30: timing error: expected system call return at 0.030000 sec but happened at 0.171004 sec; tolerance 0.004000 sec
            not ok 5 /s/silent.pkt ipv6 # 0.0 s: packetdrill exited with status 1
            # totals: pass:1 fail:4 skip:0
        "#]]
        .assert_eq(&ktap(&outcomes));
        expect_test::expect![[r#"
            script                                         ipv4     ipv6
            tcp_inq_client.pkt                               ok     FAIL
            tcp_slow_start_slow-start-ack-per-1pkt.pkt     FAIL        -
            tcp_zerocopy_basic.pkt                            -     FAIL
            silent.pkt                                        -     FAIL
            5 run(s), 1 passed, 4 failed, in 7.8 s
        "#]]
        .assert_eq(&summary(&outcomes, Duration::from_millis(7830)));
    }

    /// A packetdrill newer than the kernel fails in its own assertion: the
    /// run stays a failure, and one line says why and what to do.
    #[test]
    fn a_packetdrill_of_another_era_is_named_once() {
        let skews = [Skew {
            says: "assertion len >= sizeof(struct _tcp_info) failed".into(),
            why: "newer than the kernel".into(),
        }];
        let log = "assertion len >= sizeof(struct _tcp_info) failed at code.c line 148\n";
        let results = "1\t4\t134\t800\t/s/a.pkt\n2\t6\t134\t800\t/s/a.pkt\n3\t4\t1\t5\t/s/b.pkt\n";
        let outcomes = parse_results(results, &|n| {
            if n == "3" {
                String::new()
            } else {
                log.into()
            }
        });
        assert_eq!(
            skew_notes(&outcomes, &skews),
            "note: 2 run(s) failed in packetdrill's own code, `assertion len >= sizeof(struct _tcp_info) failed`: newer than the kernel\n"
        );
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| o.verdict == Verdict::NotOk)
                .count(),
            3
        );
        assert_eq!(skew_notes(&outcomes[2..], &skews), "");
    }

    #[test]
    fn a_malformed_results_line_is_left_out() {
        assert!(parse_results("garbage\n1\t4\tx\t1\t/s.pkt\n", &|_| String::new()).is_empty());
    }
}

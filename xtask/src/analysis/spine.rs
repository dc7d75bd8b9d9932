//! The spine of a traced call: from the root down to the first call in the
//! lowest layer reached, one line per layer, each function with its call
//! count and total time.

use std::collections::HashMap;

use crate::{analysis::ftrace, study::layers::Layers};

/// The calls from `root` down to the first call in the lowest layer reached
/// (interrupts skipped), grouped into one line per layer along the way:
/// transport → network → device → driver, as one reads a send path.
pub fn spine<'a>(
    root: &'a ftrace::Call,
    layer_of: &dyn Fn(&str) -> Option<String>,
    layers: &Layers,
) -> Vec<(String, Vec<&'a ftrace::Call>)> {
    fn deepest<'a>(
        call: &'a ftrace::Call,
        path: &mut Vec<&'a ftrace::Call>,
        best: &mut Option<(usize, Vec<&'a ftrace::Call>)>,
        rank: &dyn Fn(&str) -> Option<usize>,
    ) {
        path.push(call);
        if let Some(r) = rank(&call.name) {
            if best.as_ref().is_none_or(|(b, _)| r > *b) {
                *best = Some((r, path.clone()));
            }
        }
        for child in call.children.iter().filter(|c| !c.in_irq) {
            deepest(child, path, best, rank);
        }
        path.pop();
    }
    let rank = |name: &str| layer_of(name).map(|l| layers.rank(&l));
    let mut best = None;
    deepest(root, &mut Vec::new(), &mut best, &rank);
    let mut lines: Vec<(String, Vec<&ftrace::Call>)> = Vec::new();
    for call in best.map(|(_, path)| path).unwrap_or_default() {
        let Some(layer) = layer_of(&call.name) else {
            continue;
        };
        match lines.last_mut() {
            Some((last, calls)) if *last == layer => calls.push(call),
            _ => lines.push((layer, vec![call])),
        }
    }
    lines
}

/// One line per layer; each function with how often it was called below
/// the root and its total time there (repeated calls folded).
pub fn render_spine(
    lines: &[(String, Vec<&ftrace::Call>)],
    totals: &HashMap<String, (usize, Option<f64>)>,
) -> String {
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (layer, calls) in lines {
        let names: Vec<String> = calls
            .iter()
            .map(|c| {
                let (count, total) = totals.get(&c.name).copied().unwrap_or((1, c.duration_us));
                let times = if count > 1 {
                    format!(" ×{count}")
                } else {
                    String::new()
                };
                match total {
                    Some(us) => format!("{}{times} {us:.1}us", c.name),
                    None => format!("{}{times}", c.name),
                }
            })
            .collect();
        out.push_str(&format!("{layer:<width$}  {}\n", names.join(" → ")));
    }
    out
}

/// Calls and total time per function below `root`, from the layer chain.
pub fn totals(
    root: &ftrace::Call,
    layer_of: &dyn Fn(&str) -> Option<String>,
) -> HashMap<String, (usize, Option<f64>)> {
    ftrace::chain(root, layer_of)
        .into_iter()
        .flat_map(|line| line.functions)
        .map(|f| (f.name, (f.calls, f.total_us)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::analysis::ftrace::Trace;

    #[test]
    fn spine_follows_the_send_path_to_the_driver() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let layers = Layers::load(&crate::study::shipped()).unwrap();
        let text =
            std::fs::read_to_string(root.join("xtask/test_data/ftrace/tcp_sendmsg.txt")).unwrap();
        let trace = Trace::parse(&text);
        let first = trace.find("tcp_sendmsg")[0];
        // The test maps names to files the way addr2line would.
        let source = |name: &str| -> Option<String> {
            let file = match name {
                n if n.starts_with("tcp_") || n.starts_with("__tcp_") => "net/ipv4/tcp_output.c",
                n if n.starts_with("ip_") || n.starts_with("__ip_") => "net/ipv4/ip_output.c",
                n if n.contains("dev_") || n.starts_with("xmit_one") => "net/core/dev.c",
                "loopback_xmit" => "drivers/net/loopback.c",
                _ => return None,
            };
            layers.layer_of(file).map(String::from)
        };
        expect_test::expect![[r#"
            transport  tcp_sendmsg 124.0us → tcp_sendmsg_locked 120.3us → tcp_push 84.9us → __tcp_push_pending_frames 84.5us → tcp_write_xmit 83.9us → __tcp_transmit_skb 76.6us
            network    ip_queue_xmit 69.6us → __ip_queue_xmit 69.3us → ip_local_out 67.3us → ip_output 66.0us → ip_finish_output 65.4us → __ip_finish_output 65.0us → ip_finish_output2 64.3us
            device     __dev_queue_xmit 62.1us → dev_hard_start_xmit 5.6us
            driver     loopback_xmit 4.7us
        "#]].assert_eq(&render_spine(&spine(first, &source, &layers), &totals(first, &source)));
    }

    /// A trace captured from our own tiny kernel (`cargo xtask trace
    /// tcp_sendmsg -o ... -- tcp-echo -4 -n 1`, TCG), not a hand-made one.
    #[test]
    fn captured_trace_parses_whole_and_reaches_the_driver() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(
            root.join("xtask/test_data/ftrace/captured-tiny-6.12.117-tcp_sendmsg.txt"),
        )
        .unwrap();
        let trace = Trace::parse(&text);
        assert!(
            trace.skipped.is_empty(),
            "{:?}",
            &trace.skipped[..trace.skipped.len().min(3)]
        );
        let calls = trace.find("tcp_sendmsg");
        assert_eq!(calls.len(), 2, "the client's send and the echo's");
        assert!(calls
            .iter()
            .all(|c| c.task.as_deref() == Some("tcp-ech") && c.pid.is_some()));
        let layers = Layers::load(&crate::study::shipped()).unwrap();
        // Layers by name here; the command maps names through addr2line.
        let source = |name: &str| -> Option<String> {
            let file = match name {
                "tcp_sendmsg" | "tcp_sendmsg_locked" | "tcp_push" => "net/ipv4/tcp.c",
                n if n.starts_with("__tcp_") || n.starts_with("tcp_") => "net/ipv4/tcp_output.c",
                n if n.contains("ip_") => "net/ipv4/ip_output.c",
                "__dev_queue_xmit" | "dev_hard_start_xmit" | "xmit_one" => "net/core/dev.c",
                "loopback_xmit" => "drivers/net/loopback.c",
                _ => return None,
            };
            layers.layer_of(file).map(String::from)
        };
        let spine = spine(calls[0], &source, &layers);
        let names: Vec<Vec<&str>> = spine
            .iter()
            .map(|(_, calls)| calls.iter().map(|c| c.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            [
                vec![
                    "tcp_sendmsg",
                    "tcp_sendmsg_locked",
                    "tcp_push",
                    "__tcp_push_pending_frames",
                    "tcp_write_xmit",
                    "tcp_transmit_skb",
                    "__tcp_transmit_skb"
                ],
                vec![
                    "ip_queue_xmit",
                    "__ip_queue_xmit",
                    "ip_local_out",
                    "ip_output",
                    "ip_finish_output",
                    "__ip_finish_output",
                    "ip_finish_output2"
                ],
                vec!["__dev_queue_xmit", "dev_hard_start_xmit", "xmit_one"],
                vec!["loopback_xmit"],
            ]
        );
    }
}

//! The analyses on top of the parser: the chain by layer and the folded
//! stacks.

use super::{one, sample};
use crate::analysis::ftrace::{chain::*, model::*};
use expect_test::expect;

fn layer(name: &str) -> Option<String> {
    let rules = [
        ("transport", &["tcp_", "__tcp_", "inet_", "__inet_"][..]),
        ("network", &["ip_", "__ip_", "ipv4_"]),
        (
            "device",
            &["dev_", "__dev_", "netdev_", "netif_", "__netif_"],
        ),
        ("driver", &["loopback_"]),
        (
            "socket",
            &["lock_sock", "release_sock", "sk_", "__sk_", "sock_"],
        ),
        ("timer", &["hrtimer_"]),
    ];
    let (layer, _) = rules
        .iter()
        .find(|(_, prefixes)| prefixes.iter().any(|p| name.starts_with(p)))?;
    Some(layer.to_string())
}

#[test]
fn ftrace_chain() {
    let trace = Trace::parse(&sample("tcp_sendmsg.txt"));
    let lines = chain(one(&trace, "tcp_sendmsg"), &layer);
    assert_eq!(lines.len(), 5, "no timer layer: interrupts are skipped");
    let transport = &lines[0].functions;
    let push = transport.iter().find(|f| f.name == "tcp_push").unwrap();
    assert_eq!((push.calls, push.total_us), (1, Some(84.935)));
    let mss = transport
        .iter()
        .find(|f| f.name == "tcp_mstamp_refresh")
        .unwrap();
    assert_eq!(mss.calls, 2);
    expect![[r#"
            transport  tcp_sendmsg 124us → tcp_sendmsg_locked 120us → tcp_rate_check_app_limited 0.14us → tcp_send_mss 1.35us → tcp_current_mss 0.88us → tcp_established_options ×2 0.26us → tcp_stream_alloc_skb 6.43us → tcp_skb_entail 0.60us → tcp_chrono_start 0.10us → tcp_wmem_schedule 0.13us → tcp_push 84.9us → __tcp_push_pending_frames 84.5us → tcp_write_xmit 83.9us → tcp_mstamp_refresh ×2 1.16us → tcp_init_tso_segs 0.12us → tcp_small_queue_check.constprop.0 0.15us → __tcp_transmit_skb 76.6us → __tcp_select_window 0.20us → tcp_options_write 0.12us → tcp_v4_send_check 0.45us → __tcp_v4_send_check 0.17us → tcp_v4_early_demux 3.65us → __inet_lookup_established 2.28us → inet_ehashfn 0.32us → tcp_v4_rcv 28.8us → tcp_v4_fill_cb 0.14us → tcp_v4_do_rcv 21.7us → tcp_rcv_established 20.9us → tcp_queue_rcv 0.48us → tcp_event_data_recv 0.69us → __tcp_ack_snd_check 3.15us → tcp_send_delayed_ack 2.54us → tcp_data_ready 12.2us → tcp_event_new_data_sent 2.83us → tcp_rearm_rto 1.81us → tcp_chrono_stop 0.13us → tcp_schedule_loss_probe 0.71us → tcp_release_cb 0.14us
            socket     lock_sock_nested 0.95us → __sk_mem_schedule 1.70us → __sk_mem_raise_allocated 1.23us → __sk_dst_check 0.43us → sk_filter_trim_cap 1.24us → sk_reset_timer ×2 2.96us → sock_def_readable 11.7us → release_sock 1.18us
            network    ipv4_mtu ×2 0.24us → ip_queue_xmit 69.6us → __ip_queue_xmit 69.3us → ipv4_dst_check ×2 0.20us → ip_local_out 67.3us → __ip_local_out 0.80us → ip_send_check 0.28us → ip_output 66.0us → ip_finish_output 65.4us → __ip_finish_output 65.0us → ip_finish_output2 64.3us → ip_rcv 39.0us → ip_rcv_core 1.03us → ip_rcv_finish 36.9us → ip_rcv_finish_core.constprop.0 5.18us → ip_local_deliver 31.1us → ip_local_deliver_finish 30.4us → ip_protocol_deliver_rcu 29.9us
            device     __dev_queue_xmit 62.1us → netdev_core_pick_tx 0.23us → netif_skb_features 0.76us → dev_hard_start_xmit 5.56us → __netif_rx 3.33us → netif_rx_internal 2.93us → __netif_receive_skb 41.5us → __netif_receive_skb_one_core 41.0us → __netif_receive_skb_core.constprop.0 1.18us
            driver     loopback_xmit 4.68us
        "#]]
        .assert_eq(&render_chain(&lines));
}

#[test]
fn ftrace_chain_folds_recursion() {
    let leaf = |name: &str, us| Call {
        name: name.into(),
        duration_us: Some(us),
        ..Call::default()
    };
    let mut inner = leaf("f", 2.0);
    inner.children = vec![leaf("g", 0.5)];
    let mut outer = leaf("f", 5.0);
    outer.children = vec![leaf("g", 1.0), inner, leaf("skipped", 1.0)];
    let lines = chain(&outer, &|n| (n != "skipped").then(|| "x".to_string()));
    assert_eq!(render_chain(&lines), "x  f ×2 5.00us → g ×2 1.50us\n");
}

#[test]
fn ftrace_folded() {
    let trace = Trace::parse(&sample("two_cpus.txt"));
    expect![[r#"
            tcp_recvmsg 560
            tcp_recvmsg;release_sock 250
            tcp_recvmsg;release_sock;_raw_spin_lock_bh 120
            tcp_recvmsg;release_sock;_raw_spin_unlock_bh 140
            tcp_recvmsg;release_sock;tcp_release_cb 130
            tcp_recvmsg;tcp_recvmsg_locked 1200
            tcp_recvmsg;tcp_recvmsg_locked;__kfree_skb 200
            tcp_recvmsg;tcp_recvmsg_locked;__kfree_skb;kfree_skbmem 350
            tcp_recvmsg;tcp_recvmsg_locked;__kfree_skb;skb_release_data 600
            tcp_recvmsg;tcp_recvmsg_locked;skb_copy_datagram_iter 400
            tcp_recvmsg;tcp_recvmsg_locked;skb_copy_datagram_iter;__skb_datagram_iter 800
            tcp_recvmsg;tcp_recvmsg_locked;skb_copy_datagram_iter;__skb_datagram_iter;simple_copy_to_iter 380
            tcp_recvmsg;tcp_recvmsg_locked;skb_copy_datagram_iter;__skb_datagram_iter;simple_copy_to_iter;_copy_to_iter 2200
            tcp_recvmsg;tcp_recvmsg_locked;tcp_cleanup_rbuf 280
            tcp_recvmsg;tcp_recvmsg_locked;tcp_rcv_space_adjust 250
            tcp_sendmsg 400
            tcp_sendmsg;lock_sock_nested 290
            tcp_sendmsg;lock_sock_nested;__cond_resched 110
            tcp_sendmsg;lock_sock_nested;_raw_spin_lock_bh 120
            tcp_sendmsg;lock_sock_nested;_raw_spin_unlock_bh 130
            tcp_sendmsg;release_sock 280
            tcp_sendmsg;release_sock;_raw_spin_lock_bh 120
            tcp_sendmsg;release_sock;_raw_spin_unlock_bh 140
            tcp_sendmsg;release_sock;tcp_release_cb 130
            tcp_sendmsg;tcp_sendmsg_locked 1500
            tcp_sendmsg;tcp_sendmsg_locked;__sysvec_apic_timer_interrupt 400
            tcp_sendmsg;tcp_sendmsg_locked;__sysvec_apic_timer_interrupt;hrtimer_interrupt 900
            tcp_sendmsg;tcp_sendmsg_locked;__sysvec_apic_timer_interrupt;hrtimer_interrupt;__hrtimer_run_queues 400
            tcp_sendmsg;tcp_sendmsg_locked;__sysvec_apic_timer_interrupt;hrtimer_interrupt;__hrtimer_run_queues;tick_nohz_handler 3500
            tcp_sendmsg;tcp_sendmsg_locked;__sysvec_apic_timer_interrupt;hrtimer_interrupt;_raw_spin_lock_irqsave 120
            tcp_sendmsg;tcp_sendmsg_locked;__sysvec_apic_timer_interrupt;hrtimer_interrupt;_raw_spin_unlock_irqrestore 115
            tcp_sendmsg;tcp_sendmsg_locked;__sysvec_apic_timer_interrupt;hrtimer_interrupt;ktime_get_update_offsets_now 200
            tcp_sendmsg;tcp_sendmsg_locked;irq_enter_rcu 310
            tcp_sendmsg;tcp_sendmsg_locked;irq_exit_rcu 200
            tcp_sendmsg;tcp_sendmsg_locked;irq_exit_rcu;idle_cpu 100
            tcp_sendmsg;tcp_sendmsg_locked;tcp_push 150
            tcp_sendmsg;tcp_sendmsg_locked;tcp_push;__tcp_push_pending_frames 200
            tcp_sendmsg;tcp_sendmsg_locked;tcp_push;__tcp_push_pending_frames;tcp_write_xmit 900
            tcp_sendmsg;tcp_sendmsg_locked;tcp_push;__tcp_push_pending_frames;tcp_write_xmit;__tcp_transmit_skb 1200
            tcp_sendmsg;tcp_sendmsg_locked;tcp_push;__tcp_push_pending_frames;tcp_write_xmit;__tcp_transmit_skb;ip_queue_xmit 5400
            tcp_sendmsg;tcp_sendmsg_locked;tcp_rate_check_app_limited 255
            tcp_sendmsg;tcp_sendmsg_locked;tcp_send_mss 200
            tcp_sendmsg;tcp_sendmsg_locked;tcp_send_mss;tcp_current_mss 240
            tcp_sendmsg;tcp_sendmsg_locked;tcp_send_mss;tcp_current_mss;ipv4_mtu 110
            tcp_sendmsg;tcp_sendmsg_locked;tcp_send_mss;tcp_current_mss;tcp_established_options 120
        "#]]
        .assert_eq(&trace.folded());
}

#[test]
fn ftrace_folded_sums_to_root_durations() {
    let trace = Trace::parse(&sample("tcp_sendmsg.txt"));
    let total: u64 = trace
        .folded()
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 123_990);
}

#[test]
fn ftrace_folded_counts_without_durations() {
    let text = " 0)  f() {\n 0)    g();\n 0)    g();\n 0)  }\n 0)  g();\n";
    let trace = Trace::parse(text);
    assert_eq!(trace.skipped, vec![]);
    assert_eq!(trace.folded(), "f 1\nf;g 2\ng 1\n");
}

/// The chain as data, one line per layer, for the snapshots below: each
/// function with its call count and total time.
fn render_chain(lines: &[ChainLine]) -> String {
    let width = lines.iter().map(|l| l.layer.chars().count()).max();
    let width = width.unwrap_or(0);
    let label = |f: &ChainFn| {
        let mut label = f.name.clone();
        if f.calls > 1 {
            label += &format!(" ×{}", f.calls);
        }
        if let Some(us) = f.total_us {
            label += &match us {
                us if us >= 100.0 => format!(" {us:.0}us"),
                us if us >= 10.0 => format!(" {us:.1}us"),
                us => format!(" {us:.2}us"),
            };
        }
        label
    };
    lines
        .iter()
        .map(|l| {
            let funcs: Vec<String> = l.functions.iter().map(label).collect();
            format!("{:<width$}  {}\n", l.layer, funcs.join(" → "))
        })
        .collect()
}

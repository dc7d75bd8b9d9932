//! The parser and the analyses, on real traces under xtask/test_data/ftrace/.

use super::model::*;
use expect_test::{expect, Expect};

pub(super) fn sample(name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = dir.join("test_data/ftrace").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One line per call: indentation, name, flags.
fn outline(calls: &[Call]) -> String {
    let mut out = String::new();
    for call in calls {
        outline_call(call, 0, &mut out);
    }
    out
}

fn outline_call(call: &Call, indent: usize, out: &mut String) {
    out.push_str(&format!("{:indent$}{}", "", call.name));
    if call.in_irq {
        out.push_str(" [irq]");
    }
    if call.entry_missing {
        out.push_str(" [no entry]");
    }
    if call.duration_us.is_none() {
        out.push_str(" [no exit]");
    }
    out.push('\n');
    for child in &call.children {
        outline_call(child, indent + 2, out);
    }
}

pub(super) fn check_outline(calls: &[Call], expect: Expect) {
    expect.assert_eq(&outline(calls));
}

pub(super) fn one<'a>(trace: &'a Trace, name: &str) -> &'a Call {
    let found = trace.find(name);
    assert_eq!(found.len(), 1, "{name}");
    found[0]
}

#[test]
fn ftrace_tcp_sendmsg_tree() {
    let trace = Trace::parse(&sample("tcp_sendmsg.txt"));
    assert_eq!(trace.skipped, vec![]);
    assert_eq!(trace.cpus(), vec![Some(0)]);
    check_outline(
        &trace.roots,
        expect![[r#"
                tcp_sendmsg
                  lock_sock_nested
                    __cond_resched
                    _raw_spin_lock_bh
                    _raw_spin_unlock_bh
                  tcp_sendmsg_locked
                    tcp_rate_check_app_limited
                    tcp_send_mss
                      tcp_current_mss
                        ipv4_mtu
                        tcp_established_options
                    tcp_stream_alloc_skb
                      __alloc_skb
                        kmem_cache_alloc_node_noprof
                        kmalloc_reserve
                          __kmalloc_node_track_caller_noprof
                      __sk_mem_schedule
                        __sk_mem_raise_allocated
                          mem_cgroup_charge_skmem
                    tcp_skb_entail
                      tcp_chrono_start
                    skb_page_frag_refill
                    tcp_wmem_schedule
                    _copy_from_iter_nocache
                      smp_apic_timer_interrupt [irq]
                        irq_enter [irq]
                          rcu_irq_enter [irq]
                        hrtimer_interrupt [irq]
                          _raw_spin_lock_irqsave [irq]
                          ktime_get_update_offsets_now [irq]
                          __hrtimer_run_queues [irq]
                            __remove_hrtimer [irq]
                            _raw_spin_unlock_irqrestore [irq]
                            tick_sched_timer [irq]
                              ktime_get [irq]
                              tick_sched_do_timer [irq]
                              update_process_times [irq]
                                account_process_tick [irq]
                                hrtimer_run_queues [irq]
                                scheduler_tick [irq]
                                run_posix_cpu_timers [irq]
                            _raw_spin_lock_irq [irq]
                          __hrtimer_get_next_event [irq]
                          tick_program_event [irq]
                            clockevents_program_event [irq]
                              ktime_get [irq]
                              lapic_next_deadline [irq]
                          _raw_spin_unlock_irqrestore [irq]
                        irq_exit [irq]
                          idle_cpu [irq]
                          rcu_irq_exit [irq]
                    tcp_push
                      __tcp_push_pending_frames
                        tcp_write_xmit
                          tcp_mstamp_refresh
                            ktime_get
                          tcp_init_tso_segs
                          tcp_small_queue_check.constprop.0
                          __tcp_transmit_skb
                            skb_clone
                              kmem_cache_alloc_noprof
                              __skb_clone
                                __copy_skb_header
                            tcp_established_options
                            skb_push
                            __tcp_select_window
                            tcp_options_write
                            tcp_v4_send_check
                              __tcp_v4_send_check
                            ip_queue_xmit
                              __ip_queue_xmit
                                __sk_dst_check
                                  ipv4_dst_check
                                skb_push
                                ip_local_out
                                  __ip_local_out
                                    ip_send_check
                                  ip_output
                                    ip_finish_output
                                      __ip_finish_output
                                        ipv4_mtu
                                        ip_finish_output2
                                          __dev_queue_xmit
                                            netdev_core_pick_tx
                                            validate_xmit_skb
                                              netif_skb_features
                                                skb_network_protocol
                                            dev_hard_start_xmit
                                              loopback_xmit
                                                skb_clone_tx_timestamp
                                                __netif_rx
                                                  netif_rx_internal
                                                    enqueue_to_backlog
                                                      _raw_spin_lock_irqsave
                                                      napi_schedule_rps
                                                        __raise_softirq_irqoff
                                                      _raw_spin_unlock_irqrestore
                                            __local_bh_enable_ip
                                              do_softirq
                                                __do_softirq
                                                  handle_softirqs
                                                    net_rx_action
                                                      __napi_poll
                                                        process_backlog
                                                          _raw_spin_lock_irq
                                                          _raw_spin_unlock_irq
                                                          __netif_receive_skb
                                                            __netif_receive_skb_one_core
                                                              __netif_receive_skb_core.constprop.0
                                                              ip_rcv
                                                                ip_rcv_core
                                                                ip_rcv_finish
                                                                  ip_rcv_finish_core.constprop.0
                                                                    tcp_v4_early_demux
                                                                      __inet_lookup_established
                                                                        inet_ehashfn
                                                                      ipv4_dst_check
                                                                  ip_local_deliver
                                                                    ip_local_deliver_finish
                                                                      ip_protocol_deliver_rcu
                                                                        raw_local_deliver
                                                                        tcp_v4_rcv
                                                                          sk_filter_trim_cap
                                                                            security_sock_rcv_skb
                                                                          tcp_v4_fill_cb
                                                                          _raw_spin_lock
                                                                          tcp_v4_do_rcv
                                                                            tcp_rcv_established
                                                                              tcp_mstamp_refresh
                                                                                ktime_get
                                                                              tcp_queue_rcv
                                                                              tcp_event_data_recv
                                                                              __tcp_ack_snd_check
                                                                                tcp_send_delayed_ack
                                                                                  sk_reset_timer
                                                                                    mod_timer
                                                                              tcp_data_ready
                                                                                sock_def_readable
                                                                                  __wake_up_sync_key
                                                                                    __wake_up_common_lock
                                                                                      _raw_spin_lock_irqsave
                                                                                      __wake_up_common
                                                                                        autoremove_wake_function
                                                                                          default_wake_function
                                                                                            try_to_wake_up
                                                                                      _raw_spin_unlock_irqrestore
                                                                          _raw_spin_unlock
                                                          _raw_spin_lock_irq
                                                          _raw_spin_unlock_irq
                                                    rcu_softirq_qs
                          tcp_event_new_data_sent
                            tcp_rearm_rto
                              sk_reset_timer
                                mod_timer
                          tcp_chrono_stop
                          tcp_schedule_loss_probe
                  release_sock
                    _raw_spin_lock_bh
                    tcp_release_cb
                    _raw_spin_unlock_bh
            "#]],
    );
}

#[test]
fn ftrace_durations_and_marks() {
    let trace = Trace::parse(&sample("tcp_sendmsg.txt"));
    let root = one(&trace, "tcp_sendmsg");
    assert_eq!((root.duration_us, root.mark), (Some(123.990), Some('!')));
    assert_eq!(
        (root.cpu, root.pid, root.depth, root.line),
        (Some(0), None, 0, 5)
    );
    let locked = one(&trace, "tcp_sendmsg_locked");
    assert_eq!(
        (locked.duration_us, locked.mark),
        (Some(120.342), Some('!'))
    );
    let xmit = one(&trace, "__dev_queue_xmit");
    assert_eq!((xmit.duration_us, xmit.mark), (Some(62.112), Some('+')));
    assert_eq!(xmit.depth, 13);
    let alloc = one(&trace, "__alloc_skb");
    assert_eq!((alloc.duration_us, alloc.mark), (Some(3.733), None));
    let leaf = one(&trace, "__cond_resched");
    assert_eq!(
        (leaf.duration_us, leaf.mark, leaf.depth),
        (Some(0.118), None, 2)
    );
    assert!(leaf.children.is_empty());
    assert_eq!(trace.find("ktime_get").len(), 4);
    assert_eq!(trace.find("tcp_small_queue_check").len(), 1);
    let lock = one(&trace, "lock_sock_nested");
    assert!((lock.self_us().unwrap() - 0.530).abs() < 1e-9);
    assert_eq!(trace.calls().filter(|c| c.duration_us.is_none()).count(), 0);
}

#[test]
fn ftrace_irq_nesting() {
    let trace = Trace::parse(&sample("tcp_sendmsg.txt"));
    let copy = one(&trace, "_copy_from_iter_nocache");
    assert!(!copy.in_irq);
    assert_eq!(copy.children.len(), 1);
    let irq = &copy.children[0];
    assert_eq!(irq.name, "smp_apic_timer_interrupt");
    assert_eq!((irq.duration_us, irq.mark), (Some(17.142), Some('+')));
    assert!(irq.walk().all(|c| c.in_irq));
    assert_eq!(irq.walk().count(), 27);
    assert_eq!(trace.calls().filter(|c| c.in_irq).count(), 27);
    // The marker closes the interrupt: the next sibling is outside.
    assert!(!one(&trace, "tcp_push").in_irq);
}

/// Names, durations and depths, but not the columns that differ.
fn shape(call: &Call) -> Vec<(String, Option<f64>, usize, bool)> {
    call.walk()
        .map(|c| (c.name.clone(), c.duration_us, c.depth, c.in_irq))
        .collect()
}

#[test]
fn ftrace_abstime_proc_tail() {
    let trace = Trace::parse(&sample("abstime_proc.txt"));
    assert_eq!(trace.skipped, vec![]);
    assert_eq!(trace.roots.len(), 1);
    let root = &trace.roots[0];
    assert_eq!(root.name, "tcp_sendmsg");
    assert_eq!((root.cpu, root.pid), (Some(1), Some(73)));
    assert_eq!(root.task.as_deref(), Some("tcp-ech"));
    assert_eq!(root.abs_time, Some(1734.612345));
    assert_eq!(root.line, 6);
    assert!(root.walk().all(|c| c.pid == Some(73) && c.cpu == Some(1)));
    assert!(root.walk().all(|c| !c.entry_missing));
    let irq = one(&trace, "hrtimer_interrupt");
    assert_eq!(irq.abs_time, Some(1734.612363));
    let plain = Trace::parse(&sample("tcp_sendmsg.txt"));
    assert_eq!(shape(root), shape(&plain.roots[0]));
    assert_eq!(
        trace.markers,
        vec![Marker {
            line: 5,
            cpu: Some(1),
            pid: Some(73),
            text: "sending 5 bytes to 127.0.0.1:7".into(),
        }]
    );
}

#[test]
fn ftrace_two_cpus() {
    let trace = Trace::parse(&sample("two_cpus.txt"));
    assert_eq!(trace.skipped, vec![]);
    assert_eq!(trace.cpus(), vec![Some(0), Some(1)]);
    assert_eq!(
        trace.lost,
        vec![Lost {
            line: 12,
            cpu: 1,
            count: Some(184)
        }]
    );
    check_outline(
        &trace
            .forest(Some(0))
            .into_iter()
            .cloned()
            .collect::<Vec<_>>(),
        expect![[r#"
                tcp_sendmsg
                  lock_sock_nested
                    __cond_resched
                    _raw_spin_lock_bh
                    _raw_spin_unlock_bh
                  tcp_sendmsg_locked
                    tcp_rate_check_app_limited
                    tcp_send_mss
                      tcp_current_mss
                        ipv4_mtu
                        tcp_established_options
                    irq_enter_rcu [irq]
                    __sysvec_apic_timer_interrupt [irq]
                      hrtimer_interrupt [irq]
                        _raw_spin_lock_irqsave [irq]
                        ktime_get_update_offsets_now [irq]
                        __hrtimer_run_queues [irq]
                          tick_nohz_handler [irq]
                        _raw_spin_unlock_irqrestore [irq]
                    irq_exit_rcu [irq]
                      idle_cpu [irq]
                    tcp_push
                      __tcp_push_pending_frames
                        tcp_write_xmit
                          __tcp_transmit_skb
                            ip_queue_xmit
                  release_sock
                    _raw_spin_lock_bh
                    tcp_release_cb
                    _raw_spin_unlock_bh
            "#]],
    );
    let cpu1: Vec<Call> = trace.forest(Some(1)).into_iter().cloned().collect();
    check_outline(
        &cpu1,
        expect![[r#"
                tcp_recvmsg [no entry]
                  tcp_recvmsg_locked [no entry]
                    skb_copy_datagram_iter [no entry]
                      __skb_datagram_iter [no entry]
                        simple_copy_to_iter [no entry]
                          _copy_to_iter [no entry]
                        simple_copy_to_iter
                          _copy_to_iter
                    __kfree_skb
                      skb_release_data
                      kfree_skbmem
                    tcp_rcv_space_adjust
                    tcp_cleanup_rbuf
                  release_sock
                    _raw_spin_lock_bh
                    tcp_release_cb
                    _raw_spin_unlock_bh
                tcp_sendmsg [no exit]
                  lock_sock_nested
                  tcp_sendmsg_locked [no exit]
                    tcp_rate_check_app_limited
                    tcp_push [no exit]
                      __tcp_push_pending_frames [no exit]
            "#]],
    );
    // The first pid on CPU 1 is only known from the context switch.
    assert!(cpu1[0].walk().all(|c| c.pid == Some(74)));
    assert!(cpu1[1].walk().all(|c| c.pid == Some(75)));
    assert_eq!(cpu1[1].task.as_deref(), Some("tcp-cli"));
    assert!(trace.forest(Some(0))[0].walk().all(|c| c.pid.is_none()));
    let recv = &cpu1[0];
    assert_eq!(
        (recv.duration_us, recv.line, recv.depth),
        (Some(7.860), 13, 0)
    );
    let copy = one(&trace, "skb_copy_datagram_iter");
    assert_eq!((copy.duration_us, copy.depth), (Some(3.780), 2));
}

#[test]
fn ftrace_corrupted_line_is_skipped() {
    let text = sample("tcp_sendmsg.txt");
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[7], " 0)   0.141 us    |      _raw_spin_lock_bh();");
    lines[7] = " 0)   0.141 us    |      _raw_spin_lo\u{0}@@ garbage";
    lines.insert(100, "this is not ftrace");
    let trace = Trace::parse(&lines.join("\n"));
    assert_eq!(
        trace.skipped,
        vec![
            (
                8,
                " 0)   0.141 us    |      _raw_spin_lo\u{0}@@ garbage".into()
            ),
            (101, "this is not ftrace".into()),
        ]
    );
    assert_eq!(trace.roots.len(), 1);
    assert_eq!(one(&trace, "lock_sock_nested").children.len(), 2);
    assert_eq!(one(&trace, "tcp_sendmsg").duration_us, Some(123.990));
}

#[test]
fn ftrace_lost_exit_and_entry() {
    // g's exit and h's entry were lost (e.g. a full buffer).
    let text = "\
 0)               |  f() {
 0)               |    g() {
 0)   0.100 us    |      a();
 0)   0.200 us    |          b();
 0)   1.000 us    |        } /* h */
 0)   5.000 us    |  }
";
    let trace = Trace::parse(text);
    expect![[r#"
            f
              g [no exit]
                a
                h [no entry]
                  b
        "#]]
    .assert_eq(&outline(&trace.roots));
    assert_eq!(trace.roots[0].duration_us, Some(5.0));
}

#[test]
fn ftrace_tasks_interleave_on_one_cpu() {
    // Task 5 sleeps inside schedule(), task 7 runs and returns from its
    // own schedule(), then task 5 resumes: open calls are per task.
    let text = "\
 0)               |  read() {
 0)               |    schedule() {
 ------------------------------------------
 0)    a-5     =>    b-7
 ------------------------------------------

 0) ! 500.000 us  |    } /* schedule */
 0)   0.500 us    |    kfree();
 ------------------------------------------
 0)    b-7     =>    a-5
 ------------------------------------------

 0)   0.300 us    |      finish_task_switch();
 0) ! 700.000 us  |    }
 0) ! 701.000 us  |  }
";
    let trace = Trace::parse(text);
    assert_eq!(trace.skipped, vec![]);
    expect![[r#"
            read
              schedule
                finish_task_switch
            schedule [no entry]
            kfree
        "#]]
    .assert_eq(&outline(&trace.roots));
    let pids: Vec<_> = trace.calls().map(|c| c.pid).collect();
    assert_eq!(pids, vec![Some(5), Some(5), Some(5), Some(7), Some(7)]);
}

mod lines;
mod summaries;

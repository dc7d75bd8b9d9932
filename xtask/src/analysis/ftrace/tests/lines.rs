//! One line of function_graph output at a time: its columns, duration
//! marks, and the special lines (comments, irq markers, context switches).

use crate::analysis::ftrace::parse::*;

fn graph(line: &str) -> GraphLine<'_> {
    match parse_line(line) {
        Some(Line::Graph(g)) => g,
        other => panic!("{line:?}: {other:?}"),
    }
}

#[test]
fn ftrace_duration_marks() {
    let cases = [
        (
            " 3) # 1837.709 us |          } /* __switch_to */",
            '#',
            1837.709,
        ),
        (
            " 3) * 33998.59 us |  } /* schedule_preempt_disabled */",
            '*',
            33998.59,
        ),
        (" 1) @ 119760.2 us |  }", '@', 119760.2),
        (" 2) $ 3594274 us  |  }", '$', 3594274.0),
        (" 1) ! 217.240 us  |        }", '!', 217.240),
        (" 1) + 61.770 us   |            }", '+', 61.770),
    ];
    for (line, mark, us) in cases {
        let g = graph(line);
        assert_eq!(
            (g.cols.mark, g.cols.duration_us),
            (Some(mark), Some(us)),
            "{line}"
        );
    }
    assert_eq!(graph(" 3)   3.177 us    |          }").depth, 4);
}

#[test]
fn ftrace_line_forms() {
    let g = graph(" 1)   0.651 us    |      cgroup_migrate_add_task(); /* = 0xffff93fcfd346c00 */");
    let want = Func {
        name: "cgroup_migrate_add_task",
        module: None,
        retval: Some("0xffff93fcfd346c00"),
    };
    assert_eq!((g.body, g.depth), (Body::Leaf(want), 2));
    let g = graph(" 1)   2.335 us    |        } /* cpu_cgroup_can_attach = -22 */");
    let want = Body::Exit {
        name: Some("cpu_cgroup_can_attach"),
        retval: Some("-22"),
    };
    assert_eq!(g.body, want);
    let g = graph(" 0)   1.757 us    |        } /* kmem_cache_free() */");
    assert!(matches!(
        g.body,
        Body::Exit {
            name: Some("kmem_cache_free"),
            ..
        }
    ));
    let g = graph(" 0)               |  e1000_xmit_frame [e1000]() {");
    let want = Func {
        name: "e1000_xmit_frame",
        module: Some("e1000"),
        retval: None,
    };
    assert_eq!(g.body, Body::Entry(want));
    let g = graph(" 0)               |    tcp_sendmsg(sk=0xffff8880, msg=0xffffc900, size=5) {");
    assert!(matches!(
        g.body,
        Body::Entry(Func {
            name: "tcp_sendmsg",
            ..
        })
    ));
    let g = graph(" 1)               |                /* I'm a comment! */");
    assert_eq!(g.body, Body::Comment("I'm a comment!"));
    // Task names with spaces and dashes; pid after the last dash.
    let g = graph(" 0)  my-pr o-1234  |   0.125 us    |    foo();");
    let task = g.cols.task.map(|t| (t.comm, t.pid));
    assert_eq!(task, Some(("my-pr o".into(), 1234)));
    assert_eq!(g.depth, 1);
    // Latency column.
    let g = graph(" 0)  ls-1  |  d..1. |   0.616 us    |  rcu_process_gp_end();");
    assert_eq!(
        (g.cols.cpu, g.depth, g.cols.duration_us),
        (Some(0), 0, Some(0.616))
    );
    // No CPU and no duration column.
    let g = graph("    kfree();");
    assert_eq!((g.cols.cpu, g.depth, g.cols.duration_us), (None, 2, None));
    // The old abstime spacing of the documentation.
    let g = graph(
        "360.774530 |   1)   0.594 us    |                                          __phys_addr();",
    );
    assert_eq!(
        (g.cols.abs_time, g.cols.cpu, g.depth),
        (Some(360.77453), Some(1), 20)
    );
    assert_eq!(graph(" 0)   <========== |").body, Body::IrqExit);
    assert_eq!(graph(" 1)   ==========> |").body, Body::IrqEnter);
}

#[test]
fn ftrace_special_lines() {
    let switch = parse_line(" 0)    <idle>-0    =>  tcp-ech-73  ");
    let want = Line::Switch {
        cpu: 0,
        from: Task {
            comm: "<idle>".into(),
            pid: 0,
        },
        to: Task {
            comm: "tcp-ech".into(),
            pid: 73,
        },
    };
    assert_eq!(switch, Some(want));
    let lost = parse_line("CPU:3 [LOST EVENTS]");
    assert_eq!(
        lost,
        Some(Line::Lost {
            cpu: 3,
            count: None
        })
    );
    for ignored in [
        "# tracer: function_graph",
        "",
        " ------------------------------------------",
        " (Overruns: 0)",
    ] {
        assert_eq!(parse_line(ignored), Some(Line::Ignored), "{ignored:?}");
    }
    assert_eq!(parse_line(" 0)   0.3 us    |  }}}"), None);
    assert_eq!(parse_line(" 0)   0.3 us    |  } trailing"), None);
}

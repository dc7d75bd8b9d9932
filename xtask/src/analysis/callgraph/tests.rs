use super::{
    index::{Call, Function},
    *,
};

fn function(name: &str, addr: u64, calls: Vec<Target>) -> Function {
    Function {
        name: name.into(),
        addr,
        size: 16,
        file: Some(0),
        traceable: name != "helper",
        calls: calls
            .into_iter()
            .enumerate()
            .map(|(i, target)| Call {
                site: addr + i as u64,
                file: Some(0),
                line: 10 + i as u32,
                target,
                load: None,
                global: None,
            })
            .collect(),
    }
}

/// a → b (twice), a → indirect, b → c, c → a (a cycle), d → c.
fn index() -> Index {
    Index::of(
        vec!["net/ipv4/x.c".into()],
        vec![
            function(
                "a",
                0x10,
                vec![Target::Direct(1), Target::Indirect, Target::Direct(1)],
            ),
            function("b", 0x20, vec![Target::Direct(2)]),
            function("c", 0x30, vec![Target::Tail(0)]),
            function("d", 0x40, vec![Target::Direct(2)]),
        ],
    )
}

#[test]
fn callees_group_the_sites_of_one_callee_and_keep_each_indirect_site() {
    let index = index();
    let view = View::new(&index, vec![0], Direction::Callees, 1);
    let edges: Vec<(Option<u32>, usize)> =
        view.edges_of(0).map(|e| (e.to, e.sites.len())).collect();
    assert_eq!(edges, [(Some(1), 2), (None, 1)]);
    assert_eq!(view.functions.keys().copied().collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn depth_bounds_the_walk_and_a_cycle_ends_it() {
    let index = index();
    let two = View::new(&index, vec![0], Direction::Callees, 2);
    assert_eq!(two.functions.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    let deep = View::new(&index, vec![0], Direction::Callees, 10);
    // c's tail call back to a is an edge, not a new function.
    assert_eq!(deep.functions.len(), 3);
    assert!(deep
        .edges
        .iter()
        .any(|e| e.from == 2 && e.to == Some(0) && e.tail));
}

#[test]
fn callers_walk_the_other_way() {
    let index = index();
    let view = View::new(&index, vec![2], Direction::Callers, 1);
    let mut callers: Vec<u32> = view.edges_of(2).map(|e| e.from).collect();
    callers.sort();
    assert_eq!(callers, [1, 3]);
}

#[test]
fn an_unknown_name_says_the_nearest() {
    let index = index();
    let err = lookup(&index, "zz").unwrap_err().to_string();
    assert!(err.starts_with("zz: no such function in vmlinux"), "{err}");
    assert_eq!(lookup(&index, "b").unwrap(), [1]);
}

/// r → x → y → z, and r → y: to depth 2, y is met first under x at the
/// limit, with nothing below it shown, so under r it is expanded, not
/// "expanded above".
#[test]
fn a_function_first_met_at_the_limit_is_expanded_where_it_is_higher() {
    let index = Index::of(
        vec!["net/ipv4/x.c".into()],
        vec![
            function("r", 0x10, vec![Target::Direct(1), Target::Direct(2)]),
            function("x", 0x20, vec![Target::Direct(2)]),
            function("y", 0x30, vec![Target::Direct(3)]),
            function("z", 0x40, vec![]),
        ],
    );
    let view = View::new(&index, vec![0], Direction::Callees, 2);
    let layers = crate::study::layers::Layers::load(&crate::study::shipped()).unwrap();
    let map = render::Map {
        index: &index,
        view: &view,
        layers: &layers,
        overlay: None,
        sites: None,
    };
    let text = map.text();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let names: Vec<String> = lines
        .iter()
        .map(|l| {
            let name = l.trim_start_matches(['│', '├', '└', '─', ' ']);
            let word = name.split_whitespace().next().unwrap_or("");
            let marked = if l.contains("(expanded above)") {
                " (above)"
            } else {
                ""
            };
            format!("{word}{marked}")
        })
        .collect();
    assert_eq!(names, ["r", "x", "y", "y", "z"], "{text}");
}

/// A run's target through an indirect site is placed at the one site whose
/// candidates hold it; where two sites list it, or none does, it is placed
/// at each, as one of them, not guessed.
#[test]
fn a_runs_target_is_placed_at_the_site_that_lists_it_or_said_ambiguous() {
    use super::{
        overlay::{place, Placed},
        sites::Sites,
        stored::Stored,
    };
    let tree = std::env::temp_dir().join(format!("xtask-place-{}", std::process::id()));
    std::fs::create_dir_all(tree.join("net/ipv4")).unwrap();
    let mut source = vec![String::new(); 10];
    source.push("\terr = sk->sk_prot->sendmsg(sk, msg, size);".into());
    source.push("\terr = sk->sk_prot->recvmsg(sk, msg, size);".into());
    std::fs::write(tree.join("net/ipv4/x.c"), source.join("\n")).unwrap();
    let mut index = index();
    // a's sites: 10 direct, 11 through sendmsg (at 40), 12 through recvmsg (at 48).
    index.functions[0].calls[1].load = Some(40);
    index.functions[0].calls[2] = Call {
        site: 0x12,
        file: Some(0),
        line: 12,
        target: Target::Indirect,
        load: Some(48),
        global: None,
    };
    let member = |m: &str, at| (format!("struct proto.{m}"), at, format!("struct proto.{m}"));
    index.members = vec![member("sendmsg", 40), member("recvmsg", 48)];
    let stored = |function, m: &str, offset| Stored {
        function,
        variable: "tcp_prot".into(),
        offset,
        member: Some(format!("struct proto.{m}")),
        member_offset: Some(offset),
        file: "net/ipv4/x.c".into(),
        line: 1,
    };
    // b in sendmsg only; c in both; d in neither.
    index.stored = vec![
        stored(1, "sendmsg", 40),
        stored(2, "sendmsg", 40),
        stored(2, "recvmsg", 48),
    ];
    let sites = Sites::new(&index, tree.clone());
    let taken: std::collections::BTreeMap<String, usize> = [
        ("b".to_string(), 3),
        ("c".to_string(), 2),
        ("d".to_string(), 1),
    ]
    .into();
    let placed = place(&index, &[(0, taken)].into(), &sites);
    let at = |site: u64, name: &str| {
        placed
            .get(&site)
            .and_then(|t| t.get(name))
            .map(|t| t.placed.clone())
    };
    assert_eq!(at(0x11, "b"), Some(Placed::Candidate));
    assert_eq!(placed[&0x11]["b"].calls, 3);
    assert_eq!(at(0x12, "b"), None);
    assert_eq!(at(0x11, "c"), Some(Placed::OneOf(2)));
    assert_eq!(at(0x12, "c"), Some(Placed::OneOf(2)));
    assert_eq!(
        at(0x11, "d"),
        Some(Placed::OneOf(2)),
        "all named, none lists it"
    );
    // b's one site, through sendmsg too: d is not listed there, so not
    // placed there as sure.
    index.functions[1].calls[0] = Call {
        site: 0x20,
        file: Some(0),
        line: 11,
        target: Target::Indirect,
        load: Some(40),
        global: None,
    };
    let sites = Sites::new(&index, tree.clone());
    let taken: std::collections::BTreeMap<String, usize> =
        [("c".to_string(), 1), ("d".to_string(), 1)].into();
    let placed = place(&index, &[(1, taken)].into(), &sites);
    assert_eq!(placed[&0x20]["c"].placed, Placed::Candidate);
    assert_eq!(placed[&0x20]["d"].placed, Placed::Unlisted);
    assert!(!Placed::Unlisted.sure());
    // c, a candidate there, is a function ftrace cannot see that calls
    // a: a run's a from b came through it (Unlisted before).
    index.functions[2].traceable = false;
    let sites = Sites::new(&index, tree.clone());
    let placed = place(&index, &[(1, [("a".to_string(), 1)].into())].into(), &sites);
    let through = Placed::Through {
        helper: "c".into(),
        sites: 1,
    };
    assert_eq!(placed[&0x20]["a"].placed, through);
    assert!(through.sure());
    std::fs::remove_dir_all(&tree).unwrap();
}

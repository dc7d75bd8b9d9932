use std::sync::{Arc, Mutex};

use indicatif::TermLike;

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A build of 1134 objects at 120, the first done at 50 s, each since
/// taking a second, with 40 s of link after the last.
fn at_120() -> State {
    State {
        what: "build".into(),
        unit: "objects".into(),
        done: 120,
        total: Some(1134),
        first_at: Some(secs(50)),
        tail: secs(40),
        current: "net/ipv4/tcp.o".into(),
        ..State::default()
    }
}

#[test]
fn the_time_left_is_the_pace_since_the_first_unit_and_the_tail() {
    let s = at_120();
    // 119 objects in 119 s: 1014 left at 1 s each, and the link.
    assert_eq!(time_left(&s, secs(169)), Some(secs(1014 + 40)));
    // Half the pace.
    assert_eq!(time_left(&s, secs(50 + 238)), Some(secs(2028 + 40)));
    // One unit gives no pace; nothing before it.
    let one = State {
        done: 1,
        ..at_120()
    };
    assert_eq!(time_left(&one, secs(60)), None);
    let none = State {
        done: 0,
        first_at: None,
        ..at_120()
    };
    assert_eq!(time_left(&none, secs(60)), None);
    // No total: no estimate. All done: the tail.
    let unknown = State {
        total: None,
        ..at_120()
    };
    assert_eq!(time_left(&unknown, secs(169)), None);
    let all = State {
        done: 1134,
        ..at_120()
    };
    assert_eq!(time_left(&all, secs(900)), Some(secs(40)));
    // In the tail: what is left of it, never below nothing.
    let linking = State {
        tail_began: Some(secs(900)),
        ..all
    };
    assert_eq!(time_left(&linking, secs(915)), Some(secs(25)));
    assert_eq!(time_left(&linking, secs(990)), Some(secs(0)));
}

#[test]
fn plain_lines_say_the_figures() {
    assert_eq!(
        plain_line(&at_120(), secs(169)),
        "build: 120/1134 objects (10%), 2m49s, about 17m34s left: net/ipv4/tcp.o"
    );
    let pass = State {
        phase: Some("pass 2".into()),
        ..at_120()
    };
    assert_eq!(
        plain_line(&pass, secs(169)),
        "build, pass 2: 120/1134 objects (10%), 2m49s, about 17m34s left: net/ipv4/tcp.o"
    );
    let unknown = State {
        total: None,
        done: 1,
        current: String::new(),
        ..at_120()
    };
    assert_eq!(
        plain_line(&unknown, secs(3725)),
        "build: 1 objects (total unknown), 1h02m, time left not known yet"
    );
    let nothing = State {
        total: Some(0),
        done: 0,
        ..unknown
    };
    assert_eq!(
        plain_line(&nothing, secs(3)),
        "build: 0/0 objects (100%), 3s, about 40s left"
    );
}

#[test]
fn the_last_plain_line_says_done() {
    let all = State {
        done: 1,
        total: Some(1),
        ..at_120()
    };
    assert_eq!(done_line(&all, secs(40)), "build: 1/1 objects, done in 40s");
    let unknown = State {
        total: None,
        ..at_120()
    };
    assert_eq!(
        done_line(&unknown, secs(68)),
        "build: 120 objects, done in 1m08s"
    );
}

#[test]
fn plain_lines_come_a_few_a_minute_and_at_each_phase() {
    let mut t = Throttle::new(PLAIN_EVERY);
    let due: Vec<bool> = [
        (0, None),
        (1, None),
        (19, None),
        (20, None),
        (25, Some("pass 2")),
        (30, Some("pass 2")),
        (44, Some("pass 2")),
        (45, Some("pass 2")),
        (46, Some("linking")),
    ]
    .iter()
    .map(|&(s, phase)| t.due(secs(s), phase))
    .collect();
    assert_eq!(
        due,
        [true, false, false, true, true, false, false, true, true]
    );
}

/// A terminal of a given width that keeps what was drawn last.
#[derive(Debug)]
struct Narrow {
    width: u16,
    /// What was written since the line was last cleared.
    drawn: Arc<Mutex<String>>,
}

impl TermLike for Narrow {
    fn width(&self) -> u16 {
        self.width
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.drawn.lock().unwrap().push_str(s);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.drawn.lock().unwrap().clear();
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The line indicatif draws at `width` columns.
fn drawn_at(width: u16, state: State) -> String {
    let drawn = Arc::new(Mutex::new(String::new()));
    let term = Narrow {
        width,
        drawn: drawn.clone(),
    };
    let target = ProgressDrawTarget::term_like(Box::new(term));
    let mut p = Progress::with(
        state,
        Clock::Fixed(secs(169)),
        Shown::Terminal,
        Some(target),
    );
    p.update(|s| s.current = "drivers/tty/serial/8250/8250_core.o".into());
    let last = drawn.lock().unwrap().clone();
    assert!(last.chars().count() <= width as usize, "{width}: {last}");
    last.trim_end().to_string()
}

#[test]
fn the_terminal_line_fits_the_width() {
    assert_eq!(
        drawn_at(80, at_120()),
        "[120/1134 10% 2m49s ~17m34s left] drivers/tty/serial/8250/8250_core.o"
    );
    assert_eq!(
        drawn_at(60, at_120()),
        "[120/1134 10% 2m49s ~17m34s left] drivers/tty/serial/8250/82"
    );
    let pass = State {
        phase: Some("pass 2".into()),
        ..at_120()
    };
    assert_eq!(
        drawn_at(50, pass),
        "[120/1134 10% 2m49s ~17m34s left] pass 2 drivers/t"
    );
    for width in [20, 30, 40, 100] {
        drawn_at(width, at_120());
    }
}

/// apt's steps say how far they are in percent, not in units.
#[test]
fn a_step_in_percent_says_the_percent_alone() {
    let apt = State {
        what: "apt-get install".into(),
        unit: String::new(),
        done: 40,
        total: Some(100),
        first_at: Some(secs(2)),
        phase: Some("unpacking and setting up".into()),
        current: "Unpacking bc (amd64)".into(),
        ..State::default()
    };
    // 39 points in 39 s: 60 left at a second each.
    assert_eq!(
        plain_line(&apt, secs(41)),
        "apt-get install, unpacking and setting up: 40%, 41s, about 1m00s left: Unpacking bc (amd64)"
    );
    assert_eq!(
        bar_figures(&apt, secs(41)),
        "[40% 41s ~1m00s left] unpacking and setting up"
    );
    assert_eq!(done_line(&apt, secs(70)), "apt-get install: done in 1m10s");
}

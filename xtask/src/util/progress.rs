//! How far a long step is: done out of a total, a percentage, the time so
//! far, an estimate of the time left, and what it is at. On a terminal one
//! line that indicatif redraws and fits to the terminal's width; without
//! one (CI, a pipe) a plain line at most every [`PLAIN_EVERY`], and at each
//! change of phase, with the same figures. The figures, the estimate and
//! the throttling are pure functions of the clock, tested with exact
//! output.
//!
//! The estimate: the units left at the mean time per unit since the first
//! one finished (what came before it, the step's own preparation, is not
//! the units' pace), plus a known `tail`, the time the step takes after its
//! last unit (a build's link), counted down once that phase has begun.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The plain lines' pace: three a minute.
pub const PLAIN_EVERY: Duration = Duration::from_secs(20);

/// Where the display goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// One redrawn line on standard error.
    Terminal,
    /// Plain lines on standard error, a few a minute.
    Plain,
    /// Nothing (the step's own output is shown instead).
    Off,
}

impl Shown {
    /// A redrawn line where standard error is a terminal, else plain lines.
    pub fn detect() -> Shown {
        if std::io::stderr().is_terminal() {
            Shown::Terminal
        } else {
            Shown::Plain
        }
    }
}

/// What the display knows, apart from the clock.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// What the step is: `build`, `unpacking`.
    pub what: String,
    /// What it counts: `objects`, `files`; empty for a step that says
    /// only how far it is in percent (apt's), its total then 100.
    pub unit: String,
    pub done: u64,
    pub total: Option<u64>,
    /// When the first unit finished, from the start.
    pub first_at: Option<Duration>,
    /// What the step takes after its last unit.
    pub tail: Duration,
    /// When the tail began (the phase after the units), from the start.
    pub tail_began: Option<Duration>,
    /// `pass 2`, `linking`: said before the figures when set.
    pub phase: Option<String>,
    /// The unit it is at, or the last one done.
    pub current: String,
}

/// The time left at `elapsed`, when it can be told: in the tail, what is
/// left of it; before, the units left at the mean pace since the first one
/// finished (two units at least: one gives no pace), plus the tail.
pub fn time_left(s: &State, elapsed: Duration) -> Option<Duration> {
    if let Some(began) = s.tail_began {
        return Some(s.tail.saturating_sub(elapsed.saturating_sub(began)));
    }
    let total = s.total?;
    if s.done >= total {
        return Some(s.tail);
    }
    let first = s.first_at?;
    if s.done < 2 {
        return None;
    }
    let pace = elapsed.saturating_sub(first).as_secs_f64() / (s.done - 1) as f64;
    Some(Duration::from_secs_f64(pace * (total - s.done) as f64) + s.tail)
}

/// `done` of `total` in percent, never above 100.
fn percent(done: u64, total: u64) -> u64 {
    (done * 100).checked_div(total).unwrap_or(100).min(100)
}

/// `1m02s`, `42s`, `1h05m`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The figures without the phase and the unit's name: `120/1134 objects
/// (10%), 1m02s, about 8m30s left`.
pub fn figures(s: &State, elapsed: Duration) -> String {
    let count = match s.total {
        Some(total) if s.unit.is_empty() => format!("{}%", percent(s.done, total)),
        Some(total) => format!(
            "{}/{total} {} ({}%)",
            s.done,
            s.unit,
            percent(s.done, total)
        ),
        None => format!("{} {} (total unknown)", s.done, s.unit),
    };
    let left = match time_left(s, elapsed) {
        Some(left) => format!("about {} left", short(left)),
        None => "time left not known yet".to_string(),
    };
    format!("{count}, {}, {left}", short(elapsed))
}

/// One plain line: `build, pass 2: 120/1134 objects (10%), 1m02s, about
/// 8m30s left: net/ipv4/tcp.o`.
pub fn plain_line(s: &State, elapsed: Duration) -> String {
    let phase = s
        .phase
        .as_deref()
        .map_or(String::new(), |p| format!(", {p}"));
    let current = if s.current.is_empty() {
        String::new()
    } else {
        format!(": {}", s.current)
    };
    format!("{}{phase}: {}{current}", s.what, figures(s, elapsed))
}

/// The last plain line: `build: 1/1 objects, done in 40s` (`apt-get
/// install: done in 12s` for a step counted in percent).
pub fn done_line(s: &State, elapsed: Duration) -> String {
    if s.unit.is_empty() {
        return format!("{}: done in {}", s.what, short(elapsed));
    }
    let count = match s.total {
        Some(total) => format!("{}/{total}", s.done),
        None => s.done.to_string(),
    };
    format!("{}: {count} {}, done in {}", s.what, s.unit, short(elapsed))
}

/// When the next plain line is due: the first at once, then at most one
/// every `every`, and one at each change of phase whatever the time.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Duration>,
    phase: Option<String>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            phase: None,
        }
    }

    /// Whether a line is due at `now` in `phase`; if so, it counts as
    /// printed.
    pub fn due(&mut self, now: Duration, phase: Option<&str>) -> bool {
        let new_phase = self.phase.as_deref() != phase;
        let due = new_phase || self.last.is_none_or(|last| now >= last + self.every);
        if due {
            self.last = Some(now);
            self.phase = phase.map(str::to_string);
        }
        due
    }
}

/// The terminal's line, `[120/1134 10% 1m02s ~8m30s left] pass 2 tcp.o`,
/// is indicatif's `wide_msg`: cut to the terminal's width, however narrow.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{wide_msg}").expect("a fixed template")
}

/// The bar's figures: short, so the object keeps the width.
pub fn bar_figures(s: &State, elapsed: Duration) -> String {
    let count = match s.total {
        Some(total) if s.unit.is_empty() => format!("{}%", percent(s.done, total)),
        Some(total) => format!("{}/{total} {}%", s.done, percent(s.done, total)),
        None => format!("{}/?", s.done),
    };
    let left = time_left(s, elapsed).map_or("~?".to_string(), |l| format!("~{} left", short(l)));
    let phase = s
        .phase
        .as_deref()
        .map_or(String::new(), |p| format!(" {p}"));
    format!("[{count} {} {left}]{phase}", short(elapsed))
}

/// The time since the start, or a fixed one (tests).
#[derive(Clone, Copy, Debug)]
enum Clock {
    Real(Instant),
    #[cfg_attr(not(test), allow(dead_code))]
    Fixed(Duration),
}

impl Clock {
    fn elapsed(&self) -> Duration {
        match self {
            Clock::Real(start) => start.elapsed(),
            Clock::Fixed(d) => *d,
        }
    }
}

pub struct Progress {
    state: State,
    clock: Clock,
    bar: Option<ProgressBar>,
    plain: Option<Throttle>,
}

impl Progress {
    pub fn new(what: &str, unit: &str, total: Option<u64>, shown: Shown) -> Progress {
        let state = State {
            what: what.to_string(),
            unit: unit.to_string(),
            total,
            ..State::default()
        };
        let target = match shown {
            Shown::Terminal => Some(ProgressDrawTarget::stderr()),
            _ => None,
        };
        Progress::with(state, Clock::Real(Instant::now()), shown, target)
    }

    fn with(
        state: State,
        clock: Clock,
        shown: Shown,
        target: Option<ProgressDrawTarget>,
    ) -> Progress {
        let bar = target.map(|target| {
            let bar = ProgressBar::with_draw_target(None, target);
            bar.set_style(bar_style());
            bar
        });
        Progress {
            state,
            clock,
            bar,
            plain: (shown == Shown::Plain).then(|| Throttle::new(PLAIN_EVERY)),
        }
    }

    /// Changes what the display knows, without showing it yet.
    pub fn set(&mut self, change: impl FnOnce(&mut State)) {
        change(&mut self.state);
    }

    /// Changes what the display knows, then shows it (a plain line only
    /// when one is due).
    pub fn update(&mut self, change: impl FnOnce(&mut State)) {
        let elapsed = self.clock.elapsed();
        let line = {
            let s = &mut self.state;
            change(s);
            let due = match &mut self.plain {
                Some(throttle) => throttle.due(elapsed, s.phase.as_deref()),
                None => false,
            };
            due.then(|| plain_line(s, elapsed)).or_else(|| {
                let figures = bar_figures(s, elapsed);
                self.bar
                    .as_ref()
                    .map(|_| format!("{figures} {}", s.current))
            })
        };
        match (&self.bar, line) {
            (Some(bar), Some(line)) => bar.set_message(line),
            (None, Some(line)) => eprintln!("{line}"),
            _ => {}
        }
    }

    /// One unit done: `current`. The first one's time starts the pace.
    pub fn step(&mut self, current: &str) {
        let elapsed = self.clock.elapsed();
        self.update(|s| {
            s.done += 1;
            s.first_at.get_or_insert(elapsed);
            s.current = current.to_string();
        });
    }

    /// `done` units so far (a step that counts in larger strides).
    pub fn at(&mut self, done: u64) {
        let elapsed = self.clock.elapsed();
        self.update(|s| {
            s.done = done;
            s.first_at.get_or_insert(elapsed);
        });
    }

    /// The units are done: the tail (`phase`) begins at `current`.
    pub fn tail(&mut self, phase: &str, current: &str) {
        let elapsed = self.clock.elapsed();
        self.update(|s| {
            s.tail_began.get_or_insert(elapsed);
            s.phase = Some(phase.to_string());
            s.current = current.to_string();
        });
    }

    /// What the display knows now (tests of what feeds it).
    #[cfg(test)]
    pub fn state(&self) -> &State {
        &self.state
    }

    /// A line above the display, which stays.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Takes the line away (a terminal) or says it is done (plain).
    pub fn finish(self) {
        if self.plain.is_some() {
            eprintln!("{}", done_line(&self.state, self.clock.elapsed()));
        }
    }

    /// Says it is done with `note` after the figures, on a terminal too,
    /// where the line stays: `apt-get install: done in 12s; apt's output
    /// is in target/setup/apt-get-install.log`.
    pub fn finish_saying(self, note: &str) {
        let line = format!("{}; {note}", done_line(&self.state, self.clock.elapsed()));
        match (&self.bar, &self.plain) {
            (Some(bar), _) => {
                bar.finish_and_clear();
                eprintln!("{line}");
            }
            (None, Some(_)) => eprintln!("{line}"),
            (None, None) => {}
        }
    }
}

/// A display left behind (an error, a dry run) takes its line with it.
impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests;

//! The parser: function_graph text in, the call tree out. See the module
//! above for the format.

use std::{collections::HashMap, sync::OnceLock};

use regex::{Captures, Regex};

use super::model::{Call, Lost, Marker, Trace};

impl Trace {
    /// Parses function_graph text; never fails, bad lines go to `skipped`.
    pub fn parse(text: &str) -> Trace {
        let mut builder = Builder::default();
        for (i, line) in text.lines().enumerate() {
            builder.line(i + 1, line.trim_end_matches('\r'));
        }
        builder.finish()
    }
}

pub(super) struct Patterns {
    pub(super) abs_time: Regex,
    pub(super) rel_time: Regex,
    pub(super) cpu: Regex,
    pub(super) task: Regex,
    pub(super) lat: Regex,
    pub(super) duration: Regex,
    pub(super) no_duration: Regex,
    pub(super) func: Regex,
    pub(super) lost: Regex,
    pub(super) switch: Regex,
}

pub(super) fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("ftrace pattern");
        Patterns {
            // "%5lu.%06lu |  "
            abs_time: re(r"^\s*(\d+\.\d+) \|"),
            // "%9llu us |  "
            rel_time: re(r"^\s*(\d+) us \|"),
            // " %*d) "
            cpu: re(r"^\s*(\d+)\)"),
            // comm (at most 7 chars, may hold spaces or dashes) "-" pid, centered, " | "
            task: re(r"^\s*([^|]+)-(\d+)\s+\|"),
            // " d.h1. | "
            lat: re(r"^\s*([dDbX.][Nnp.][ZzHhs.][0-9a-f.]{2,3})\s+\|"),
            // "! 120.342 us  |  "
            duration: re(r"^\s*(?:([+!#*@$])\s+)?(\d+(?:\.\d+)?)\s+us\s*\|"),
            // "              |  "
            no_duration: re(r"^\s+\|"),
            // func [module](args) {   or   func(); /* = 0x0 */
            func: re(r"^([^\s(){};/]+)(?: \[([^\]]+)\])?\((.*)\)\s*([{;])\s*(/\*.*\*/)?$"),
            lost: re(r"^CPU:(\d+) \[LOST(?: (\d+))? EVENTS\]"),
            switch: re(r"^\s*(\d+)\)\s+(\S.*?)-(\d+)\s+=>\s+(\S.*?)-(\d+)\s*$"),
        }
    })
}

/// `task-pid` as printed in the task column and in context switches.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Task {
    pub(super) comm: String,
    pub(super) pid: u32,
}

#[derive(Debug, PartialEq)]
pub(super) enum Line<'a> {
    Ignored,
    Lost { cpu: u32, count: Option<u64> },
    Switch { cpu: u32, from: Task, to: Task },
    Graph(GraphLine<'a>),
}

#[derive(Debug, PartialEq)]
pub(super) struct GraphLine<'a> {
    pub(super) cols: Columns,
    pub(super) depth: usize,
    pub(super) body: Body<'a>,
}

/// The columns before the function column, all optional.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Columns {
    pub(super) abs_time: Option<f64>,
    pub(super) cpu: Option<u32>,
    pub(super) task: Option<Task>,
    pub(super) mark: Option<char>,
    pub(super) duration_us: Option<f64>,
}

#[derive(Debug, PartialEq)]
pub(super) enum Body<'a> {
    Entry(Func<'a>),
    Leaf(Func<'a>),
    Exit {
        name: Option<&'a str>,
        retval: Option<&'a str>,
    },
    Comment(&'a str),
    IrqEnter,
    IrqExit,
}

#[derive(Debug, PartialEq)]
pub(super) struct Func<'a> {
    pub(super) name: &'a str,
    pub(super) module: Option<&'a str>,
    pub(super) retval: Option<&'a str>,
}

/// Classifies one line; `None` if it cannot be parsed.
pub(super) fn parse_line(line: &str) -> Option<Line<'_>> {
    let trimmed = line.trim();
    let is_rule = trimmed.len() >= 10 && trimmed.bytes().all(|b| b == b'-');
    if trimmed.is_empty() || trimmed.starts_with('#') || is_rule {
        return Some(Line::Ignored);
    }
    if trimmed.starts_with("(Overruns:") {
        return Some(Line::Ignored);
    }
    let p = patterns();
    if let Some(c) = p.lost.captures(trimmed) {
        let cpu = c[1].parse().ok()?;
        let count = c.get(2).and_then(|m| m.as_str().parse().ok());
        return Some(Line::Lost { cpu, count });
    }
    if let Some(c) = p.switch.captures(line) {
        let cpu = c[1].parse().ok()?;
        let from = task(&c[2], &c[3])?;
        let to = task(&c[4], &c[5])?;
        return Some(Line::Switch { cpu, from, to });
    }
    parse_graph_line(line).map(Line::Graph)
}

pub(super) fn task(comm: &str, pid: &str) -> Option<Task> {
    Some(Task {
        comm: comm.trim().to_string(),
        pid: pid.parse().ok()?,
    })
}

/// Matches `re` at the start of `s`: the captures and the rest after the match.
pub(super) fn column<'a>(re: &Regex, s: &'a str) -> Option<(Captures<'a>, &'a str)> {
    let caps = re.captures(s)?;
    let end = caps.get(0)?.end();
    Some((caps, &s[end..]))
}

/// Parses the optional columns, then the function column.
pub(super) fn parse_graph_line(line: &str) -> Option<GraphLine<'_>> {
    let p = patterns();
    let mut cols = Columns::default();
    let mut rest = line;
    // Spaces the last column puts before the function column's indentation.
    let mut separator = 0;
    if let Some((c, r)) = column(&p.abs_time, rest) {
        (cols.abs_time, rest, separator) = (c[1].parse().ok(), r, 2);
    }
    if let Some((_, r)) = column(&p.rel_time, rest) {
        (rest, separator) = (r, 2);
    }
    if let Some((c, r)) = column(&p.cpu, rest) {
        (cols.cpu, rest, separator) = (Some(c[1].parse().ok()?), r, 1);
    }
    if let Some((c, r)) = column(&p.task, rest) {
        (cols.task, rest, separator) = (task(&c[1], &c[2]), r, 1);
    }
    if let Some((_, r)) = column(&p.lat, rest) {
        (rest, separator) = (r, 1);
    }
    if let Some((c, r)) = column(&p.duration, rest) {
        cols.mark = c.get(1).and_then(|m| m.as_str().chars().next());
        cols.duration_us = Some(c[2].parse().ok()?);
        (rest, separator) = (r, 2);
    } else if let Some((_, r)) = column(&p.no_duration, rest) {
        (rest, separator) = (r, 2);
    }
    let indent = rest.len() - rest.trim_start_matches(' ').len();
    Some(GraphLine {
        cols,
        depth: indent.saturating_sub(separator) / 2,
        body: parse_body(rest.trim())?,
    })
}

/// The function column without its indentation.
pub(super) fn parse_body(s: &str) -> Option<Body<'_>> {
    if s.starts_with("==========>") {
        return Some(Body::IrqEnter);
    }
    if s.starts_with("<==========") {
        return Some(Body::IrqExit);
    }
    if let Some(tail) = s.strip_prefix('}') {
        let (name, retval) = parse_tail(tail.trim())?;
        return Some(Body::Exit { name, retval });
    }
    if let Some(text) = comment_text(s) {
        return Some(Body::Comment(text));
    }
    let c = patterns().func.captures(s)?;
    let (_, retval) = parse_tail(c.get(5).map_or("", |m| m.as_str()))?;
    let func = Func {
        name: c.get(1)?.as_str(),
        module: c.get(2).map(|m| m.as_str()),
        retval,
    };
    match &c[4] {
        "{" => Some(Body::Entry(func)),
        _ => Some(Body::Leaf(func)),
    }
}

pub(super) fn comment_text(s: &str) -> Option<&str> {
    Some(s.strip_prefix("/*")?.strip_suffix("*/")?.trim())
}

/// The comment after `}` or `func();`: `/* func */`, `/* func = -22 */`,
/// `/* = 0x0 */`, or empty. Returns (function name, return value).
pub(super) fn parse_tail(s: &str) -> Option<(Option<&str>, Option<&str>)> {
    if s.is_empty() {
        return Some((None, None));
    }
    let text = comment_text(s)?;
    let (name, retval) = match text.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (text, None),
    };
    // "func [module]" and the older "func()" spelling.
    let name = name.split(' ').next().unwrap_or("").trim_end_matches("()");
    let is_symbol = |n: &str| {
        let symbol_char = |c: char| c.is_ascii_alphanumeric() || "_.$".contains(c);
        !n.is_empty() && n.chars().all(symbol_char)
    };
    Some((Some(name).filter(|n| is_symbol(n)), retval))
}

// ---------------------------------------------------------------------------
// Tree building

/// Where open calls are kept: per task when the pid is known, else per CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Ctx {
    Pid(u32),
    Cpu(Option<u32>),
}

#[derive(Default)]
pub(super) struct Builder {
    pub(super) trace: Trace,
    /// Calls whose exit has not been seen yet, innermost last.
    pub(super) open: HashMap<Ctx, Vec<Call>>,
    /// Completed top-level calls.
    pub(super) done: Vec<(Ctx, Call)>,
    /// The task last seen running on each CPU.
    pub(super) running: HashMap<Option<u32>, Task>,
    /// Nesting of `==========>` per CPU.
    pub(super) irq_level: HashMap<Option<u32>, u32>,
}

impl Builder {
    fn line(&mut self, no: usize, text: &str) {
        match parse_line(text) {
            Some(Line::Ignored) => {}
            Some(Line::Lost { cpu, count }) => self.trace.lost.push(Lost {
                line: no,
                cpu,
                count,
            }),
            Some(Line::Switch { cpu, from, to }) => self.switch(Some(cpu), from, to),
            Some(Line::Graph(g)) => self.graph(no, g),
            None => self.trace.skipped.push((no, text.to_string())),
        }
    }

    fn finish(mut self) -> Trace {
        let ctxs: Vec<Ctx> = self.open.keys().copied().collect();
        for ctx in ctxs {
            self.close_all(ctx);
        }
        let mut roots: Vec<Call> = self.done.into_iter().map(|(_, c)| c).collect();
        roots.sort_by_key(|c| (c.cpu, c.line));
        mark_irq_regions(&mut roots);
        self.trace.roots = roots;
        self.trace
    }

    fn ctx(&self, cpu: Option<u32>) -> Ctx {
        match self.running.get(&cpu) {
            Some(task) => Ctx::Pid(task.pid),
            None => Ctx::Cpu(cpu),
        }
    }

    fn graph(&mut self, no: usize, g: GraphLine) {
        let cpu = g.cols.cpu;
        if let Some(task) = &g.cols.task {
            self.running.insert(cpu, task.clone());
        }
        let ctx = self.ctx(cpu);
        match &g.body {
            Body::IrqEnter => *self.irq_level.entry(cpu).or_default() += 1,
            Body::IrqExit => {
                let level = self.irq_level.entry(cpu).or_default();
                *level = level.saturating_sub(1);
            }
            Body::Comment(text) => self.trace.markers.push(Marker {
                line: no,
                cpu,
                pid: self.running.get(&cpu).map(|t| t.pid),
                text: text.to_string(),
            }),
            Body::Entry(f) => {
                let call = self.new_call(no, &g, f.name, f.module, f.retval);
                self.open.entry(ctx).or_default().push(call);
            }
            Body::Leaf(f) => {
                let mut call = self.new_call(no, &g, f.name, f.module, f.retval);
                (call.duration_us, call.mark) = (g.cols.duration_us, g.cols.mark);
                self.attach(ctx, call);
            }
            Body::Exit { name, retval } => self.close(ctx, no, &g, *name, *retval),
        }
    }

    fn new_call(
        &self,
        no: usize,
        g: &GraphLine,
        name: &str,
        module: Option<&str>,
        retval: Option<&str>,
    ) -> Call {
        let cpu = g.cols.cpu;
        let task = self.running.get(&cpu);
        Call {
            name: name.to_string(),
            module: module.map(str::to_string),
            cpu,
            pid: task.map(|t| t.pid),
            task: task.map(|t| t.comm.clone()),
            abs_time: g.cols.abs_time,
            retval: retval.map(str::to_string),
            depth: g.depth,
            line: no,
            in_irq: self.irq_level.get(&cpu).is_some_and(|l| *l > 0),
            ..Call::default()
        }
    }

    /// Adds a finished call to the innermost open call, or to the roots.
    fn attach(&mut self, ctx: Ctx, call: Call) {
        match self.open.get_mut(&ctx).and_then(|s| s.last_mut()) {
            Some(parent) => parent.children.push(call),
            None => self.done.push((ctx, call)),
        }
    }

    /// An exit line at depth `g.depth`, naming its function if `name` is set.
    fn close(&mut self, ctx: Ctx, no: usize, g: &GraphLine, name: Option<&str>, ret: Option<&str>) {
        let depth = g.depth;
        loop {
            let stack = self.open.entry(ctx).or_default();
            let Some(top) = stack.last_mut() else {
                let children = take_deeper_roots(&mut self.done, ctx, depth);
                let call = self.missing_entry(no, g, name, ret, children);
                self.done.push((ctx, call));
                return;
            };
            if name.map_or(top.depth == depth, |n| n == top.name) {
                let mut call = stack.pop().expect("top exists");
                (call.duration_us, call.mark) = (g.cols.duration_us, g.cols.mark);
                call.retval = ret.map(str::to_string).or(call.retval);
                self.attach(ctx, call);
                return;
            }
            if top.depth >= depth {
                // The exit of `top` was lost.
                let call = stack.pop().expect("top exists");
                self.attach(ctx, call);
                continue;
            }
            // The entry of this exit was lost.
            let keep = top.children.iter().rposition(|c| c.depth <= depth);
            let children = top.children.split_off(keep.map_or(0, |i| i + 1));
            let call = self.missing_entry(no, g, name, ret, children);
            self.attach(ctx, call);
            return;
        }
    }

    fn missing_entry(
        &self,
        no: usize,
        g: &GraphLine,
        name: Option<&str>,
        retval: Option<&str>,
        children: Vec<Call>,
    ) -> Call {
        let mut call = self.new_call(no, g, name.unwrap_or("?"), None, retval);
        call.line = children.first().map_or(no, |c| c.line);
        (call.duration_us, call.mark) = (g.cols.duration_us, g.cols.mark);
        (call.children, call.entry_missing) = (children, true);
        call
    }

    /// Closes every open call of `ctx` without a duration.
    fn close_all(&mut self, ctx: Ctx) {
        while let Some(call) = self.open.get_mut(&ctx).and_then(|s| s.pop()) {
            self.attach(ctx, call);
        }
    }

    /// A context switch on `cpu`: what ran there before without a known pid
    /// was `from`.
    fn switch(&mut self, cpu: Option<u32>, from: Task, to: Task) {
        let unknown = Ctx::Cpu(cpu);
        let known = Ctx::Pid(from.pid);
        if self.open.get(&known).is_some_and(|s| !s.is_empty()) {
            self.close_all(unknown);
        }
        if let Some(mut stack) = self.open.remove(&unknown).filter(|s| !s.is_empty()) {
            stack.iter_mut().for_each(|c| set_task(c, &from));
            self.open.insert(known, stack);
        }
        for (ctx, call) in self.done.iter_mut().filter(|(ctx, _)| *ctx == unknown) {
            *ctx = known;
            set_task(call, &from);
        }
        self.running.insert(cpu, to);
    }
}

/// Fills in the task of calls (and their children) that have none.
pub(super) fn set_task(call: &mut Call, task: &Task) {
    if call.pid.is_none() {
        call.pid = Some(task.pid);
        call.task = Some(task.comm.clone());
    }
    call.children.iter_mut().for_each(|c| set_task(c, task));
}

/// Removes the trailing top-level calls of `ctx` deeper than `depth`: they
/// ran inside a call whose entry is not in the buffer.
pub(super) fn take_deeper_roots(done: &mut Vec<(Ctx, Call)>, ctx: Ctx, depth: usize) -> Vec<Call> {
    let mut taken = Vec::new();
    for i in (0..done.len()).rev() {
        if done[i].0 != ctx {
            continue;
        }
        if done[i].1.depth <= depth {
            break;
        }
        taken.push(done.remove(i).1);
    }
    taken.reverse();
    taken
}

const IRQ_ENTER: [&str; 2] = ["irq_enter_rcu", "irq_enter"];
const IRQ_EXIT: [&str; 2] = ["irq_exit_rcu", "irq_exit"];

/// x86 prints no `==========>` markers (its irq entry points are `noinstr`),
/// but an interrupt shows as the siblings `irq_enter_rcu()`, the handler,
/// `irq_exit_rcu()`: mark those as `in_irq`.
pub(super) fn mark_irq_regions(calls: &mut [Call]) {
    let mut inside = false;
    let mut cpu = calls.first().and_then(|c| c.cpu);
    for call in calls {
        inside &= call.cpu == cpu;
        cpu = call.cpu;
        inside |= IRQ_ENTER.contains(&call.name.as_str());
        let exit = IRQ_EXIT.contains(&call.name.as_str());
        if inside || exit {
            set_in_irq(call);
        } else {
            mark_irq_regions(&mut call.children);
        }
        inside &= !exit;
    }
}

pub(super) fn set_in_irq(call: &mut Call) {
    call.in_irq = true;
    call.children.iter_mut().for_each(set_in_irq);
}

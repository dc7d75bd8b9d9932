//! The book in docs/ (mdBook) and the README beside it.
//!
//! Every relative link of README.md and of docs/src/**/*.md must name a file
//! that exists, and a `#anchor` must be the id of a heading in that file, by
//! the rule mdBook and GitHub share: lowercase; alphanumerics, `-` and `_`
//! kept; whitespace becomes `-`; other punctuation dropped; the second
//! heading with an id gets `-1`, the third `-2`. A chapter is checked as
//! mdBook renders it, with its `{{#include FILE[:ANCHOR]}}` expanded. Every
//! chapter under docs/src is in SUMMARY.md, and every entry there exists.
//! External links (http, https, mailto, any scheme) are not checked: the
//! tests run without the internet.
//!
//! Then `mdbook build` of docs/ must pass without an error or a warning, with
//! the mdbook that `cargo xtask setup --install` puts in
//! target/host-tools/bin/, else one on PATH. Without either that test is
//! skipped, with the reason printed and counted as ignored, never as passed:
//! this harness (libtest-mimic) decides at run time.
//!
//! Markdown is read with regular expressions, not a parser: fenced code
//! blocks, inline code spans and HTML comments are blanked out first, then
//! inline links and images (`[text](dest)`, `![alt](dest)`), reference
//! definitions (`[label]: dest`) and HTML `href`/`src` attributes are
//! collected. Setext headings (underlined with `===`/`---`) are not read;
//! the book uses `#` headings.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use regex::Regex;

const SKIP_NO_MDBOOK: &str =
    "skipped: mdbook not installed (cargo xtask setup --install installs it)";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

// ---------------------------------------------------------------------------
// Reading markdown

/// A markdown file as checked: its text (a chapter's with its includes
/// expanded) and, for each line, where that line comes from.
struct Doc {
    path: PathBuf,
    text: String,
    origins: Vec<String>,
}

impl Doc {
    fn origin_of(&self, offset: usize) -> &str {
        let line = self.text[..offset].matches('\n').count();
        &self.origins[line.min(self.origins.len() - 1)]
    }
}

static INCLUDE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\\?)\{\{#include\s+([^}\s]+)\s*\}\}").unwrap());

/// Where the reading of a file is going: what it has included, and what
/// went wrong (an include that names nothing).
#[derive(Default)]
struct Reading {
    included: BTreeSet<PathBuf>,
    errors: Vec<String>,
}

/// Reads `path`; with `expand`, replaces `{{#include ...}}` as mdBook does
/// (the path relative to the including file). An include that names
/// nothing is an error in `reading`, and its line stays as it is.
fn load(root: &Path, path: &Path, expand: bool, reading: &mut Reading) -> Option<Doc> {
    let raw = match std::fs::read_to_string(path) {
        Ok(raw) => raw,
        Err(e) => {
            reading.errors.push(format!("{}: {e}", rel(root, path)));
            return None;
        }
    };
    let mut doc = Doc {
        path: path.to_path_buf(),
        text: String::new(),
        origins: Vec::new(),
    };
    expand_into(
        root,
        path,
        &numbered(&raw),
        expand,
        0,
        "",
        reading,
        &mut doc,
    );
    Some(doc)
}

/// A text's lines (each with its newline), numbered from 1.
fn numbered(text: &str) -> Vec<(usize, &str)> {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(n, l)| (n + 1, l))
        .collect()
}

/// Appends `lines`, of `path` (all of it, or a part), to `doc`: one origin
/// per line of text, an included line keeping its own.
#[allow(clippy::too_many_arguments)]
fn expand_into(
    root: &Path,
    path: &Path,
    lines: &[(usize, &str)],
    expand: bool,
    depth: usize,
    by: &str,
    reading: &mut Reading,
    doc: &mut Doc,
) {
    // A piece of a line: its line's origin is recorded at its newline.
    let push = |s: &str, origin: &str, doc: &mut Doc| {
        doc.text.push_str(s);
        if s.ends_with('\n') {
            doc.origins.push(origin.to_string());
        }
    };
    for &(n, line) in lines {
        let here = format!("{}:{n}{by}", rel(root, path));
        let mut rest = line;
        while let Some(m) = expand.then(|| INCLUDE.captures(rest)).flatten() {
            let whole = m.get(0).unwrap();
            push(&rest[..whole.start()], &here, doc);
            let part = if !m[1].is_empty() {
                // `\{{#include ...}}` is mdBook's escape: the text as is.
                Err(whole.as_str()[1..].to_string())
            } else if depth > 8 {
                reading
                    .errors
                    .push(format!("{here}: includes nested too deep"));
                Err(whole.as_str().to_string())
            } else {
                include_part(root, path, &m[2], &here).map_err(|e| {
                    reading.errors.push(e);
                    whole.as_str().to_string()
                })
            };
            match part {
                Ok((file, body, range, anchored)) => {
                    reading.included.insert(file.clone());
                    let by = format!(" (included by {here})");
                    let part: Vec<(usize, &str)> = numbered(&body)
                        .into_iter()
                        .filter(|&(n, l)| {
                            range.contains(&n) && !(anchored && ANCHOR_LINE.is_match(l))
                        })
                        .collect();
                    expand_into(root, &file, &part, true, depth + 1, &by, reading, doc);
                }
                Err(literal) => push(&literal, &here, doc),
            }
            rest = &rest[whole.end()..];
        }
        push(rest, &here, doc);
    }
    if !doc.text.ends_with('\n') {
        doc.text.push('\n');
        doc.origins.push(format!("{}:end{by}", rel(root, path)));
    }
}

static ANCHOR_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"ANCHOR(_END)?:\s*[\w-]+").unwrap());

/// The file an include names, its text, and the lines of it to include: all
/// of them, an ANCHOR's (which must exist, with its ANCHOR_END), or a range
/// `N`, `N:M`, `N:`, `:M`; and whether it is an ANCHOR's, whose other
/// ANCHOR lines mdBook leaves out.
fn include_part(
    root: &Path,
    from: &Path,
    spec: &str,
    here: &str,
) -> Result<(PathBuf, String, std::ops::RangeInclusive<usize>, bool), String> {
    let (file, sel) = match spec.split_once(':') {
        Some((f, s)) => (f, Some(s)),
        None => (spec, None),
    };
    let path = normalize(&from.parent().unwrap().join(file));
    let what = format!("{here}: {{{{#include {spec}}}}}: {}", rel(root, &path));
    let body = std::fs::read_to_string(&path).map_err(|e| format!("{what}: {e}"))?;
    let count = numbered(&body).len();
    let anchored =
        sel.is_some_and(|s| !s.is_empty() && !s.chars().all(|c| c.is_ascii_digit() || c == ':'));
    let range = match sel {
        None => 1..=count,
        Some(sel) if anchored => {
            let start = Regex::new(&format!(r"ANCHOR:\s*{}\b", regex::escape(sel))).unwrap();
            let end = Regex::new(&format!(r"ANCHOR_END:\s*{}\b", regex::escape(sel))).unwrap();
            let lines = numbered(&body);
            let Some(&(first, _)) = lines.iter().find(|(_, l)| start.is_match(l)) else {
                return Err(format!("{what} has no `ANCHOR: {sel}`"));
            };
            let Some(&(last, _)) = lines[first..].iter().find(|(_, l)| end.is_match(l)) else {
                return Err(format!(
                    "{what} has no `ANCHOR_END: {sel}` after its ANCHOR"
                ));
            };
            first + 1..=last - 1
        }
        Some(sel) => {
            let num = |s: &str| -> Result<Option<usize>, String> {
                match s {
                    "" => Ok(None),
                    s => s
                        .parse()
                        .map(Some)
                        .map_err(|_| format!("{what}: not a line range")),
                }
            };
            match sel.split_once(':') {
                None => {
                    let n = num(sel)?.unwrap_or(1);
                    n..=n
                }
                Some((a, b)) => num(a)?.unwrap_or(1)..=num(b)?.unwrap_or(count),
            }
        }
    };
    Ok((path, body, range, anchored))
}

/// The text with fenced code blocks, inline code spans and HTML comments
/// replaced by spaces (newlines kept, so offsets and lines stay).
fn blank_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let run = |c: char| t.chars().take_while(|&x| x == c).count();
        let opens = ['`', '~'].into_iter().find(|&c| run(c) >= 3);
        match (fence, opens) {
            (None, Some(c)) => {
                fence = Some((c, run(c)));
                out.push_str(&blank(line));
            }
            (Some((c, n)), _) => {
                if run(c) >= n && t[run(c)..].trim().is_empty() {
                    fence = None;
                }
                out.push_str(&blank(line));
            }
            (None, None) => out.push_str(line),
        }
    }
    let out = blank_matches(&out, &Regex::new(r"(?s)<!--.*?-->").unwrap());
    blank_code_spans(&out)
}

/// Spaces for `s`, byte for byte, its newlines kept.
fn blank(s: &str) -> String {
    s.bytes()
        .map(|c| if c == b'\n' { '\n' } else { ' ' })
        .collect()
}

fn blank_matches(text: &str, re: &Regex) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in re.find_iter(text) {
        out.push_str(&text[last..m.start()]);
        out.push_str(&blank(m.as_str()));
        last = m.end();
    }
    out.push_str(&text[last..]);
    out
}

/// Inline code: a run of N backticks up to the next run of exactly N
/// (CommonMark's rule); an unmatched run is literal text.
fn blank_code_spans(text: &str) -> String {
    let b = text.as_bytes();
    let run_at = |i: usize| b[i..].iter().take_while(|&&c| c == b'`').count();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] != b'`' {
            i += 1;
            continue;
        }
        let n = run_at(i);
        let mut j = i + n;
        let mut closed = None;
        while j < b.len() {
            if b[j] == b'`' {
                let m = run_at(j);
                if m == n {
                    closed = Some(j + m);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match closed {
            Some(end) => {
                spans.push((i, end));
                i = end;
            }
            None => i += n,
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (s, e) in spans {
        out.push_str(&text[last..s]);
        out.push_str(&blank(&text[s..e]));
        last = e;
    }
    out.push_str(&text[last..]);
    out
}

static INLINE_LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^<>\n]*>|(?:[^\s()]|\([^\s()]*\))*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)"#,
    )
    .unwrap()
});
static REFERENCE_DEF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)").unwrap());
static HTML_ATTR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)<[a-z][^>]*\s(?:href|src)\s*=\s*["']([^"']*)["']"#).unwrap()
});

/// Every link destination outside code, with its offset in the text.
fn links(text: &str) -> Vec<(usize, String)> {
    let text = blank_code(text);
    let mut out = Vec::new();
    for re in [&*INLINE_LINK, &*REFERENCE_DEF, &*HTML_ATTR] {
        for c in re.captures_iter(&text) {
            let m = c.get(1).unwrap();
            let dest = m.as_str().trim_start_matches('<').trim_end_matches('>');
            out.push((m.start(), dest.to_string()));
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// Heading ids

/// The id mdBook (and GitHub) gives a heading with this text.
fn id_of(text: &str) -> String {
    text.trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_lowercase().collect::<String>())
            } else if c.is_whitespace() {
                Some("-".to_string())
            } else {
                None
            }
        })
        .collect()
}

/// A heading's markdown as the text it renders: code spans' contents kept,
/// links and images reduced to their text, HTML tags, emphasis and
/// backslash escapes dropped.
fn heading_text(md: &str) -> String {
    let mut out = String::new();
    let blanked = blank_code_spans(md);
    let mut plain = String::new();
    let flush = |plain: &mut String, out: &mut String| {
        let t = Regex::new(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)")
            .unwrap()
            .replace_all(plain, "$1")
            .into_owned();
        let t = Regex::new(r"<[^>]*>").unwrap().replace_all(&t, "");
        let t = Regex::new(r"\\(.)").unwrap().replace_all(&t, "$1");
        let t = t.replace('*', "");
        // `_` delimits emphasis unless it is inside a word (x86_64).
        let chars: Vec<char> = t.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            let word = |j: Option<usize>| {
                j.and_then(|j| chars.get(j))
                    .is_some_and(|c| c.is_alphanumeric())
            };
            if c == '_' && !(word(i.checked_sub(1)) && word(Some(i + 1))) {
                continue;
            }
            out.push(c);
        }
        plain.clear();
    };
    for (i, c) in md.char_indices() {
        let in_code = blanked.as_bytes()[i] == b' ' && c != ' ';
        if in_code {
            flush(&mut plain, &mut out);
            // The span's contents without its backticks.
            if c != '`' {
                out.push(c);
            }
        } else {
            plain.push(c);
        }
    }
    flush(&mut plain, &mut out);
    out
}

static ATX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$").unwrap());
static CUSTOM_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*\{#([\w-]+)[^}]*\}\s*$").unwrap());

/// The ids of a document's headings, in order, duplicates numbered.
fn heading_ids(text: &str) -> Vec<String> {
    let blanked = blank_code(text);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut ids = Vec::new();
    for (line, shown) in text.lines().zip(blanked.lines()) {
        // Code blocks and comments are blanked: a `#` line there is no heading.
        if !ATX.is_match(shown) {
            continue;
        }
        let Some(c) = ATX.captures(line) else {
            continue;
        };
        let md = c.get(1).map_or("", |m| m.as_str());
        let id = match CUSTOM_ID.captures(md) {
            Some(custom) => custom[1].to_string(),
            None => id_of(&heading_text(md)),
        };
        let n = counts.entry(id.clone()).or_insert(0);
        ids.push(if *n == 0 { id } else { format!("{id}-{n}") });
        *n += 1;
    }
    ids
}

// ---------------------------------------------------------------------------
// The checks

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(Ok(v))) = (b[i], hex.map(|h| u8::from_str_radix(h, 16))) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The layout the checks read: README.md at the root, the book's chapters
/// under docs/src.
struct Book {
    root: PathBuf,
}

impl Book {
    fn src(&self) -> PathBuf {
        self.root.join("docs/src")
    }

    fn is_chapter(&self, p: &Path) -> bool {
        normalize(p).starts_with(self.src())
    }

    /// README.md and every markdown file under docs/src, chapters expanded.
    fn docs(&self, reading: &mut Reading) -> Vec<Doc> {
        let mut paths = vec![self.root.join("README.md")];
        paths.extend(self.chapter_files());
        paths
            .iter()
            .filter_map(|p| load(&self.root, p, self.is_chapter(p), reading))
            .collect()
    }

    fn chapter_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = walkdir::WalkDir::new(self.src())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        v.sort();
        v
    }

    /// Every broken relative link, as `origin: link: why`.
    fn broken_links(&self) -> Vec<String> {
        let mut reading = Reading::default();
        let docs = self.docs(&mut reading);
        let mut errors = reading.errors;
        let mut ids: BTreeMap<PathBuf, Result<Vec<String>, String>> = BTreeMap::new();
        let scheme = Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:").unwrap();
        for doc in &docs {
            let is_summary = doc.path == self.src().join("SUMMARY.md");
            for (at, dest) in links(&doc.text) {
                let origin = doc.origin_of(at);
                // http, https, mailto, ...: not checked, no internet here.
                if scheme.is_match(&dest) {
                    continue;
                }
                if dest.is_empty() {
                    // `[Draft]()` is a draft chapter in SUMMARY.md.
                    if !is_summary {
                        errors.push(format!("{origin}: an empty link"));
                    }
                    continue;
                }
                let (file, anchor) = match dest.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (dest.as_str(), None),
                };
                let file = percent_decode(file);
                if file.starts_with('/') {
                    errors.push(format!(
                        "{origin}: {dest}: an absolute path; links are relative to the file"
                    ));
                    continue;
                }
                let target = if file.is_empty() {
                    doc.path.clone()
                } else {
                    normalize(&doc.path.parent().unwrap().join(&file))
                };
                if !target.exists() {
                    errors.push(format!(
                        "{origin}: {dest}: {} does not exist",
                        rel(&self.root, &target)
                    ));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if target.extension().is_none_or(|x| x != "md") {
                    errors.push(format!(
                        "{origin}: {dest}: an anchor into {}, which has no headings",
                        rel(&self.root, &target)
                    ));
                    continue;
                }
                let known = ids.entry(target.clone()).or_insert_with(|| {
                    // Its own errors are reported where it is read as a doc.
                    let mut quiet = Reading::default();
                    load(&self.root, &target, self.is_chapter(&target), &mut quiet)
                        .map(|d| heading_ids(&d.text))
                        .ok_or_else(|| quiet.errors.join("; "))
                });
                match known {
                    Err(e) => errors.push(format!("{origin}: {dest}: {e}")),
                    Ok(known) if !known.iter().any(|k| k == anchor) => errors.push(format!(
                        "{origin}: {dest}: no heading of {} has the id `{anchor}` (its ids: {})",
                        rel(&self.root, &target),
                        known.join(", ")
                    )),
                    Ok(_) => {}
                }
            }
        }
        errors
    }

    /// The files SUMMARY.md lists, in its order (drafts left out).
    fn summary_entries(&self) -> Result<Vec<PathBuf>, String> {
        let summary = self.src().join("SUMMARY.md");
        let text = std::fs::read_to_string(&summary)
            .map_err(|e| format!("{}: {e}", rel(&self.root, &summary)))?;
        Ok(links(&text)
            .into_iter()
            .filter(|(_, dest)| !dest.is_empty())
            .map(|(_, dest)| {
                let file = dest.split('#').next().unwrap();
                normalize(&self.src().join(percent_decode(file)))
            })
            .collect())
    }

    /// Chapters missing from SUMMARY.md, and SUMMARY entries that are not
    /// chapters under docs/src. A file only included by a chapter is not a
    /// chapter.
    fn summary_mismatches(&self) -> Vec<String> {
        let summary = self.src().join("SUMMARY.md");
        let mut errors = Vec::new();
        let listed: BTreeSet<PathBuf> = match self.summary_entries() {
            Ok(listed) => listed.into_iter().collect(),
            Err(e) => return vec![e],
        };
        for p in &listed {
            let dest = rel(&self.src(), p);
            if !p.starts_with(self.src()) || p.extension().is_none_or(|x| x != "md") {
                errors.push(format!(
                    "docs/src/SUMMARY.md: {dest}: an entry that is not a chapter under docs/src"
                ));
            } else if !p.is_file() {
                errors.push(format!(
                    "docs/src/SUMMARY.md: {dest}: {} does not exist",
                    rel(&self.root, p)
                ));
            }
        }
        let mut reading = Reading::default();
        self.docs(&mut reading);
        let included = reading.included;
        for p in self.chapter_files() {
            let p = normalize(&p);
            if p != summary && !listed.contains(&p) && !included.contains(&p) {
                errors.push(format!(
                    "{}: a chapter that SUMMARY.md does not list",
                    rel(&self.root, &p)
                ));
            }
        }
        errors
    }
}

fn verdict(what: &str, errors: Vec<String>) -> Result<(), Failed> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} {what}:\n  {}", errors.len(), errors.join("\n  ")).into())
    }
}

// ---------------------------------------------------------------------------
// The tests

fn relative_links_resolve() -> Result<(), Failed> {
    verdict(
        "broken relative link(s)",
        Book { root: repo() }.broken_links(),
    )
}

fn every_chapter_is_in_the_summary() -> Result<(), Failed> {
    verdict(
        "SUMMARY.md mismatch(es)",
        Book { root: repo() }.summary_mismatches(),
    )
}

/// The ids, against what mdBook 0.5.4 rendered for the same headings.
fn heading_ids_follow_mdbooks_rule() -> Result<(), Failed> {
    let md = "# A\n\n## Dup\n\n## Dup\n\n```\n## not a heading\n```\n\n## Dup\n\n\
              ## Über `x_y` & *em* _u_ [link](b.md) <b>tag</b> 1.2\n\n\
              ### What `<optimized out>` still means at -O0\n\n\
              ### Edit → breakpoint: `cargo xtask bench loop`\n\n\
              ## Three architectures: x86_64, arm64, User-Mode Linux\n\n\
              ## UML on a host with a larger XSAVE area (Intel's AMX)\n\n\
              ## Closed ##\n\n## Custom {#mine}\n";
    let want = [
        "a",
        "dup",
        "dup-1",
        "dup-2",
        "über-x_y--em-u-link-tag-12",
        "what-optimized-out-still-means-at--o0",
        "edit--breakpoint-cargo-xtask-bench-loop",
        "three-architectures-x86_64-arm64-user-mode-linux",
        "uml-on-a-host-with-a-larger-xsave-area-intels-amx",
        "closed",
        "mine",
    ];
    let got = heading_ids(md);
    if got == want {
        Ok(())
    } else {
        Err(format!("heading ids:\n  got  {got:?}\n  want {want:?}").into())
    }
}

/// The checks fail where they should: a scratch README and book with a
/// missing file, a missing anchor, a missing include anchor, an unlisted
/// chapter and a SUMMARY entry that does not exist; and nothing in code.
fn the_checks_find_what_is_broken() -> Result<(), Failed> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("book-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let src = root.join("docs/src");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    let write = |p: &str, s: &str| std::fs::write(root.join(p), s).unwrap();
    write(
        "README.md",
        "# R\n\n<!-- ANCHOR: part -->\nsee [b](docs/src/b.md#two)\n<!-- ANCHOR_END: part -->\n\n\
         [gone](docs/src/gone.md) [ok](docs/src/a.md#a-heading) [web](https://example.org/x.md)\n\n\
         ```\n[in a fence](nowhere.md)\n```\n\n`[in code](nowhere.md)`\n",
    );
    write(
        "docs/src/SUMMARY.md",
        "# Summary\n\n- [A](a.md)\n- [Missing](missing.md)\n- [Draft]()\n",
    );
    write(
        "docs/src/a.md",
        "# A heading\n\n[self](#a-heading) [nope](#nope) [b](b.md#one) [b2](./b.md#one-1)\n\n\
         {{#include ../../README.md:part}}\n\n{{#include ../../README.md:absent}}\n",
    );
    write("docs/src/b.md", "# One\n\n# One\n");
    let book = Book { root: root.clone() };
    let links = book.broken_links();
    let summary = book.summary_mismatches();
    let _ = std::fs::remove_dir_all(&root);
    let all = [links.clone(), summary.clone()].concat();
    let expect = [
        "docs/src/gone.md does not exist",
        "#nope: no heading of docs/src/a.md has the id `nope`",
        "README.md:4 (included by docs/src/a.md:5): docs/src/b.md#two: docs/src/docs/src/b.md does not exist",
        "README.md:4: docs/src/b.md#two: no heading of docs/src/b.md has the id `two`",
        "README.md has no `ANCHOR: absent`",
        "missing.md: docs/src/missing.md does not exist",
        "docs/src/b.md: a chapter that SUMMARY.md does not list",
    ];
    let mut missing: Vec<&str> = expect
        .iter()
        .copied()
        .filter(|e| !all.iter().any(|l| l.contains(e)))
        .collect();
    let unexpected: Vec<&String> = all
        .iter()
        .filter(|l| !expect.iter().any(|e| l.contains(e)))
        .collect();
    if !unexpected.is_empty() {
        missing.push("(and nothing else)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "expected {missing:?}\nin:\n  {}\nunexpected: {unexpected:?}",
            all.join("\n  ")
        )
        .into())
    }
}

/// mdbook: the one `cargo xtask setup --install` puts under target/, else
/// PATH's.
fn mdbook() -> Option<PathBuf> {
    let ours = repo().join("target/host-tools/bin/mdbook");
    if ours.is_file() {
        return Some(ours);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("mdbook"))
        .find(|p| p.is_file())
}

fn the_book_builds(mdbook: Option<PathBuf>) -> Result<Completion, Failed> {
    let Some(mdbook) = mdbook else {
        return Ok(Completion::ignored_with(SKIP_NO_MDBOOK));
    };
    let out_dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("book-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(&mdbook)
        .arg("build")
        .arg(repo().join("docs"))
        .arg("-d")
        .arg(&out_dir)
        .output()
        .map_err(|e| format!("{}: {e}", mdbook.display()))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // mdBook logs a failed include as an ERROR and still exits 0.
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    // A page for every SUMMARY entry (unlisted chapters are the other
    // test's to report).
    let book = Book { root: repo() };
    let chapters: Vec<PathBuf> = book
        .summary_entries()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| Some(out_dir.join(p.strip_prefix(book.src()).ok()?.with_extension("html"))))
        .collect();
    let missing: Vec<String> = chapters
        .iter()
        .chain([&out_dir.join("index.html")])
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    let _ = std::fs::remove_dir_all(&out_dir);
    if !out.status.success() || !complaints.is_empty() || !missing.is_empty() {
        return Err(format!(
            "{} build docs: {}; not written: {missing:?}\n{log}",
            mdbook.display(),
            out.status
        )
        .into());
    }
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let mdbook = mdbook();
    if mdbook.is_none() {
        eprintln!("{SKIP_NO_MDBOOK}");
    }
    let trials = vec![
        Trial::test("relative_links_resolve", relative_links_resolve),
        Trial::test(
            "every_chapter_is_in_the_summary",
            every_chapter_is_in_the_summary,
        ),
        Trial::test(
            "heading_ids_follow_mdbooks_rule",
            heading_ids_follow_mdbooks_rule,
        ),
        Trial::test(
            "the_checks_find_what_is_broken",
            the_checks_find_what_is_broken,
        ),
        Trial::ignorable_test("the_book_builds", {
            let mdbook = mdbook.clone();
            move || the_book_builds(mdbook)
        })
        .with_ignored_flag(mdbook.is_none()),
    ];
    libtest_mimic::run(&args, trials).exit();
}

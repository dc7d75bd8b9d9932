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
//! Markdown is read with pulldown-cmark, the parser mdBook uses, with
//! mdBook's extensions: links, images and reference definitions from its
//! events (none from code, indented or fenced, nor from an HTML comment),
//! headings of both kinds (`#` and underlined) with their `{#custom}` ids.
//! mdBook's own `{{#include}}` is expanded first, as mdBook's preprocessor
//! does; the `href`/`src` of raw HTML are read from the HTML the parser
//! hands over.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};
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

/// mdBook's parser: pulldown-cmark with the extensions mdBook 0.5 turns on
/// (mdbook-markdown's `new_cmark_parser`, smart punctuation included, as
/// book.toml leaves it on).
fn parser(text: &str) -> Parser<'_> {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_SMART_PUNCTUATION
        | Options::ENABLE_DEFINITION_LIST;
    Parser::new_ext(text, options)
}

static HTML_ATTR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)<[a-z][^>]*\s(?:href|src)\s*=\s*["']([^"']*)["']"#).unwrap()
});
static HTML_COMMENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<!--.*?-->").unwrap());

/// Every link destination outside code, with its offset in the text:
/// inline links and images, reference definitions (each where it is
/// defined, used or not; the links that use one are not checked again),
/// and the `href`/`src` of raw HTML outside its comments.
fn links(text: &str) -> Vec<(usize, String)> {
    let events = parser(text).into_offset_iter();
    let mut out: Vec<(usize, String)> = events
        .reference_definitions()
        .iter()
        .map(|(_, def)| (def.span.start, def.dest.to_string()))
        .collect();
    // Raw HTML, as pieces of source: a block comes one line at a time.
    let mut html: Vec<(usize, String)> = Vec::new();
    for (event, range) in events {
        match event {
            Event::Start(
                Tag::Link {
                    link_type: LinkType::Inline,
                    dest_url,
                    ..
                }
                | Tag::Image {
                    link_type: LinkType::Inline,
                    dest_url,
                    ..
                },
            ) => out.push((range.start, dest_url.into_string())),
            Event::Html(piece) | Event::InlineHtml(piece) => {
                html.push((range.start, piece.into_string()));
            }
            _ => {}
        }
    }
    out.extend(html_links(&html));
    out.sort();
    out
}

/// The `href` and `src` of raw HTML given as pieces of source, each with its
/// offset: read together, so a comment over several lines hides them all.
fn html_links(pieces: &[(usize, String)]) -> Vec<(usize, String)> {
    let joined: String = pieces.iter().map(|(_, p)| p.as_str()).collect();
    let starts: Vec<usize> = pieces
        .iter()
        .scan(0, |at, (_, p)| {
            let start = *at;
            *at += p.len();
            Some(start)
        })
        .collect();
    let comments: Vec<std::ops::Range<usize>> =
        HTML_COMMENT.find_iter(&joined).map(|m| m.range()).collect();
    HTML_ATTR
        .captures_iter(&joined)
        .map(|c| c.get(1).unwrap())
        .filter(|m| !comments.iter().any(|r| r.contains(&m.start())))
        .map(|m| {
            // Back from the joined text to the piece's place in the source.
            let i = starts.partition_point(|&s| s <= m.start()) - 1;
            (pieces[i].0 + m.start() - starts[i], m.as_str().to_string())
        })
        .collect()
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

/// The ids of a document's headings, in order, duplicates numbered: a
/// `{#custom}` id as given, else the id of the text the heading renders
/// (its text and code spans; HTML tags, emphasis and link syntax dropped).
fn heading_ids(text: &str) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut ids = Vec::new();
    let mut heading: Option<(Option<String>, String)> = None;
    for event in parser(text) {
        match (event, heading.as_mut()) {
            (Event::Start(Tag::Heading { id, .. }), _) => {
                heading = Some((id.map(|id| id.to_string()), String::new()));
            }
            (Event::Text(t) | Event::Code(t), Some((_, shown))) => shown.push_str(&t),
            (Event::End(TagEnd::Heading(_)), Some(_)) => {
                let (custom, shown) = heading.take().expect("in a heading");
                let id = custom.unwrap_or_else(|| id_of(&shown));
                let n = counts.entry(id.clone()).or_insert(0);
                ids.push(if *n == 0 { id } else { format!("{id}-{n}") });
                *n += 1;
            }
            _ => {}
        }
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
/// chapter and a SUMMARY entry that does not exist, each said once; and
/// nothing in code (fenced, indented or inline), after an escaped `[`, or
/// in an HTML comment.
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
         {{#include ../../README.md:part}}\n\n{{#include ../../README.md:absent}}\n\n\
         Setext heading\n==============\n\n> ## Quoted\n\n\
         [s](#setext-heading) [q](#quoted) [`a]`](gone-code.md) \\[not a link](nowhere.md) [r][ref]\n\n\
         \x20   [in indented code](nowhere.md)\n\n\
         <!--\n<a href=\"nowhere.md\">in a comment</a>\n-->\n<a href=\"gone-html.md\">html</a>\n\n\
         [ref]: gone-ref.md\n",
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
        // SUMMARY's entry, as a link and as an entry.
        "SUMMARY.md:4: missing.md: docs/src/missing.md does not exist",
        "SUMMARY.md: missing.md: docs/src/missing.md does not exist",
        "docs/src/b.md: a chapter that SUMMARY.md does not list",
        // What a parser reads and regular expressions did not: a link
        // whose text holds a code span with a `]`, raw HTML, a reference
        // definition (once, not again where it is used).
        "gone-code.md: docs/src/gone-code.md does not exist",
        "gone-html.md: docs/src/gone-html.md does not exist",
        "gone-ref.md: docs/src/gone-ref.md does not exist",
    ];
    // Each once; nothing from code, an escaped bracket or a comment, and
    // the underlined and the quoted heading are targets.
    let mut missing: Vec<&str> = expect
        .iter()
        .copied()
        .filter(|e| all.iter().filter(|l| l.contains(e)).count() != 1)
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

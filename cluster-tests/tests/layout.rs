//! Layout ratchet for the sources of `node/src` and `cli/src`, run by the gate.
//!
//! Three checks, each against a list of violations known today:
//!
//! 1. No import cycles between top-level modules (a file `X.rs` or folder `X/` directly under
//!    `src/`; `lib.rs`/`main.rs` are the crate root, left out of the graph). A module refers to
//!    another through `crate::X` anywhere in its code (also `use crate::{X, Y::z}` groups) or a
//!    `super::` path that climbs to the crate root.
//! 2. No function body over [`MAX_FN_LINES`] lines (from the `fn` line to its closing brace).
//! 3. The struct the node daemon shares (`struct Node { .. }`, in `node/src`) has no field
//!    visible to the whole crate (`pub`, `pub(crate)`).
//!
//! Comments, string and char literals are skipped by a small tokenizer, and so is every item
//! under `#[cfg(test)]` (test modules, inline or in their own file). The re-exports of the crate
//! root are not followed: `crate::Result` (re-exported from `error`) is no edge.
//!
//! The test fails when a violation is found that is not listed below, and when a listed one no
//! longer occurs (delete its entry: the message names it), so the lists only shrink; since the
//! daemon's restructure they are empty, so any violation fails the gate. Every run
//! prints what it found; see it on success with
//! `cargo test -p ironcore-cluster-tests --test layout -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The crates checked, as directories of the workspace.
const CRATES: &[&str] = &["node", "cli"];

/// The longest function body allowed, in lines from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 150;

/// Import cycles allowed: the crate's directory and the members of one strongly connected
/// component of its module graph, sorted. None since the daemon's restructure ("The daemon in
/// subsystem folders"); keep it empty.
const KNOWN_CYCLES: &[(&str, &[&str])] = &[];

/// Functions allowed over [`MAX_FN_LINES`], as `file:fn_name`. None; keep it empty.
const KNOWN_LONG_FNS: &[&str] = &[];

/// Whether `struct Node` in `node/src` may have fields visible to the whole crate: no, it is
/// reached through its methods.
const KNOWN_NODE_PUB_FIELDS: bool = false;

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Punct,
    /// `::`
    PathSep,
    /// String, char or number literal (its text is not kept).
    Lit,
    Lifetime,
}

#[derive(Clone, Debug)]
struct Tok {
    kind: Kind,
    text: String,
    line: usize,
}

impl Tok {
    fn is(&self, kind: Kind, text: &str) -> bool {
        self.kind == kind && self.text == text
    }
    fn ident(&self, text: &str) -> bool {
        self.is(Kind::Ident, text)
    }
    fn punct(&self, text: &str) -> bool {
        self.is(Kind::Punct, text)
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Skips a quoted string whose opening `"` is just before `i`; returns the index after the
/// closing quote.
fn skip_string(c: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => {
                if c.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

/// Skips a raw string (`r#"…"#` with `hashes` hashes) whose opening `"` is just before `i`.
fn skip_raw_string(c: &[char], mut i: usize, hashes: usize, line: &mut usize) -> usize {
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        if c[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    i
}

/// At a `'`: the index after the char literal starting there, or `None` for a lifetime/label.
fn char_literal_end(c: &[char], i: usize) -> Option<usize> {
    if c.get(i + 1) == Some(&'\\') {
        // '\n', '\'', '\\', '\x41', '\u{7b}'
        let mut j = i + 3;
        while j < c.len() && c[j] != '\'' && c[j] != '\n' {
            j += 1;
        }
        return Some(j + 1);
    }
    if c.get(i + 2) == Some(&'\'') {
        return Some(i + 3);
    }
    None
}

/// Rust source as tokens with their lines, without comments; literals keep no text.
fn tokenize(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let n = c.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < n {
        let ch = c[i];
        let start_line = line;
        let mut push = |kind: Kind, text: String| {
            out.push(Tok {
                kind,
                text,
                line: start_line,
            })
        };
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < n && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            // Block comments nest.
            let mut depth = 0usize;
            while i < n {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(&c, i + 1, &mut line);
            push(Kind::Lit, String::new());
        } else if ch == '\'' {
            if let Some(end) = char_literal_end(&c, i) {
                i = end;
                push(Kind::Lit, String::new());
            } else {
                let s = i;
                i += 1;
                while i < n && is_ident_continue(c[i]) {
                    i += 1;
                }
                push(Kind::Lifetime, c[s..i].iter().collect());
            }
        } else if is_ident_start(ch) {
            let s = i;
            while i < n && is_ident_continue(c[i]) {
                i += 1;
            }
            let word: String = c[s..i].iter().collect();
            let next = c.get(i).copied();
            match (word.as_str(), next) {
                ("b" | "c", Some('"')) => {
                    i = skip_string(&c, i + 1, &mut line);
                    push(Kind::Lit, String::new());
                }
                ("b", Some('\'')) => {
                    i = char_literal_end(&c, i).unwrap_or(i + 1);
                    push(Kind::Lit, String::new());
                }
                ("r" | "br" | "cr", Some('"' | '#')) => {
                    let mut j = i;
                    while c.get(j) == Some(&'#') {
                        j += 1;
                    }
                    let hashes = j - i;
                    if c.get(j) == Some(&'"') {
                        i = skip_raw_string(&c, j + 1, hashes, &mut line);
                        push(Kind::Lit, String::new());
                    } else if word == "r"
                        && hashes == 1
                        && c.get(j).is_some_and(|&d| is_ident_start(d))
                    {
                        // Raw identifier r#name.
                        let s = j;
                        i = j;
                        while i < n && is_ident_continue(c[i]) {
                            i += 1;
                        }
                        push(Kind::Ident, c[s..i].iter().collect());
                    } else {
                        push(Kind::Ident, word);
                    }
                }
                _ => push(Kind::Ident, word),
            }
        } else if ch.is_ascii_digit() {
            while i < n
                && (is_ident_continue(c[i])
                    || (c[i] == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                i += 1;
            }
            push(Kind::Lit, String::new());
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            i += 2;
            push(Kind::PathSep, "::".into());
        } else {
            i += 1;
            push(Kind::Punct, ch.to_string());
        }
    }
    out
}

/// The index of the token closing the bracket opened at `open` (or the last token).
fn matching_close(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        if t.kind != Kind::Punct {
            continue;
        }
        match t.text.as_str() {
            "{" | "(" | "[" => depth += 1,
            "}" | ")" | "]" => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len() - 1
}

// ---------------------------------------------------------------------------------------------
// Test-only code
// ---------------------------------------------------------------------------------------------

/// If an attribute starts at `i` (`#[…]` or `#![…]`): its last index, whether it is inner, and
/// whether it is exactly `cfg(test)`.
fn attribute_at(toks: &[Tok], i: usize) -> Option<(usize, bool, bool)> {
    if !toks[i].punct("#") {
        return None;
    }
    let inner = toks.get(i + 1).is_some_and(|t| t.punct("!"));
    let open = if inner { i + 2 } else { i + 1 };
    if !toks.get(open).is_some_and(|t| t.punct("[")) {
        return None;
    }
    let close = matching_close(toks, open);
    let body: Vec<&str> = toks[open + 1..close]
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    Some((close, inner, body == ["cfg", "(", "test", ")"]))
}

/// Words that may start an item after its attributes and visibility.
const ITEM_WORDS: &[&str] = &[
    "fn",
    "mod",
    "impl",
    "use",
    "const",
    "static",
    "struct",
    "enum",
    "trait",
    "type",
    "union",
    "async",
    "unsafe",
    "extern",
    "default",
    "macro_rules",
];

/// The tokens without the items under `#[cfg(test)]` (a whole file under `#![cfg(test)]` gives
/// none), and the names of `#[cfg(test)] mod name;` declarations (files to leave out).
fn strip_test_code(toks: &[Tok]) -> (Vec<Tok>, Vec<String>) {
    let mut kept = Vec::with_capacity(toks.len());
    let mut test_mod_files = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let Some((attr_end, inner, is_cfg_test)) = attribute_at(toks, i) else {
            let t = &toks[i];
            if t.punct("{") {
                depth += 1;
            } else if t.punct("}") {
                depth = depth.saturating_sub(1);
            }
            kept.push(t.clone());
            i += 1;
            continue;
        };
        if is_cfg_test && inner && depth == 0 {
            return (Vec::new(), Vec::new());
        }
        if !is_cfg_test || inner {
            kept.extend_from_slice(&toks[i..=attr_end]);
            i = attr_end + 1;
            continue;
        }
        // The item this attribute is on: more attributes, a visibility, then a keyword.
        let mut j = attr_end + 1;
        while let Some((end, _, _)) = toks.get(j).and_then(|_| attribute_at(toks, j)) {
            j = end + 1;
        }
        if toks.get(j).is_some_and(|t| t.ident("pub")) {
            j += 1;
            if toks.get(j).is_some_and(|t| t.punct("(")) {
                j = matching_close(toks, j) + 1;
            }
        }
        let is_item = toks
            .get(j)
            .is_some_and(|t| t.kind == Kind::Ident && ITEM_WORDS.contains(&t.text.as_str()));
        if !is_item {
            // On a field, statement or expression: keep it.
            kept.extend_from_slice(&toks[i..=attr_end]);
            i = attr_end + 1;
            continue;
        }
        if toks[j].ident("mod")
            && toks.get(j + 1).is_some_and(|t| t.kind == Kind::Ident)
            && toks.get(j + 2).is_some_and(|t| t.punct(";"))
        {
            test_mod_files.push(toks[j + 1].text.clone());
        }
        // The item ends at a `;` outside brackets or with the brace block that closes it.
        let mut k = j;
        let mut d = 0usize;
        while k < toks.len() {
            let t = &toks[k];
            if t.kind == Kind::Punct {
                match t.text.as_str() {
                    "(" | "[" | "{" => d += 1,
                    ")" | "]" => d = d.saturating_sub(1),
                    "}" => {
                        d = d.saturating_sub(1);
                        if d == 0 {
                            break;
                        }
                    }
                    ";" if d == 0 => break,
                    _ => {}
                }
            }
            k += 1;
        }
        i = k + 1;
    }
    (kept, test_mod_files)
}

// ---------------------------------------------------------------------------------------------
// Module references
// ---------------------------------------------------------------------------------------------

/// The first path segment(s) named at `j` after a path to the crate root: `X` of `crate::X`, or
/// each entry's first segment of `crate::{X, Y::z}`.
fn root_segments(toks: &[Tok], j: usize, line: usize, out: &mut Vec<(String, usize)>) {
    const NOT_MODULES: &[&str] = &["self", "super", "crate"];
    let Some(t) = toks.get(j) else { return };
    if t.kind == Kind::Ident {
        if !NOT_MODULES.contains(&t.text.as_str()) {
            out.push((t.text.clone(), line));
        }
        return;
    }
    if !t.punct("{") {
        return;
    }
    let close = matching_close(toks, j);
    let mut entry_start = true;
    let mut depth = 0usize;
    for t in &toks[j + 1..close] {
        if entry_start
            && depth == 0
            && t.kind == Kind::Ident
            && !NOT_MODULES.contains(&t.text.as_str())
        {
            out.push((t.text.clone(), t.line));
        }
        entry_start = false;
        if t.kind == Kind::Punct {
            match t.text.as_str() {
                "{" | "(" | "[" => depth += 1,
                "}" | ")" | "]" => depth = depth.saturating_sub(1),
                "," if depth == 0 => entry_start = true,
                _ => {}
            }
        }
    }
}

/// The names a file refers to at the crate root, with their lines: `crate::X`, and `super::X`
/// where the `super`s climb from this file (`depth` modules below the root) to the root. Names
/// that are no module (items of the root) are filtered out by the caller.
fn root_refs(toks: &[Tok], depth: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    // Brace depths at which inline `mod x { … }` blocks opened.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut mod_pending = false;
    for i in 0..toks.len() {
        let t = &toks[i];
        let prev = i.checked_sub(1).map(|p| &toks[p]);
        let starts_path = !prev.is_some_and(|p| p.kind == Kind::PathSep || p.punct("$"));
        match t.kind {
            Kind::Punct if t.text == "{" => {
                braces += 1;
                if mod_pending {
                    inline_mods.push(braces);
                    mod_pending = false;
                }
            }
            Kind::Punct if t.text == "}" => {
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
                braces = braces.saturating_sub(1);
            }
            Kind::Ident if t.text == "mod" => {
                mod_pending = toks.get(i + 1).is_some_and(|n| n.kind == Kind::Ident)
                    && toks.get(i + 2).is_some_and(|n| n.punct("{"));
            }
            Kind::Ident
                if t.text == "crate"
                    && starts_path
                    && toks.get(i + 1).is_some_and(|n| n.kind == Kind::PathSep) =>
            {
                root_segments(toks, i + 2, t.line, &mut out);
            }
            Kind::Ident if t.text == "super" && starts_path => {
                let mut j = i;
                let mut ups = 0;
                while toks.get(j).is_some_and(|n| n.ident("super"))
                    && toks.get(j + 1).is_some_and(|n| n.kind == Kind::PathSep)
                {
                    ups += 1;
                    j += 2;
                }
                if ups > 0 && ups == depth + inline_mods.len() {
                    root_segments(toks, j, t.line, &mut out);
                }
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Function lengths
// ---------------------------------------------------------------------------------------------

/// Every function with a body: its name, the line of its `fn` and its length in lines from there
/// to its closing brace.
fn fn_lengths(toks: &[Tok]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for i in 0..toks.len() {
        if !toks[i].ident("fn") {
            continue;
        }
        let Some(name) = toks.get(i + 1).filter(|t| t.kind == Kind::Ident) else {
            continue; // `fn(u8) -> u8` types, `fn $name` in macros
        };
        let mut depth = 0usize;
        let mut j = i + 2;
        let mut body = None;
        while j < toks.len() {
            let t = &toks[j];
            if t.kind == Kind::Punct {
                match t.text.as_str() {
                    "(" | "[" => depth += 1,
                    ")" | "]" => depth = depth.saturating_sub(1),
                    "{" if depth == 0 => {
                        body = Some(j);
                        break;
                    }
                    ";" if depth == 0 => break,
                    _ => {}
                }
            }
            j += 1;
        }
        if let Some(open) = body {
            let close = matching_close(toks, open);
            let len = toks[close].line - toks[i].line + 1;
            out.push((name.text.clone(), toks[i].line, len));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Fields of `struct Node`
// ---------------------------------------------------------------------------------------------

/// A field of `struct Node` visible to the whole crate.
#[derive(Debug, PartialEq, Eq)]
struct ExposedField {
    name: String,
    line: usize,
    visibility: String,
}

/// For each `struct Node { … }` in the file: its line and its fields visible to the whole crate
/// (`pub`, `pub(crate)`, `pub(in crate)`, and `pub(super)` in a file directly under `src/`).
fn node_structs(toks: &[Tok], depth: usize) -> Vec<(usize, Vec<ExposedField>)> {
    let mut out = Vec::new();
    for i in 0..toks.len() {
        if !(toks[i].ident("struct") && toks.get(i + 1).is_some_and(|t| t.ident("Node"))) {
            continue;
        }
        // Generics and a where clause may come before the body.
        let mut j = i + 2;
        while j < toks.len() && !toks[j].punct("{") && !toks[j].punct(";") && !toks[j].punct("(") {
            j += 1;
        }
        if !toks.get(j).is_some_and(|t| t.punct("{")) {
            continue;
        }
        let close = matching_close(toks, j);
        let mut fields = Vec::new();
        let mut d = 0usize;
        let mut k = j + 1;
        while k < close {
            let t = &toks[k];
            if t.kind == Kind::Punct {
                match t.text.as_str() {
                    "{" | "(" | "[" => d += 1,
                    "}" | ")" | "]" => d = d.saturating_sub(1),
                    _ => {}
                }
            }
            if d == 0 && t.ident("pub") {
                let mut vis = String::from("pub");
                let mut crate_wide = true;
                let mut m = k + 1;
                if toks[m].punct("(") {
                    let end = matching_close(toks, m);
                    let inside: Vec<&str> =
                        toks[m + 1..end].iter().map(|t| t.text.as_str()).collect();
                    vis = format!("pub({})", inside.join(" "));
                    crate_wide = match inside.as_slice() {
                        ["crate"] | ["in", "crate"] => true,
                        ["super"] => depth == 1,
                        _ => false,
                    };
                    m = end + 1;
                }
                if crate_wide {
                    fields.push(ExposedField {
                        name: toks.get(m).map(|t| t.text.clone()).unwrap_or_default(),
                        line: t.line,
                        visibility: vis,
                    });
                }
                k = m;
                continue;
            }
            k += 1;
        }
        out.push((toks[i].line, fields));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Crates on disk
// ---------------------------------------------------------------------------------------------

/// One source file of a crate, tokenized without its test-only code.
struct SrcFile {
    /// Relative to the workspace, e.g. `node/src/api/mod.rs`.
    rel: String,
    /// Its top-level module; `None` for the crate root (`lib.rs`, `main.rs`).
    module: Option<String>,
    /// How many modules below the crate root it is (`x.rs` and `x/mod.rs`: 1).
    depth: usize,
    toks: Vec<Tok>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The sources of `krate/src`, without `src/bin`, `tests/` folders and files of
/// `#[cfg(test)] mod x;` declarations.
fn load_crate(krate: &str) -> Vec<SrcFile> {
    let src = workspace().join(krate).join("src");
    let mut paths = Vec::new();
    rs_files(&src, &mut paths);
    let mut files = Vec::new();
    // Paths (relative to src, with `/`) of test-only module files, and their folders with a `/`.
    let mut test_only: Vec<String> = Vec::new();
    for path in paths {
        let rel_src = path
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let parts: Vec<&str> = rel_src.split('/').collect();
        if parts[0] == "bin" || parts[..parts.len() - 1].contains(&"tests") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (toks, test_mods) = strip_test_code(&tokenize(&text));
        let is_root = parts.len() == 1 && (parts[0] == "lib.rs" || parts[0] == "main.rs");
        let is_mod_rs = parts.last() == Some(&"mod.rs");
        // Where this file's child modules live.
        let child_dir = if is_root || is_mod_rs {
            parts[..parts.len() - 1].join("/")
        } else {
            rel_src.trim_end_matches(".rs").to_string()
        };
        for m in test_mods {
            let base = if child_dir.is_empty() {
                m
            } else {
                format!("{child_dir}/{m}")
            };
            test_only.push(format!("{base}.rs"));
            test_only.push(format!("{base}/"));
        }
        let depth = parts.len() - usize::from(is_mod_rs);
        files.push((
            rel_src.clone(),
            SrcFile {
                rel: format!("{krate}/src/{rel_src}"),
                module: (!is_root).then(|| parts[0].trim_end_matches(".rs").to_string()),
                depth,
                toks,
            },
        ));
    }
    files
        .into_iter()
        .filter(|(rel_src, _)| {
            !test_only
                .iter()
                .any(|t| rel_src == t || (t.ends_with('/') && rel_src.starts_with(t.as_str())))
        })
        .map(|(_, f)| f)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The module graph
// ---------------------------------------------------------------------------------------------

/// Module -> the modules it refers to, each with where it first does (`file:line`).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn module_graph(files: &[SrcFile]) -> Graph {
    let modules: BTreeSet<&str> = files.iter().filter_map(|f| f.module.as_deref()).collect();
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.to_string(), BTreeMap::new()))
        .collect();
    for f in files {
        let Some(from) = &f.module else { continue };
        for (to, line) in root_refs(&f.toks, f.depth) {
            if &to != from && modules.contains(to.as_str()) {
                graph
                    .get_mut(from)
                    .expect("module")
                    .entry(to)
                    .or_insert_with(|| format!("{}:{line}", f.rel));
            }
        }
    }
    graph
}

/// The strongly connected components with more than one member (Tarjan), each sorted, in order.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found.sort();
    t.found
}

/// A shortest cycle through the first member of a component: `[a, b, …, a]`.
fn example_cycle(graph: &Graph, component: &[String]) -> Vec<String> {
    let start = component[0].as_str();
    let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        for v in graph[u].keys().map(String::as_str) {
            if !members.contains(v) {
                continue;
            }
            if v == start {
                let mut path = vec![start.to_string()];
                let mut x = u;
                while x != start {
                    path.push(x.to_string());
                    x = parent[x];
                }
                path.push(start.to_string());
                path.reverse();
                return path;
            }
            if !parent.contains_key(v) {
                parent.insert(v, u);
                queue.push_back(v);
            }
        }
    }
    Vec::new()
}

// ---------------------------------------------------------------------------------------------
// The ratchet
// ---------------------------------------------------------------------------------------------

/// Found violations against the known ones: (found but not listed, listed but not found).
fn ratchet<T: Ord + Clone>(found: &BTreeSet<T>, known: &BTreeSet<T>) -> (Vec<T>, Vec<T>) {
    (
        found.difference(known).cloned().collect(),
        known.difference(found).cloned().collect(),
    )
}

fn cycle_entry(krate: &str, members: &[String]) -> String {
    let quoted: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    format!("({krate:?}, &[{}])", quoted.join(", "))
}

#[test]
fn no_new_import_cycles() {
    let mut report = String::new();
    let mut found = BTreeSet::new();
    let mut described = BTreeMap::new();
    for krate in CRATES {
        let graph = module_graph(&load_crate(krate));
        let comps = cycles(&graph);
        let edges: usize = graph.values().map(BTreeMap::len).sum();
        writeln!(
            report,
            "{krate}/src: {} top-level modules, {edges} edges, {} cycle component(s)",
            graph.len(),
            comps.len()
        )
        .unwrap();
        for comp in comps {
            let path = example_cycle(&graph, &comp);
            let mut text = format!("  [{krate}] {} modules: {}\n", comp.len(), comp.join(", "));
            writeln!(text, "    e.g. {}", path.join(" -> ")).unwrap();
            for pair in path.windows(2) {
                let at = &graph[&pair[0]][&pair[1]];
                writeln!(text, "      {} -> {} at {at}", pair[0], pair[1]).unwrap();
            }
            report.push_str(&text);
            described.insert((krate.to_string(), comp.clone()), text);
            found.insert((krate.to_string(), comp));
        }
    }
    let known: BTreeSet<(String, Vec<String>)> = KNOWN_CYCLES
        .iter()
        .map(|(k, ms)| {
            let mut ms: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
            ms.sort();
            (k.to_string(), ms)
        })
        .collect();
    let (new, gone) = ratchet(&found, &known);
    println!("import cycles between top-level modules:\n{report}");
    let mut problems = String::new();
    for (krate, comp) in &new {
        writeln!(
            problems,
            "NEW import cycle in {krate}/src (not in KNOWN_CYCLES):"
        )
        .unwrap();
        problems.push_str(&described[&(krate.clone(), comp.clone())]);
        if let Some((_, was)) = gone
            .iter()
            .find(|(k, was)| k == krate && comp.iter().all(|m| was.contains(m)))
        {
            writeln!(
                problems,
                "    it is what remains of the listed {}: replace that entry with {}",
                was.join(", "),
                cycle_entry(krate, comp)
            )
            .unwrap();
        } else {
            writeln!(problems, "    break it: remove one of the references above").unwrap();
        }
    }
    for (krate, comp) in &gone {
        writeln!(
            problems,
            "FIXED: the cycle {} no longer occurs; delete this entry from KNOWN_CYCLES:\n    {}",
            comp.join(", "),
            cycle_entry(krate, comp)
        )
        .unwrap();
    }
    assert!(problems.is_empty(), "\n{problems}");
}

#[test]
fn no_new_long_functions() {
    let mut found = BTreeMap::new();
    for krate in CRATES {
        for f in load_crate(krate) {
            for (name, line, len) in fn_lengths(&f.toks) {
                if len > MAX_FN_LINES {
                    found
                        .entry(format!("{}:{name}", f.rel))
                        .or_insert_with(Vec::new)
                        .push(format!("{}:{line} {name} {len} lines", f.rel));
                }
            }
        }
    }
    println!("functions over {MAX_FN_LINES} lines: {}", found.len());
    for lines in found.values() {
        for l in lines {
            println!("  {l}");
        }
    }
    let keys: BTreeSet<String> = found.keys().cloned().collect();
    let known: BTreeSet<String> = KNOWN_LONG_FNS.iter().map(|s| s.to_string()).collect();
    let (new, gone) = ratchet(&keys, &known);
    let mut problems = String::new();
    for k in &new {
        writeln!(
            problems,
            "NEW function over {MAX_FN_LINES} lines (not in KNOWN_LONG_FNS): {}; split it",
            found[k].join("; ")
        )
        .unwrap();
    }
    for k in &gone {
        writeln!(
            problems,
            "FIXED: {k} is no longer over {MAX_FN_LINES} lines (or is gone); delete this entry \
             from KNOWN_LONG_FNS: {k:?}"
        )
        .unwrap();
    }
    assert!(problems.is_empty(), "\n{problems}");
}

#[test]
fn node_fields_not_crate_visible() {
    let mut structs = Vec::new();
    for f in load_crate("node") {
        for (line, fields) in node_structs(&f.toks, f.depth) {
            structs.push((format!("{}:{line}", f.rel), fields));
        }
    }
    assert!(
        !structs.is_empty(),
        "no `struct Node {{ … }}` found in node/src: if the daemon's shared struct was renamed, \
         update node_fields_not_crate_visible"
    );
    let mut exposed = false;
    for (at, fields) in &structs {
        println!(
            "struct Node at {at}: {} crate-visible field(s)",
            fields.len()
        );
        for f in fields {
            println!("  line {}: {} {}", f.line, f.visibility, f.name);
        }
        exposed |= !fields.is_empty();
    }
    if exposed && !KNOWN_NODE_PUB_FIELDS {
        panic!(
            "NEW: struct Node has crate-visible fields (listed above) and KNOWN_NODE_PUB_FIELDS \
             is false; make them private and add methods"
        );
    }
    if !exposed && KNOWN_NODE_PUB_FIELDS {
        panic!(
            "FIXED: struct Node has no crate-visible fields any more; set KNOWN_NODE_PUB_FIELDS \
             to false (and drop its comment)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests of the check itself
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), String::new());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    fn refs(src: &str, depth: usize) -> Vec<String> {
        let (toks, _) = strip_test_code(&tokenize(src));
        root_refs(&toks, depth)
            .into_iter()
            .map(|(m, _)| m)
            .collect()
    }

    fn lengths(src: &str) -> Vec<(String, usize, usize)> {
        fn_lengths(&strip_test_code(&tokenize(src)).0)
    }

    #[test]
    fn finds_cycles_in_a_small_graph() {
        let g = graph(&[
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("c", "d"),
            ("d", "e"),
            ("e", "d"),
            ("f", "a"),
            ("a", "g"),
        ]);
        let comps = cycles(&g);
        assert_eq!(comps, vec![vec!["a", "b", "c"], vec!["d", "e"]]);
        assert_eq!(example_cycle(&g, &comps[0]), vec!["a", "b", "c", "a"]);
        assert_eq!(example_cycle(&g, &comps[1]), vec!["d", "e", "d"]);
        assert!(cycles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    }

    #[test]
    fn parses_use_groups() {
        assert_eq!(refs("use crate::{a, b::c};", 1), ["a", "b"]);
        let multi = "use crate::{\n    a::{x, y::Z},\n    self,\n    b,\n};\n";
        assert_eq!(refs(multi, 1), ["a", "b"]);
        assert_eq!(
            refs("fn f() { crate::d::g(); let x = crate::e::K; }", 2),
            ["d", "e"]
        );
        // `$crate` in macros, `pub(crate)` and paths not starting with `crate` are no reference.
        assert!(
            refs(
                "macro_rules! m { () => { $crate::a::f() } } pub(crate) fn f() { x::crate::b(); }",
                1
            )
            .is_empty()
        );
    }

    #[test]
    fn resolves_super_to_the_root_only() {
        assert_eq!(refs("use super::a;", 1), ["a"]);
        assert_eq!(refs("use super::{a, b::c};", 1), ["a", "b"]);
        assert!(refs("use super::a;", 2).is_empty());
        assert_eq!(refs("use super::super::a;", 2), ["a"]);
        assert!(refs("mod inner { use super::a; }", 1).is_empty());
        assert_eq!(
            refs("mod inner { use super::super::a; } use super::b;", 1),
            ["a", "b"]
        );
    }

    #[test]
    fn ignores_comments_strings_and_tests() {
        let src = r##"
            // use crate::a;
            /// crate::b::f
            //! crate::c
            /* crate::d /* nested */ crate::e */
            const S: &str = "crate::f::g";
            const R: &str = r#"crate::h "quoted" "#;
            const C: char = '"';
            fn f<'a>(x: &'a str) -> &'a str { crate::real::f(x) }
            #[cfg(test)]
            mod tests {
                use crate::i;
            }
            #[cfg(test)]
            use crate::j;
        "##;
        assert_eq!(refs(src, 1), ["real"]);
        assert!(refs("#![cfg(test)]\nuse crate::a;", 1).is_empty());
        let (_, decls) = strip_test_code(&tokenize("#[cfg(test)]\nmod tests;\nmod other;"));
        assert_eq!(decls, ["tests"]);
    }

    #[test]
    fn counts_function_lengths() {
        let src = "impl X {\n    pub async fn f(&self) {\n        let s = \"}}}\";\n        let c = '{';\n        let r = r#\"{\"#;\n        // }\n        /* { */\n    }\n}\n";
        assert_eq!(lengths(src), [("f".to_string(), 2, 7)]);
        let src = "trait T {\n    fn decl(&self);\n    fn default_body<'a>(&'a self) -> [u8; 2] {\n        [0; 2]\n    }\n}\nconst F: fn(u8) -> u8 = g;\nfn g(x: u8) -> u8 { x }\n";
        assert_eq!(
            lengths(src),
            [("default_body".to_string(), 3, 3), ("g".to_string(), 8, 1)]
        );
        let src = "fn kept() {}\n#[cfg(test)]\nmod tests {\n    fn skipped() {\n    }\n}\n";
        assert_eq!(lengths(src), [("kept".to_string(), 1, 1)]);
    }

    #[test]
    fn finds_crate_visible_node_fields() {
        let src = "pub struct Node {\n    pub a: u8,\n    pub(crate) b: Vec<(u8, u8)>,\n    pub(super) c: u8,\n    pub(self) d: u8,\n    e: u8,\n    #[cfg(test)]\n    pub f: u8,\n}\npub struct NodeStores { pub g: u8 }\n";
        let (toks, _) = strip_test_code(&tokenize(src));
        let fields = |depth| -> Vec<String> {
            node_structs(&toks, depth)
                .into_iter()
                .flat_map(|(_, fs)| fs.into_iter().map(|f| f.name))
                .collect()
        };
        assert_eq!(fields(1), ["a", "b", "c", "f"]);
        assert_eq!(fields(2), ["a", "b", "f"]);
        let (toks, _) = strip_test_code(&tokenize("pub struct Node {\n    a: u8,\n}\n"));
        assert_eq!(node_structs(&toks, 1), [(1, vec![])]);
    }

    #[test]
    fn ratchet_reports_both_ways() {
        let found: BTreeSet<&str> = ["a", "b"].into();
        let known: BTreeSet<&str> = ["b", "c"].into();
        assert_eq!(ratchet(&found, &known), (vec!["a"], vec!["c"]));
    }
}

//! `cargo xtask tidy`: the house rules the docs state, checked over the sources rather than held
//! by habit. Each rule names the files that break it.
//!
//! - `unsafe` code (blocks, functions, impls) only in `sys` modules: a file named `sys.rs`, or
//!   one under a `sys/` directory. The compiler's `unsafe_code` lint (denied workspace-wide,
//!   allowed on those modules) says the same from the other side; this rule catches an `allow`
//!   put anywhere else.
//! - Every `unsafe` block has a `// SAFETY:` comment in the lines just above it (clippy's
//!   `undocumented_unsafe_blocks` checks it too; this also covers code clippy does not build,
//!   such as another target's `sys` module).
//! - An error variant with a `#[source]` or `#[from]` cause does not also print it in its
//!   message (`{0}` or `{source}`): a caller printing the chain would show it twice. Use
//!   `#[error(transparent)]` to forward a cause's message instead.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::util;

/// Directories never checked.
const SKIP: &[&str] = &["target", ".cache", ".git", "third_party"];

/// `cargo xtask tidy` (and the CI step).
pub(crate) fn run() -> Result<()> {
    let root = util::root();
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    let mut problems = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path)?;
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        check_file(&shown, &text, &mut problems);
    }
    println!("tidy: {} Rust files checked", files.len());
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("{} house-rule violation(s)", problems.len())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if !SKIP.contains(&name.as_ref()) && !name.starts_with('.') {
                collect(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// Whether `path` is a `sys` module.
fn is_sys(path: &str) -> bool {
    let p = Path::new(path);
    p.file_stem().is_some_and(|s| s == "sys") || p.components().any(|c| c.as_os_str() == "sys")
}

/// The code of each line of `text`: comments removed and string and character literals
/// emptied (enough for the keywords these rules look for; not a full Rust lexer, but it
/// follows strings, raw strings and block comments across lines).
fn code_lines(text: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum State {
        Code,
        Str,
        RawStr(usize),
        Block(usize),
    }
    let chars: Vec<char> = text.chars().collect();
    let mut lines = vec![String::new()];
    let mut state = State::Code;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            lines.push(String::new());
            i += 1;
            continue;
        }
        let out = lines.last_mut().expect("one line at least");
        match state {
            State::Code => match (c, next) {
                ('/', Some('/')) => {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                    continue;
                }
                ('/', Some('*')) => {
                    state = State::Block(1);
                    i += 2;
                    continue;
                }
                ('"', _) => {
                    state = State::Str;
                    out.push('"');
                }
                ('r', Some('"' | '#'))
                    if !chars
                        .get(i.wrapping_sub(1))
                        .is_some_and(|p| p.is_alphanumeric() || *p == '_') =>
                {
                    let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
                    if chars.get(i + 1 + hashes) == Some(&'"') {
                        state = State::RawStr(hashes);
                        out.push('"');
                        i += 2 + hashes;
                        continue;
                    }
                    out.push(c);
                }
                ('\'', _) => {
                    // A character literal ('x', '\n', '\u{..}') or a lifetime.
                    let close = chars[i + 1..]
                        .iter()
                        .take(12)
                        .position(|&q| q == '\'')
                        .filter(|&at| at > 0 && (at == 1 || chars[i + 1] == '\\'));
                    if let Some(at) = close {
                        out.push_str("' '");
                        i += at + 2;
                        continue;
                    }
                    out.push(c);
                }
                _ => out.push(c),
            },
            State::Str => {
                if c == '\\' {
                    i += 2;
                    continue;
                }
                if c == '"' {
                    state = State::Code;
                    out.push('"');
                }
            }
            State::RawStr(hashes) => {
                if c == '"'
                    && chars[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    state = State::Code;
                    out.push('"');
                    i += 1 + hashes;
                    continue;
                }
            }
            State::Block(depth) => match (c, next) {
                ('*', Some('/')) => {
                    state = if depth == 1 {
                        State::Code
                    } else {
                        State::Block(depth - 1)
                    };
                    i += 2;
                    continue;
                }
                ('/', Some('*')) => {
                    state = State::Block(depth + 1);
                    i += 2;
                    continue;
                }
                _ => {}
            },
        }
        i += 1;
    }
    lines
}

fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

fn check_file(path: &str, text: &str, problems: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let code_lines = code_lines(text);
    let sys = is_sys(path);
    for (n, code) in code_lines.iter().enumerate().take(lines.len()) {
        let mut ws = words(code).peekable();
        let mut unsafe_here = false;
        while let Some(w) = ws.next() {
            if w == "unsafe"
                && ws
                    .peek()
                    .is_some_and(|&next| next != "code" && next != "op")
            {
                unsafe_here = true;
            }
        }
        // `unsafe {`, `unsafe fn`, `unsafe impl`, `unsafe extern`; not `unsafe_code` (one word).
        if unsafe_here && !sys {
            problems.push(format!(
                "{path}:{}: unsafe code outside a sys module",
                n + 1
            ));
        }
        if code.contains("unsafe {") && !has_safety_comment(&lines, n) {
            problems.push(format!(
                "{path}:{}: an unsafe block without a `// SAFETY:` comment above it",
                n + 1
            ));
        }
        // The message is a string literal: look at the raw line.
        let raw = lines[n];
        if code.trim_start().starts_with("#[error(")
            && (raw.contains("{0}") || raw.contains("{source}"))
        {
            let variant: String = lines
                .iter()
                .skip(n + 1)
                .take_while(|l| !l.trim_start().starts_with("#[error(") && l.trim() != "}")
                .take(6)
                .copied()
                .collect();
            // thiserror takes a field named `source` as the cause even without #[source].
            let source_field = variant.contains("source:") || variant.contains("source,");
            if variant.contains("#[source]") || variant.contains("#[from]") || source_field {
                problems.push(format!(
                    "{path}:{}: the message prints its own #[source]/#[from] cause (use \
                     #[error(transparent)] or drop the placeholder)",
                    n + 1
                ));
            }
        }
    }
}

/// Whether a `// SAFETY:` comment sits in the comment lines right above line `n` (or on it).
fn has_safety_comment(lines: &[&str], n: usize) -> bool {
    if lines[n].contains("// SAFETY:") {
        return true;
    }
    for line in lines[..n].iter().rev().take(12) {
        let t = line.trim_start();
        if t.starts_with("// SAFETY:") {
            return true;
        }
        // Comment lines, attributes and the statement the block sits in may come between.
        if !(t.starts_with("//") || t.starts_with("#[") || t.ends_with('=') || t.ends_with('(')) {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(path: &str, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        check_file(path, text, &mut out);
        out
    }

    #[test]
    fn unsafe_only_in_sys_modules() {
        let code = "fn f() {\n    // SAFETY: fine.\n    unsafe { g() }\n}\n";
        assert!(problems("a/src/sys.rs", code).is_empty());
        assert!(problems("a/src/host/sys/x.rs", code).is_empty());
        let p = problems("a/src/lib.rs", code);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("lib.rs:3: unsafe code outside a sys module"));
        let decl = "pub unsafe fn f() {}\nunsafe impl Send for X {}\n";
        assert_eq!(problems("a/src/main.rs", decl).len(), 2);
    }

    #[test]
    fn lints_comments_and_strings_are_not_unsafe_code() {
        let text = "#![deny(unsafe_code)]\n#[allow(unsafe_code)]\n// unsafe { here }\n\
                    let s = \"unsafe { no }\";\nconst U: &str = \"\\\nunsafe only in sys\n\";\n\
                    /* unsafe {\n unsafe fn */ let q = '\"'; let r = r#\"unsafe {\"#;\n";
        assert!(
            problems("a/src/lib.rs", text).is_empty(),
            "{:?}",
            problems("a/src/lib.rs", text)
        );
    }

    #[test]
    fn every_unsafe_block_has_a_safety_comment() {
        let bare = "fn f() {\n    let x = 1;\n    unsafe { g() }\n}\n";
        let p = problems("a/src/sys.rs", bare);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("without a `// SAFETY:`"));
        let spread = "    // SAFETY: the fd is open,\n    // and owned here.\n    let fd =\n        unsafe { g() };\n";
        assert!(problems("a/src/sys.rs", spread).is_empty());
    }

    #[test]
    fn a_cause_printed_twice_is_found() {
        let twice = "enum E {\n    #[error(\"reading: {0}\")]\n    Read(#[source] io::Error),\n}\n";
        assert_eq!(problems("a/src/error.rs", twice).len(), 1);
        let from = "enum E {\n    #[error(\"{0}\")]\n    Io(#[from] io::Error),\n}\n";
        assert_eq!(problems("a/src/error.rs", from).len(), 1);
        let fine = "enum E {\n    #[error(\"reading failed\")]\n    Read(#[source] io::Error),\n    \
                    #[error(\"bad name {0}\")]\n    Name(String),\n    #[error(transparent)]\n    \
                    Io(#[from] io::Error),\n}\n";
        assert!(problems("a/src/error.rs", fine).is_empty());
        let field = "enum E {\n    #[error(\"{}: {source}\", path.display())]\n    Path {\n        path: PathBuf,\n        source: io::Error,\n    },\n}\n";
        assert_eq!(problems("a/src/error.rs", field).len(), 1);
    }
}

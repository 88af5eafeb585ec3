//! The module graph of `src/` follows the flow (DESIGN.md, issues 11 and
//! 18): [`ALLOWED`] lists, for each top-level module, the modules it may
//! use; the list must be a DAG, every `crate::…` reference must be in it,
//! and inside a folder the files must not use each other in a cycle either
//! (`super::a` ↔ `super::b`). A new module needs a line here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module and what it may use. Value types (`target`, `engine`,
/// `tls`, `ca`) sit near the bottom; flag resolution (`flags`, beside
/// `cli`) and the commands on top.
const ALLOWED: &[(&str, &[&str])] = &[
    ("output", &[]),
    ("files", &[]),
    ("hardening", &[]),
    ("bounded", &[]),
    ("token", &[]),
    ("credproc", &[]),
    ("child", &[]),
    ("frames", &[]),
    ("tap", &["frames", "output"]),
    ("error", &["output"]),
    ("engine", &["error"]),
    ("ca", &["error", "files"]),
    ("tls", &["ca", "error"]),
    ("psqlargs", &["error"]),
    ("config", &["engine", "error", "files", "tls"]),
    ("target", &["ca", "engine", "error", "tls"]),
    ("aws", &["bounded", "config", "credproc", "error", "target"]),
    ("endpoint", &["aws", "engine", "error", "target"]),
    (
        "session",
        &["aws", "endpoint", "engine", "output", "target", "token"],
    ),
    ("explain", &["endpoint", "engine", "error", "output"]),
    ("dial", &["ca", "error", "target", "tls"]),
    (
        "connect",
        &[
            "aws", "ca", "dial", "endpoint", "engine", "error", "explain", "output", "session",
            "tap", "target", "tls",
        ],
    ),
    ("pgenv", &["error", "session", "target"]),
    (
        "mysql",
        &[
            "connect", "dial", "engine", "error", "output", "session", "tls",
        ],
    ),
    (
        "repl",
        &["aws", "connect", "error", "output", "session", "tap"],
    ),
    (
        "doctor",
        &[
            "aws", "ca", "connect", "dial", "endpoint", "engine", "error", "explain", "mysql",
            "output", "session", "target", "tls",
        ],
    ),
    (
        "proxy",
        &[
            "aws", "ca", "connect", "dial", "endpoint", "engine", "error", "frames", "mysql",
            "output", "session", "tls", "token",
        ],
    ),
    ("cli", &["config", "engine", "error", "output", "tls"]),
    (
        "flags",
        &["ca", "cli", "config", "engine", "error", "target", "tls"],
    ),
    (
        "commands",
        &[
            "aws",
            "child",
            "cli",
            "config",
            "connect",
            "doctor",
            "endpoint",
            "engine",
            "error",
            "flags",
            "hardening",
            "mysql",
            "output",
            "pgenv",
            "proxy",
            "psqlargs",
            "repl",
            "session",
            "target",
            "tls",
            "token",
        ],
    ),
];

fn allowed(module: &str) -> Option<&'static [&'static str]> {
    ALLOWED
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, uses)| *uses)
}

/// A cycle in `graph`, as the nodes along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The top-level module a file under `src/` belongs to.
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The modules `text` refers to as `crate::name` or `crate::{a, b}`, outside
/// its test module (tests may reach anywhere).
fn references(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or(text);
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        } else {
            found.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// The crate's files, without test-only folders (`#[cfg(test)] mod tests;`
/// as a folder, e.g. src/proxy/tests/): tests may reach anywhere.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_follow_the_allowed_graph_which_has_no_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = ALLOWED
        .iter()
        .map(|(name, uses)| {
            (
                name.to_string(),
                uses.iter().map(|u| u.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        find_cycle(&graph),
        None,
        "ALLOWED must be a DAG (a cycle is shown)"
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = 0;
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(may) = allowed(&module) else {
            problems.push(format!(
                "src/{}: module `{module}` is not in ALLOWED (tests/integration/layers.rs)",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in references(&text) {
            if used == module {
                continue;
            }
            edges += 1;
            if !may.contains(&used.as_str()) {
                problems.push(format!(
                    "src/{}: `{module}` uses `crate::{used}`, which ALLOWED does not give it",
                    relative.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        edges > 20,
        "the scan found the imports ({edges} references)"
    );
}

/// A file's module path: `repl/exec/session.rs` → `repl::exec::session`,
/// `repl/exec/mod.rs` → `repl::exec`.
fn node_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The paths `text` names through `crate::`, `super::` and `self::`, each
/// resolved against `node` to module path segments (the last ones may be
/// items, not modules).
fn paths_from(text: &str, node: &[String]) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or(text);
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (i == 0 || !word(bytes[i - 1]))
            && ["crate::", "super::", "self::"]
                .iter()
                .any(|p| bytes[i..].iter().take(p.len()).collect::<String>() == *p);
        if !starts {
            i += 1;
            continue;
        }
        let mut base: Vec<String> = Vec::new();
        let mut segments: Vec<String> = Vec::new();
        let mut first = true;
        loop {
            let seg: String = bytes[i..].iter().take_while(|c| word(**c)).collect();
            i += seg.chars().count();
            match (first, seg.as_str()) {
                (true, "crate") => base.clear(),
                (true, "self") => base = node.to_vec(),
                (true, "super") => base = node[..node.len().saturating_sub(1)].to_vec(),
                (false, "super") if segments.is_empty() => {
                    base.pop();
                }
                (_, "") => break,
                _ => segments.push(seg),
            }
            first = false;
            if bytes[i..].iter().take(2).collect::<String>() != "::" {
                break;
            }
            i += 2;
            if bytes.get(i) == Some(&'{') {
                // A group: each item's first segment.
                let end = bytes[i..]
                    .iter()
                    .position(|c| *c == '}')
                    .map_or(bytes.len(), |e| i + e);
                let group: String = bytes[i + 1..end].iter().collect();
                for item in group.split(',') {
                    let name: String = item.trim().chars().take_while(|c| word(*c)).collect();
                    if !name.is_empty() {
                        let mut path = base.clone();
                        path.extend(segments.iter().cloned());
                        path.push(name);
                        found.push(path);
                    }
                }
                i = end;
                segments.clear();
                base.clear();
                break;
            }
        }
        if !segments.is_empty() || !base.is_empty() {
            base.extend(segments);
            found.push(base);
        }
    }
    found
}

/// Inside a folder, the files use each other without a cycle: with
/// `a` ↔ `b` neither can be read, tested or moved alone (issue 18 found
/// `repl/exec/interrupt.rs` ↔ `repl/exec/session.rs`). A parent and its
/// children may refer to each other (that is how Rust modules nest).
#[test]
fn files_inside_a_folder_use_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let nodes: BTreeSet<Vec<String>> = files
        .iter()
        .map(|f| node_of(f.strip_prefix(&src).unwrap()))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let node = node_of(file.strip_prefix(&src).unwrap());
        let text = std::fs::read_to_string(file).unwrap();
        for path in paths_from(&text, &node) {
            // The longest prefix that is a file's module.
            let Some(target) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| nodes.contains(p))
            else {
                continue;
            };
            let related = target.starts_with(&node) || node.starts_with(&target);
            if !related {
                graph
                    .entry(node.join("::"))
                    .or_default()
                    .insert(target.join("::"));
            }
        }
    }
    // Only edges inside one top-level module: across them, ALLOWED rules.
    for (from, to) in graph.iter_mut() {
        let top = from.split("::").next().unwrap_or_default().to_owned();
        to.retain(|t| t.split("::").next() == Some(top.as_str()));
    }
    let inside: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        inside > 10,
        "the scan found the folders' imports ({inside} edges)"
    );
    assert_eq!(
        find_cycle(&graph),
        None,
        "files import each other in a cycle"
    );
}

#[test]
fn the_folder_scan_resolves_super_self_and_groups() {
    let node: Vec<String> = ["repl", "exec", "interrupt"].map(String::from).to_vec();
    let text = "use super::session::{CANCEL, Link};\nuse super::super::input::Lexer;\nfn f() { crate::error::x(); self::g(); }";
    let got: Vec<String> = paths_from(text, &node)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        got,
        [
            "repl::exec::session::CANCEL",
            "repl::exec::session::Link",
            "repl::input::Lexer",
            "error::x",
            "repl::exec::interrupt::g",
        ]
    );
    let mut planted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    planted.entry("a".into()).or_default().insert("b".into());
    planted.entry("b".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&planted),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}

#[test]
fn the_scanner_sees_grouped_and_inline_references() {
    let text = "use crate::{aws, target::Via};\nfn f() { crate::error::x(); }\n#[cfg(test)]\nmod tests { use crate::commands; }";
    assert_eq!(references(text), ["aws", "target", "error"]);
}

/// Clap stops at `flags.rs` (issues 11, 18): flags are turned into typed
/// settings there, and only the commands (which hold the parsed `Cli`) see
/// them too.
#[test]
fn only_flags_and_commands_see_the_cli_types() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(&src).unwrap();
            let module = module_of(relative);
            let allowed = ["flags", "commands", "cli", "lib", "main"];
            let text = std::fs::read_to_string(file).unwrap();
            (!allowed.contains(&module.as_str())
                && references(&text).iter().any(|used| used == "cli"))
            .then(|| format!("src/{}", relative.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these use `crate::cli` outside flags.rs and the commands: {offenders:?}"
    );
}

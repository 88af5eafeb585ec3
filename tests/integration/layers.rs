//! The module graph of `src/` follows the flow (DESIGN.md, issue 11): every
//! `crate::…` reference points to a module in a lower layer, so there are no
//! import cycles and nothing reaches back up the flow. A new module needs a
//! layer here; a reference upwards fails this test, naming the file.

use std::collections::BTreeMap;
use std::path::Path;

/// Layers, lowest first: a module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &[
        "output",
        "files",
        "hardening",
        "bounded",
        "token",
        "credproc",
        "child",
    ],
    &["tap"],
    &["error"],
    &["ca", "engine"],
    &["tls"],
    &["config", "psqlargs"],
    &["cli"],
    &["target"],
    &["aws"],
    &["endpoint"],
    &["session"],
    &["connect", "pgenv"],
    &["mysql"],
    &["repl", "doctor", "proxy"],
    &["commands"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
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

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_point_down_the_flow_with_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "src/{}: module `{module}` has no layer in tests/integration/layers.rs",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in references(&text) {
            if used == module {
                continue;
            }
            graph
                .entry(module.clone())
                .or_default()
                .insert(used.clone());
            match layer_of(&used) {
                None => problems.push(format!(
                    "src/{}: uses `crate::{used}`, which has no layer",
                    relative.display()
                )),
                Some(theirs) if theirs >= own => problems.push(format!(
                    "src/{}: `{module}` uses `crate::{used}`, which is not below it in the flow",
                    relative.display()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Strictly lower layers make a cycle impossible; say so for the record.
    let edges: usize = graph.values().map(|deps| deps.len()).sum();
    assert!(edges > 20, "the scan found the imports ({edges} edges)");
}

#[test]
fn the_scanner_sees_grouped_and_inline_references() {
    let text = "use crate::{aws, target::Via};\nfn f() { crate::error::x(); }\n#[cfg(test)]\nmod tests { use crate::commands; }";
    assert_eq!(references(text), ["aws", "target", "error"]);
}

/// Clap stops at `target.rs` (issue 11): flags are turned into typed settings
/// there, and only the commands (which hold the parsed `Cli`) see them too.
#[test]
fn only_target_and_commands_see_the_cli_types() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(&src).unwrap();
            let module = module_of(relative);
            let allowed = ["target", "commands", "cli", "lib", "main"];
            let text = std::fs::read_to_string(file).unwrap();
            (!allowed.contains(&module.as_str())
                && references(&text).iter().any(|used| used == "cli"))
            .then(|| format!("src/{}", relative.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these use `crate::cli` below target.rs: {offenders:?}"
    );
}

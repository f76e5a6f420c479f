//! Keeps the picture in `docs/ARCHITECTURE.md` true: reads every `crate::…`
//! path in `src/` and fails when a module reaches a layer above its own, when
//! modules import each other in a circle, or when a module is missing from
//! the table below (a new module must be given its place).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom first: a module may use its own layer (one way) and
/// those below it. The same table is in `docs/ARCHITECTURE.md`.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "domain", "i18n", "secrets", "catalog", "config", "status", "metrics", "netguard", "robots",
        ],
    ),
    (
        "transports and storage",
        &["smtp", "webhook", "compose", "diagnosis", "discovery", "store"],
    ),
    // `error` is the services' error: it converts the store's (`StoreError`).
    (
        "engine",
        &[
            "error", "health", "oauth", "connect", "proxy", "dkim", "pool", "delivery",
        ],
    ),
    (
        "services",
        &[
            "accounts",
            "channels",
            "outbox",
            "rules",
            "templates",
            "tenants",
            "settings",
            "testmail",
            "console_users",
        ],
    ),
    ("wiring", &["services"]),
    ("edges", &["api", "cli", "console"]),
    ("start-up", &["startup"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// `src/a/b.rs` and `src/a.rs` belong to module `a`; `lib.rs` and `main.rs` to none.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::x` (in `use` lines,
/// `use crate::{x, y}` groups, and paths in code), outside `#[cfg(test)]`
/// modules: tests may reach anything.
fn imports(text: &str) -> BTreeSet<String> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else { continue };
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        let deps = graph.entry(module.clone()).or_default();
        for dep in imports(&text) {
            // `crate::now_ms` and other items of lib.rs are not modules.
            if dep != module && (src.join(format!("{dep}.rs")).exists() || src.join(&dep).is_dir()) {
                deps.insert(dep);
            }
        }
    }
    graph
}

#[test]
fn every_module_has_a_layer() {
    let missing: Vec<String> = graph().into_keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules missing from LAYERS (tests/architecture.rs and docs/ARCHITECTURE.md): {missing:?}"
    );
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let mut wrong = Vec::new();
    for (module, deps) in graph() {
        let Some(own) = layer_of(&module) else { continue };
        for dep in deps {
            if let Some(theirs) = layer_of(&dep)
                && theirs > own
            {
                wrong.push(format!(
                    "{module} ({}) imports {dep} ({})",
                    LAYERS[own].0, LAYERS[theirs].0
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that point up:\n{}", wrong.join("\n"));
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let graph = graph();
    // A depth-first walk from every module; a module met again on the path is a circle.
    fn walk<'a>(
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        node: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        circles: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut circle: Vec<&str> = path[start..].to_vec();
            circle.push(node);
            circles.push(circle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node);
        for dep in graph.get(node).into_iter().flatten() {
            walk(graph, dep, path, done, circles);
        }
        path.pop();
        done.insert(node);
    }
    let mut circles = Vec::new();
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        walk(&graph, module, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

#[test]
fn the_reader_sees_imports_in_groups_and_paths() {
    let found = imports("use crate::{a, b::C};\nfn f() { crate::c::d(); }\n#[cfg(test)]\nmod tests { use crate::e; }");
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        vec!["a".to_string(), "b".into(), "c".into()]
    );
}

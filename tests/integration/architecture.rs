//! The shape of the crate: its top-level modules form layers. For each module of `src/`, the
//! `crate::X` paths its code uses outside `#[cfg(test)]` name the modules it depends on;
//! those dependencies must form no cycle, and `domain` must depend on nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;

/// Modules that only wire the others together, above every layer.
const TOP: &[&str] = &["startup"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of a top-level module (a file, or a folder of files).
fn files_of(module: &str) -> Vec<PathBuf> {
    let file = src().join(format!("{module}.rs"));
    if file.is_file() {
        return vec![file];
    }
    let mut files = Vec::new();
    let mut folders = vec![src().join(module)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

fn top_level_modules() -> Vec<String> {
    let lib = syn::parse_file(&std::fs::read_to_string(src().join("lib.rs")).unwrap()).unwrap();
    lib.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(module) => Some(module.ident.to_string()),
            _ => None,
        })
        .collect()
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg") && attr.to_token_stream().to_string().contains("test")
    })
}

/// The tokens of the items that are compiled outside tests, nested modules included.
fn non_test_tokens(items: &[syn::Item], out: &mut Vec<TokenStream>) {
    for item in items {
        let attrs = match item {
            syn::Item::Mod(module) => &module.attrs,
            syn::Item::Fn(function) => &function.attrs,
            syn::Item::Impl(block) => &block.attrs,
            syn::Item::Use(import) => &import.attrs,
            syn::Item::Struct(item) => &item.attrs,
            syn::Item::Enum(item) => &item.attrs,
            syn::Item::Const(item) => &item.attrs,
            syn::Item::Static(item) => &item.attrs,
            syn::Item::Trait(item) => &item.attrs,
            syn::Item::Type(item) => &item.attrs,
            syn::Item::Macro(item) => &item.attrs,
            _ => &Vec::new(),
        };
        if is_test_only(attrs) {
            continue;
        }
        match item {
            syn::Item::Mod(syn::ItemMod {
                content: Some((_, inner)),
                ..
            }) => non_test_tokens(inner, out),
            other => out.push(other.to_token_stream()),
        }
    }
}

/// The names `X` that follow `crate ::` in `tokens`, including each first name of a
/// `crate::{X, Y::…}` group.
fn crate_paths(tokens: TokenStream, found: &mut BTreeSet<String>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (index, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Group(group) => crate_paths(group.stream(), found),
            TokenTree::Ident(ident) if ident == "crate" => {
                let colons = matches!(
                    (trees.get(index + 1), trees.get(index + 2)),
                    (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                        if a.as_char() == ':' && b.as_char() == ':'
                );
                match (colons, trees.get(index + 3)) {
                    (true, Some(TokenTree::Ident(name))) => {
                        found.insert(name.to_string());
                    }
                    (true, Some(TokenTree::Group(group))) => {
                        let mut first = true;
                        for inner in group.stream() {
                            match inner {
                                TokenTree::Ident(name) if first => {
                                    found.insert(name.to_string());
                                    first = false;
                                }
                                TokenTree::Punct(p) if p.as_char() == ',' => first = true,
                                _ => first = false,
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Module → the other top-level modules its non-test code names.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let modules = top_level_modules();
    modules
        .iter()
        .map(|module| {
            let mut named = BTreeSet::new();
            for file in files_of(module) {
                let text = std::fs::read_to_string(&file).unwrap();
                let parsed = syn::parse_file(&text)
                    .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
                let mut tokens = Vec::new();
                non_test_tokens(&parsed.items, &mut tokens);
                for stream in tokens {
                    crate_paths(stream, &mut named);
                }
            }
            named.retain(|name| name != module && modules.contains(name));
            (module.clone(), named)
        })
        .collect()
}

/// A cycle among `graph`'s modules, if there is one.
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

#[test]
fn the_top_level_modules_form_layers() {
    let graph = dependencies();
    assert!(graph.len() > 10, "the modules were not found: {graph:?}");
    assert_eq!(
        graph["domain"],
        BTreeSet::new(),
        "`domain` is the bottom layer and must import nothing of the crate"
    );
    for (module, named) in &graph {
        for top in TOP {
            assert!(
                module == top || !named.contains(*top),
                "{module} depends on {top}, which only wires the others together"
            );
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules import each other in a cycle: {}",
            cycle.join(" → ")
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mut paths = BTreeSet::new();
    crate_paths(
        "use crate::{config::Settings, domain}; fn f() { crate::store::x() }"
            .parse()
            .unwrap(),
        &mut paths,
    );
    assert_eq!(
        paths,
        ["config", "domain", "store"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}

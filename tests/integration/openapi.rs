//! The OpenAPI document against the router: every route `src/http/mod.rs` mounts is in
//! the document with its method, and the document names no route that is not mounted.

use std::collections::BTreeSet;
use std::path::Path;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use serde_json::Value;

/// (method, path) of each route the two route functions mount (`resource(PATH)` then
/// `.route(METHOD()…)`), in the document's spelling (`{repo:.+}` is `{repo}`).
fn mounted() -> BTreeSet<(String, String)> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/mod.rs");
    let file = syn::parse_file(&std::fs::read_to_string(source).unwrap()).unwrap();
    let mut routes = BTreeSet::new();
    for item in &file.items {
        let syn::Item::Fn(function) = item else {
            continue;
        };
        if !["routes", "health_routes"].contains(&function.sig.ident.to_string().as_str()) {
            continue;
        }
        let mut tokens = Vec::new();
        flatten(function.block.to_token_stream(), &mut tokens);
        let mut path = None;
        for (index, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Literal(literal) => {
                    let text = literal.to_string();
                    if let Some(route) = text.strip_prefix("\"/").and_then(|t| t.strip_suffix('"'))
                    {
                        path = Some(format!("/{}", route.replace(":.+}", "}")));
                    }
                }
                TokenTree::Ident(ident)
                    if ["get", "post", "put", "delete", "patch"]
                        .contains(&ident.to_string().as_str())
                        && index >= 1
                        && tokens[index - 1].to_string() == "route" =>
                {
                    let path = path
                        .clone()
                        .expect("a route's path comes before its method");
                    routes.insert((ident.to_string(), path));
                }
                _ => {}
            }
        }
    }
    routes
}

fn flatten(stream: TokenStream, out: &mut Vec<TokenTree>) {
    for token in stream {
        match token {
            TokenTree::Group(group) => flatten(group.stream(), out),
            token => out.push(token),
        }
    }
}

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect()
}

#[test]
fn the_document_lists_every_route_the_server_mounts_and_no_other() {
    let document: Value = serde_json::from_str(gantry::http::openapi::document()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mounted = mounted();
    assert!(mounted.len() > 25, "the routes were not found: {mounted:?}");
    let documented = documented(&document);
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let unmounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        undocumented.is_empty() && unmounted.is_empty(),
        "mounted but not documented: {undocumented:?}; documented but not mounted: {unmounted:?}"
    );
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    for scheme in ["bearer", "session", "metrics", "argocd"] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
    // Every operation says what it answers, and every JSON answer has a schema.
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
        }
    }
}

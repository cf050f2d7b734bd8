//! Golden tests of the editor: each file under `configs/` is bumped and the unified diff is
//! the snapshot, so a reviewer sees exactly which bytes change.

use std::path::Path;

use gantry::gitops::edit::{self, EditError, NewImage};

const IMAGE: &str = "registry.example.com/acme/web";
const DIGEST: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn config(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/gitops/configs")
        .join(name);
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

fn tag(tag: &str) -> NewImage {
    NewImage {
        image: IMAGE.into(),
        tag: Some(tag.into()),
        digest: None,
        key: None,
    }
}

/// The diff of bumping `file`, with line ends and a BOM shown so they are seen to survive.
fn diff(file: &str, new: &NewImage) -> String {
    let before = config(file);
    let edited = edit::apply(&before, new).unwrap_or_else(|err| panic!("{file}: {err}"));
    assert!(!edited.changes.is_empty(), "{file}: nothing changed");
    let visible = |text: &str| text.replace('\r', "\\r").replace('\u{feff}', "<BOM>");
    let diff = similar::TextDiff::from_lines(&visible(&before), &visible(&edited.text))
        .unified_diff()
        .context_radius(1)
        .to_string();
    let changes: Vec<String> = edited
        .changes
        .iter()
        .map(|c| {
            format!(
                "line {} {}: {} -> {}",
                c.line,
                c.place,
                c.old.as_deref().unwrap_or("(added)"),
                c.new
            )
        })
        .collect();
    format!("{}\n{diff}", changes.join("\n"))
}

fn refusal(file: &str, new: &NewImage) -> EditError {
    let before = config(file);
    match edit::apply(&before, new) {
        Ok(edited) => panic!("{file}: expected a refusal, got:\n{}", edited.text),
        Err(err) => err,
    }
}

#[test]
fn kustomize_overlay_changes_only_the_tag_and_keeps_its_quotes() {
    insta::assert_snapshot!(diff("kustomize-overlay.yaml", &tag("2024.12.1")));
}

#[test]
fn kustomize_entry_without_a_tag_gets_one_added_at_its_indent() {
    insta::assert_snapshot!(diff("kustomize-no-tag.yaml", &tag("1.10")));
}

#[test]
fn kustomize_tag_and_digest_are_pinned_together() {
    let new = NewImage {
        digest: Some(DIGEST.into()),
        ..tag("1.5.0")
    };
    insta::assert_snapshot!(diff("kustomize-digest.yaml", &new));
}

#[test]
fn kustomize_digest_pin_is_not_left_stale_by_a_tag_bump() {
    let err = refusal("kustomize-digest.yaml", &tag("1.5.0"));
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn kustomize_entry_picked_by_key_gets_the_new_name() {
    let new = NewImage {
        image: "registry.example.com/acme/web-next".into(),
        key: Some("web".into()),
        ..tag("n1")
    };
    insta::assert_snapshot!(diff("kustomize-overlay.yaml", &new));
}

#[test]
fn helm_values_with_comments_and_anchors_change_only_the_tag() {
    insta::assert_snapshot!(diff("helm-values.yaml", &tag("main-4d5e6f7")));
}

#[test]
fn helm_tag_behind_an_anchor_is_refused() {
    let err = refusal("helm-anchored-tag.yaml", &tag("main-4d5e6f7"));
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn helm_key_path_edits_only_that_value() {
    let new = NewImage {
        key: Some("web.deployment.container.imageTag".into()),
        ..tag("main-4d5e6f7")
    };
    insta::assert_snapshot!(diff("helm-key-path.yaml", &new));
}

#[test]
fn helm_key_path_that_is_missing_is_named() {
    let new = NewImage {
        key: Some("web.image.tag".into()),
        ..tag("main-4d5e6f7")
    };
    insta::assert_snapshot!(refusal("helm-key-path.yaml", &new).to_string());
}

#[test]
fn helm_registry_and_repository_split_with_a_digest_field() {
    let new = NewImage {
        digest: Some(DIGEST.into()),
        ..tag("1.1.0")
    };
    insta::assert_snapshot!(diff("helm-bitnami.yaml", &new));
}

#[test]
fn multi_document_manifests_change_every_container_of_the_image() {
    insta::assert_snapshot!(diff("manifests-multi.yaml", &tag("main-4d5e6f7")));
}

#[test]
fn crlf_line_ends_survive() {
    insta::assert_snapshot!(diff("statefulset-crlf.yaml", &tag("new")));
}

#[test]
fn a_byte_order_mark_survives() {
    insta::assert_snapshot!(diff("daemonset-bom.yaml", &tag("new")));
}

#[test]
fn marker_comments_name_the_value_or_its_tag() {
    insta::assert_snapshot!(diff("markers.yaml", &tag("v2")));
}

#[test]
fn flux_helmrelease_values_are_bumped() {
    insta::assert_snapshot!(diff("flux-helmrelease.yaml", &tag("main-4d5e6f7")));
}

#[test]
fn a_value_already_in_place_changes_nothing() {
    let before = config("kustomize-overlay.yaml");
    let edited = edit::apply(&before, &tag("2024.11.3")).unwrap();
    assert!(edited.changes.is_empty());
    assert_eq!(edited.text, before);
}

#[test]
fn a_file_without_the_image_is_refused() {
    let new = NewImage {
        image: "registry.example.com/acme/nothing".into(),
        ..tag("1")
    };
    insta::assert_snapshot!(refusal("manifests-multi.yaml", &new).to_string());
}

#[test]
fn broken_yaml_is_refused_with_its_position() {
    insta::assert_snapshot!(refusal("broken.yaml", &tag("1")).to_string());
}

#[test]
fn block_scalars_and_aliases_are_refused() {
    insta::assert_snapshot!(refusal("block-scalar.yaml", &tag("1")).to_string());
    insta::assert_snapshot!(refusal("alias-value.yaml", &tag("1")).to_string());
}

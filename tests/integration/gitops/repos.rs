//! What config repos in the tests hold.

/// A Kustomization pinning every image of `images` at tag `v0`.
pub fn kustomization(images: &[String]) -> String {
    let mut text = "kind: Kustomization\nimages:\n".to_owned();
    for image in images {
        text.push_str(&format!("  - name: {image}\n    newTag: v0\n"));
    }
    text
}

//! Bumps through real git: bare config repos over `file://`, concurrent bumps and a
//! competing writer.

use std::collections::HashMap;
use std::sync::Arc;

use gantry::domain::describe;
use gantry::gitops::bump::{
    Author, BumpError, BumpRequest, BumpSource, Bumper, ConfigRepo as Target,
};
use gantry::gitops::edit::NewImage;
use gantry::pipeline::BumpMode;

use crate::support::git::Repo;
use gantry::git::GitAuth;

const OVERLAY: &str = "apps/web/overlays/dev/kustomization.yaml";
const OVERLAY_TEXT: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base # shared
images:
  - name: registry.example.com/acme/web
    newTag: old   # bumped by Gantry
";

pub fn bumper() -> Bumper {
    Bumper::new(
        Author::parse("Gantry Bot <gantry@example.com>").unwrap(),
        GitAuth::None,
    )
}

pub fn request(repo: &Repo, file: &str, image: &str, tag: &str) -> BumpRequest {
    BumpRequest {
        repo: Target {
            url: repo.url(),
            branch: "main".into(),
        },
        file: file.into(),
        new: NewImage {
            image: image.into(),
            tag: Some(tag.into()),
            digest: None,
            key: None,
        },
        mode: BumpMode::Commit,
        forge: None,
        source: Some(BumpSource {
            repo: "acme/web".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            run_url: Some("http://gantry.example.com/runs/7".into()),
            digest: Some(
                "sha256:5555555555555555555555555555555555555555555555555555555555555555".into(),
            ),
        }),
    }
}

#[tokio::test]
async fn a_bump_commits_only_the_value_with_a_message_that_names_its_source() {
    let repo = Repo::new(&[(OVERLAY, OVERLAY_TEXT), ("README.md", "config\n")]);
    let before = repo.head();
    let outcome = bumper()
        .bump(request(
            &repo,
            OVERLAY,
            "registry.example.com/acme/web",
            "main-4d5e6f7",
        ))
        .await
        .unwrap();
    let commit = outcome.bumped.commit.clone().expect("a commit");
    assert_eq!(repo.head(), commit);
    assert_eq!(repo.show("main^", "%H").trim(), before);
    assert_eq!(
        repo.changed_lines("main"),
        [
            "-    newTag: old   # bumped by Gantry",
            "+    newTag: main-4d5e6f7   # bumped by Gantry"
        ]
    );
    assert_eq!(
        repo.show("main", "%an <%ae>|%cn").trim(),
        "Gantry Bot <gantry@example.com>|Gantry Bot"
    );
    insta::assert_snapshot!(repo.messages()[0], @r"
    Bump registry.example.com/acme/web to main-4d5e6f7

    Image: registry.example.com/acme/web:main-4d5e6f7
    Digest: sha256:5555555555555555555555555555555555555555555555555555555555555555
    File: apps/web/overlays/dev/kustomization.yaml images[0].newTag: old -> main-4d5e6f7
    Source: acme/web@0123456789abcdef0123456789abcdef01234567
    Run: http://gantry.example.com/runs/7
    ");
    assert_eq!(outcome.bumped.changes[0].old.as_deref(), Some("old"));
    assert_eq!(outcome.attempts, 1);
}

#[tokio::test]
async fn a_bump_whose_value_is_in_place_makes_no_commit() {
    let repo = Repo::new(&[(OVERLAY, OVERLAY_TEXT)]);
    let before = repo.head();
    let outcome = bumper()
        .bump(request(
            &repo,
            OVERLAY,
            "registry.example.com/acme/web",
            "old",
        ))
        .await
        .unwrap();
    assert_eq!(outcome.bumped.commit, None);
    assert!(outcome.bumped.changes.is_empty());
    assert_eq!(repo.head(), before);
}

#[tokio::test]
async fn refusals_push_nothing_and_say_why() {
    let repo = Repo::new(&[
        (OVERLAY, OVERLAY_TEXT),
        (
            "values.yaml",
            "image:\n  repository: registry.example.com/acme/web\n  tag: &t old\nother: *t\n",
        ),
    ]);
    let before = repo.head();
    let bumper = bumper();
    let err = |request| {
        let bumper = bumper.clone();
        async move { describe(&bumper.bump(request).await.unwrap_err()) }
    };
    let anchored = err(request(
        &repo,
        "values.yaml",
        "registry.example.com/acme/web",
        "new",
    ))
    .await;
    assert!(
        anchored.starts_with("values.yaml: 3:11: the value sits behind a YAML anchor"),
        "{anchored}"
    );
    let missing = err(request(
        &repo,
        "apps/nope.yaml",
        "registry.example.com/acme/web",
        "new",
    ))
    .await;
    assert_eq!(
        missing,
        "apps/nope.yaml is not on branch main of the config repo"
    );
    let unknown = err(request(
        &repo,
        OVERLAY,
        "registry.example.com/acme/api",
        "new",
    ))
    .await;
    assert!(
        unknown.contains("no reference to `registry.example.com/acme/api` found"),
        "{unknown}"
    );
    let escaping = err(request(
        &repo,
        "../outside.yaml",
        "registry.example.com/acme/web",
        "new",
    ))
    .await;
    assert_eq!(
        escaping,
        "`../outside.yaml` is not a file path inside the repo"
    );
    let shell = err(request(
        &repo,
        OVERLAY,
        "registry.example.com/acme/web",
        "v1;touch${IFS}pwned",
    ))
    .await;
    assert!(shell.contains("is not an image tag"), "{shell}");
    let mut no_branch = request(&repo, OVERLAY, "registry.example.com/acme/web", "new");
    no_branch.repo.branch = "release".into();
    let no_branch = err(no_branch).await;
    assert!(
        no_branch.contains("branch release does not exist"),
        "{no_branch}"
    );
    let mut bad_branch = request(&repo, OVERLAY, "registry.example.com/acme/web", "new");
    // Shell characters are legal in branch names and must stay plain characters.
    bad_branch.repo.branch = "main$(touch${IFS}pwned)".into();
    let bad_branch = err(bad_branch).await;
    assert!(bad_branch.contains("does not exist"), "{bad_branch}");
    assert!(!std::path::Path::new("pwned").exists());
    let mut option = request(&repo, OVERLAY, "registry.example.com/acme/web", "new");
    option.repo.branch = "--upload-pack=touch".into();
    assert!(err(option).await.contains("is not a branch name"));
    assert_eq!(repo.head(), before, "nothing was pushed");
}

/// 50 bumps at once — 30 images, and 4 of them bumped again with other tags — from three
/// independent bumpers (as three replicas without a shared lock would be), while another
/// writer pushes unrelated commits. Afterwards every bump is in the history exactly once and
/// the file holds, for each image, the tag of its newest bump commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bumps_and_another_writer_lose_nothing_and_apply_nothing_twice() {
    let images: Vec<String> = (0..30)
        .map(|i| format!("registry.example.com/acme/svc{i:02}"))
        .collect();
    let overlay = crate::gitops::repos::kustomization(&images);
    let repo = Arc::new(Repo::new(&[(OVERLAY, &overlay), ("notes.txt", "0\n")]));
    let mut bumps: Vec<(String, String)> = images
        .iter()
        .enumerate()
        .map(|(i, image)| (image.clone(), format!("t{i}-a")))
        .collect();
    for round in ["b", "c", "d", "e", "f"] {
        for image in images.iter().take(4) {
            bumps.push((
                image.clone(),
                format!("{}-{round}", &image[image.len() - 5..]),
            ));
        }
    }
    assert_eq!(bumps.len(), 50);
    let bumpers = [bumper(), bumper(), bumper()];
    let writer = {
        let repo = repo.clone();
        tokio::task::spawn_blocking(move || {
            for i in 1..=10 {
                repo.commit(&[("notes.txt", &format!("{i}\n"))], &format!("notes {i}"));
            }
        })
    };
    let tasks: Vec<_> = bumps
        .iter()
        .enumerate()
        .map(|(i, (image, tag))| {
            let bumper = bumpers[i % bumpers.len()].clone();
            let request = request(&repo, OVERLAY, image, tag);
            tokio::spawn(async move { bumper.bump(request).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    writer.await.unwrap();
    let mut commit_of: HashMap<(String, String), String> = HashMap::new();
    let mut retried = 0;
    for ((image, tag), result) in bumps.iter().zip(results) {
        let outcome = result.unwrap_or_else(|err| panic!("{image}:{tag}: {err}"));
        retried += usize::from(outcome.attempts > 1);
        let commit = outcome
            .bumped
            .commit
            .unwrap_or_else(|| panic!("{image}:{tag} made no commit"));
        commit_of.insert((image.clone(), tag.clone()), commit);
    }
    eprintln!("{retried} of 50 bumps lost a push race and were re-applied");
    let messages = repo.messages();
    for (image, tag) in &bumps {
        let line = format!("Image: {image}:{tag}\n");
        let found = messages
            .iter()
            .filter(|m| format!("{m}\n").contains(&line))
            .count();
        assert_eq!(found, 1, "{image}:{tag} is in {found} commits");
    }
    assert_eq!(
        repo.file("notes.txt"),
        "10\n",
        "the other writer's commits survive"
    );
    // Newest first: the position of each bump's commit in the history.
    let order: Vec<String> = crate::support::git::git(&repo.bare, &["rev-list", "main"])
        .lines()
        .map(str::to_owned)
        .collect();
    let file = repo.file(OVERLAY);
    for image in &images {
        let newest = bumps
            .iter()
            .filter(|(i, _)| i == image)
            .min_by_key(|bump| {
                let commit = &commit_of[*bump];
                order
                    .iter()
                    .position(|c| c == commit)
                    .unwrap_or_else(|| panic!("{commit} is not on main"))
            })
            .unwrap();
        let entry = format!("  - name: {image}\n    newTag: {}\n", newest.1);
        assert!(
            file.contains(&entry),
            "{image} should hold {}:\n{file}",
            newest.1
        );
    }
}

#[tokio::test]
async fn bump_errors_are_typed() {
    let repo = Repo::new(&[(OVERLAY, OVERLAY_TEXT)]);
    let err = bumper()
        .bump(request(&repo, OVERLAY, "Registry/UPPER", "v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, BumpError::Reference(_)), "{err:?}");
}

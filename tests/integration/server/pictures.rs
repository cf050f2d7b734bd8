//! The pictures: a run's timeline (stages to scale, parallel ones on their own lanes, the
//! push and the bump as marks), a repo's overview with its trends, and the timeline growing
//! live in headless Chromium.

use std::time::Duration;

use serde_json::{Value, json};

use super::bumps::gitops_loop;
use crate::server::{Server, app_repo, config_dir, finished, push_payload};
use crate::support::chromium::Browser;

/// Where the timeline's time axis starts and how wide it is (`src/http/pictures/timeline.rs`).
const PLOT_LEFT: f64 = 210.0;
const PLOT_WIDTH: f64 = 710.0;

/// An image built while two checks run beside it; the bump waits for all three.
const PIPELINE: &str = "stages:
  - name: image
    build:
      image: REGISTRY/acme/app
      tags: ['${GANTRY_COMMIT_SHA}']
  - name: lint
    needs: []
    image: IMAGE
    run: sleep 2
  - name: unit
    needs: []
    image: IMAGE
    run: sleep 1
  - name: deploy-dev
    needs: [image, lint, unit]
    bump:
      repo: CONFIG_URL
      file: apps/app/overlays/dev/kustomization.yaml
      pin: tag
";

/// Unix milliseconds of a stored time.
fn millis(text: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

fn number(node: roxmltree::Node<'_, '_>, attribute: &str) -> f64 {
    node.attribute(attribute).unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_timeline_draws_stages_to_scale_on_their_own_lanes_with_push_and_bump_marks() {
    let gitops = gitops_loop(PIPELINE, |config, _| config);
    let (configs, sha, server) = (&gitops.configs, gitops.sha.as_str(), &gitops.server);
    let id = server.push(push_payload("main", sha, "ship it")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");

    let svg = server.text(&format!("/runs/{id}/timeline.svg")).await;
    let document = roxmltree::Document::parse(&svg).expect("the timeline is well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let origin = millis(&run["received_at"]).min(millis(&run["created_at"]));
    let end = millis(&run["finished_at"]);
    let scale = PLOT_WIDTH / (end - origin) as f64;
    // The picture spans from the webhook to the run's end, all of it.
    assert_eq!(number(root, "data-origin") as i64, origin);
    assert_eq!(number(root, "data-end") as i64, end);

    let stages = run["pipelines"][0]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    let mut lanes = Vec::new();
    for stage in stages {
        let name = format!("ci/{}", stage["stage"].as_str().unwrap());
        let bars: Vec<_> = document
            .descendants()
            .filter(|node| node.attribute("data-stage") == Some(name.as_str()))
            .collect();
        assert_eq!(bars.len(), 1, "one bar for {name}: {svg}");
        let bar = bars[0];
        let (start, finish) = (millis(&stage["started_at"]), millis(&stage["finished_at"]));
        let width = number(bar, "width");
        let expected = (finish - start) as f64 * scale;
        assert!(
            (width - expected).abs() <= 1.0,
            "{name}: width {width} for {}ms, expected {expected}",
            finish - start
        );
        let left = number(bar, "x");
        let expected_left = PLOT_LEFT + (start - origin) as f64 * scale;
        assert!(
            (left - expected_left).abs() <= 1.0,
            "{name}: x {left}, expected {expected_left}"
        );
        assert_eq!(bar.attribute("class"), Some("s-success"));
        lanes.push((name, number(bar, "y"), start, finish));
    }
    // image, lint and unit ran side by side: their times overlap and their lanes differ.
    let overlaps =
        |a: &(String, f64, i64, i64), b: &(String, f64, i64, i64)| a.2 < b.3 && b.2 < a.3;
    let (image, lint, unit) = (&lanes[0], &lanes[1], &lanes[2]);
    assert!(overlaps(image, lint) && overlaps(lint, unit), "{lanes:?}");
    let mut ys: Vec<f64> = lanes.iter().map(|lane| lane.1).collect();
    ys.sort_by(f64::total_cmp);
    ys.dedup();
    assert_eq!(ys.len(), 4, "every stage on its own lane: {lanes:?}");

    // The push on the image's lane when the build ended, the bump on the deploy's.
    let mark = |kind: &str| {
        document
            .descendants()
            .find(|node| node.attribute("data-mark") == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} mark: {svg}"))
    };
    let lane_of = |node: roxmltree::Node<'_, '_>| {
        node.ancestors()
            .find_map(|a| a.attribute("data-lane"))
            .unwrap()
            .to_owned()
    };
    let push = mark("push");
    assert_eq!(lane_of(push), "ci / image");
    let push_title = push.first_element_child().unwrap().text().unwrap();
    assert!(push_title.starts_with("pushed "), "{push_title}");
    assert!(push_title.contains(sha), "{push_title}");
    let bump = mark("bump");
    assert_eq!(lane_of(bump), "ci / deploy-dev");
    let head = crate::server::git(&configs.bare, &["rev-parse", "main"]);
    let bump_title = bump.first_element_child().unwrap().text().unwrap();
    assert!(bump_title.contains(&head.trim()[..12]), "{bump_title}");
    assert!(
        document
            .descendants()
            .any(|n| n.attribute("data-mark") == Some("received"))
    );

    // Said as text too, for screen readers.
    let desc = document
        .descendants()
        .find(|node| node.has_tag_name("desc"))
        .and_then(|node| node.text())
        .unwrap();
    for stage in ["ci / image", "ci / lint", "ci / unit", "ci / deploy-dev"] {
        assert!(desc.contains(&format!("{stage}: success")), "{desc}");
    }

    // The run page draws the same picture inline and links to the repo's overview.
    let page = server.text(&format!("/runs/{id}")).await;
    assert!(
        page.contains(r#"<figure class="timeline" id="timeline"><svg"#),
        "{page}"
    );
    assert!(page.contains(r#"<a href="/repos/acme/app">acme/app</a>"#));

    // The overview shows what the bump left in the config repo, from which run.
    let overview = server.text("/repos/acme/app").await;
    assert!(
        overview.contains(&format!("<code>{sha}</code>")),
        "{overview}"
    );
    assert!(overview.contains(&format!(r#"<a href="/runs/{id}">#{id}</a>"#)));
    assert!(
        overview.contains(&format!("commit {}", &head.trim()[..12])),
        "{overview}"
    );
}

/// Three pushes to main (two pass, one fails), one to a branch, a pull request opened and
/// another opened and closed.
#[tokio::test]
async fn the_overview_lists_branches_open_pull_requests_and_each_pipeline_trend() {
    let forge = app_repo("stages:\n  - name: check\n    image: IMAGE\n    run: test ! -e FAIL\n");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    let mut ids = Vec::new();
    for (branch, fail) in [
        ("main", false),
        ("main", true),
        ("feature/x", false),
        ("main", false),
    ] {
        if fail {
            std::fs::write(forge.work().join("FAIL"), "").unwrap();
        } else {
            let _ = std::fs::remove_file(forge.work().join("FAIL"));
        }
        crate::server::git(forge.work(), &["add", "-A"]);
        crate::server::git(forge.work(), &["commit", "-qm", "step", "--allow-empty"]);
        let sha = forge.push(branch);
        let id = server.push(push_payload(branch, &sha, "step")).await;
        server.wait_for(id, "an end", finished).await;
        ids.push(id);
    }
    let sha = crate::server::git(forge.work(), &["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    let open = server
        .deliver(pull_request("opened", 7, "Add <b>things</b>", &sha))
        .await;
    let closed = server
        .deliver(pull_request("opened", 8, "Abandoned", &sha))
        .await;
    for id in [open, closed] {
        server.wait_for(id, "an end", finished).await;
    }
    let answer = pull_request("closed", 8, "Abandoned", &sha)
        .post(&reqwest::Client::new(), &server.address)
        .await;
    assert_eq!(answer.status().as_u16(), 200);

    let page = server.text("/repos/acme/app").await;
    let document = table_rows(&page, "branches");
    assert_eq!(
        document,
        vec![
            format!("main #{} success", ids[3]),
            format!("feature/x #{} success", ids[2]),
        ],
        "{page}"
    );
    let pulls = table_rows(&page, "pull-requests");
    assert_eq!(
        pulls,
        vec![format!(
            "#7 Add &#60;b&#62;things&#60;/b&#62; #{open} success"
        )],
        "the title is escaped: {page}"
    );
    assert!(
        !page.contains("Abandoned"),
        "a closed pull request is not open: {page}"
    );
    // The trend: six finished runs of `ci`, five passed, oldest first.
    let trend = &page[page
        .find(r#"<tr data-pipeline="ci">"#)
        .expect("a trend for ci")..];
    let trend = &trend[..trend.find("</tr>").unwrap()];
    assert!(trend.contains("83% of 6"), "{trend}");
    let bars: Vec<&str> = trend
        .match_indices("<a href=\"/runs/")
        .map(|(at, _)| &trend[at..])
        .collect();
    assert_eq!(bars.len(), 6, "{trend}");
    assert!(
        bars[0].starts_with(&format!("<a href=\"/runs/{}\"", ids[0])),
        "{trend}"
    );
    assert!(bars[1].contains("class=\"s-failure\""), "{trend}");
    // The branch links to the run list filtered to it, and that filter holds.
    assert!(
        page.contains("href=\"/?repo=acme%2Fapp&#38;branch=refs%2Fheads%2Ffeature%2Fx\""),
        "{page}"
    );
    let listed: Value = reqwest::get(format!(
        "{}/api/runs?branch=feature/x&event=push",
        server.address
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let listed: Vec<i64> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[2]]);
    let by_event: Value = reqwest::get(format!("{}/api/runs?event=pull_request", server.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_event["runs"].as_array().unwrap().len(), 2);
    let bad = reqwest::get(format!("{}/api/runs?event=nope", server.address))
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let front = server.text("/?repo=acme/app&branch=main&event=push").await;
    assert_eq!(
        front.matches("<a href=\"/runs/").count(),
        3,
        "main's three pushes: {front}"
    );
    // An unknown repo's overview is a 404 page.
    let unknown = reqwest::get(format!("{}/repos/acme/unknown", server.address))
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

/// The cells of each row of the table with `id`, as text joined by spaces (tags dropped).
fn table_rows(page: &str, id: &str) -> Vec<String> {
    let start = page
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no table {id}"));
    let table = &page[start..start + page[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            let mut text = String::new();
            let mut in_tag = false;
            for c in row[row.find('>').unwrap() + 1..].chars() {
                match c {
                    '<' => {
                        in_tag = true;
                        text.push(' ');
                    }
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            let words: Vec<&str> = text.split_whitespace().collect();
            // Without the commit, the date and the time, which change with every run.
            words[..words.len().saturating_sub(3)].join(" ")
        })
        .collect()
}

/// A GitHub pull request delivery from the repo itself.
fn pull_request(
    action: &str,
    number: u64,
    title: &str,
    sha: &str,
) -> crate::support::deliveries::Delivery {
    let repo = json!({
        "id": 1, "full_name": "acme/app",
        "clone_url": "https://github.invalid/acme/app.git",
        "html_url": "https://github.invalid/acme/app"
    });
    let body = json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "title": title,
            "merged": false,
            "head": { "ref": "feature/x", "sha": sha, "repo": repo },
            "base": { "ref": "main", "sha": sha, "repo": repo }
        },
        "repository": repo,
        "sender": { "login": "dev", "id": 5 }
    });
    crate::support::deliveries::Delivery::signed(
        gantry::domain::Forge::Github,
        super::SECRET,
        "pull_request",
        &serde_json::to_vec(&body).unwrap(),
    )
}

/// A stage that runs for a while, so that the page is open while its bar grows.
const SLOW_PIPELINE: &str = "stages:
  - name: quick
    image: IMAGE
    run: echo ready
  - name: slow
    image: IMAGE
    run: sleep 6
";

#[tokio::test]
async fn the_timeline_grows_live_in_a_browser() {
    let forge = app_repo(SLOW_PIPELINE);
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    let browser = Browser::start().await;
    let id = server.push(push_payload("main", &sha, "slowly")).await;
    browser
        .client
        .goto(&format!("{}/runs/{id}", server.address))
        .await
        .unwrap();
    browser
        .eval("window.sameDocument = 'yes'; return null;")
        .await;
    let width = || async {
        browser
            .eval(
                "var bar = document.querySelector('#timeline rect[data-stage=\"ci/slow\"]'); \
                 return bar ? parseFloat(bar.getAttribute('width')) : null;",
            )
            .await
    };
    // The slow stage's bar appears once it starts, without a reload, and grows.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Value::Number(width) = width().await {
            break width.as_f64().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slow stage's bar never appeared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = width().await.as_f64().unwrap();
    assert!(
        later > first + 5.0,
        "the running bar grew: {first} then {later}"
    );
    let state = browser.eval(
        "return document.querySelector('#timeline rect[data-stage=\"ci/slow\"]').getAttribute('class');",
    ).await;
    assert_eq!(state, json!("s-running"));
    browser
        .wait_text("#run-state", Duration::from_secs(30), |t| t == "success")
        .await;
    // The last drawing has the stage ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let class = browser.eval(
            "return document.querySelector('#timeline rect[data-stage=\"ci/slow\"]').getAttribute('class');",
        ).await;
        if class == json!("s-success") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the timeline never showed the end: {class}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        browser.eval("return window.sameDocument || null;").await,
        json!("yes")
    );

    // A picture people can look at: kept as an artifact, and not blank.
    let figure = browser
        .client
        .find(fantoccini::Locator::Css("#timeline"))
        .await
        .unwrap();
    let png = figure.screenshot().await.unwrap();
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("timeline.png"), &png).unwrap();
    let (colours, coloured_share) = looks(&png);
    assert!(colours >= 4, "a drawing has several colours, not {colours}");
    assert!(
        coloured_share > 0.02,
        "{coloured_share} of the pixels differ from the background"
    );
    browser.client.clone().close().await.unwrap();
}

/// How many distinct colours a PNG has, and the share of its pixels that differ from the
/// commonest (the background).
fn looks(png: &[u8]) -> (usize, f64) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    let mut counts = std::collections::HashMap::new();
    for pixel in pixels[..frame.buffer_size()].chunks(channels) {
        *counts.entry(pixel.to_vec()).or_insert(0usize) += 1;
    }
    let total: usize = counts.values().sum();
    let background = counts.values().copied().max().unwrap_or(0);
    (
        counts.len(),
        (total - background) as f64 / total.max(1) as f64,
    )
}

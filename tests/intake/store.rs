//! The same store behaviour on SQLite and PostgreSQL.

use gantry::store::{NewDelivery, Recorded, RunFilter, RunState, Store};
use gantry::webhook::{self, Forge};

use crate::helpers::{Backend, fixture, fresh_store_url, signed};

/// Runs one async test body against each backend, as `<name>_sqlite` and `<name>_postgres`.
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                $body(Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                $body(Backend::Postgres).await;
            }
        }
    };
}

async fn open(backend: Backend) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(backend, dir.path()).await;
    (Store::connect(&url).await.expect("store opens"), dir)
}

/// A parsed GitHub push delivery with a fresh delivery id (or the one given).
fn push_delivery(delivery_id: Option<&str>) -> NewDelivery {
    let mut request = signed("github", "push", &fixture("github/push/goscm__push.json"));
    if let Some(id) = delivery_id {
        request = request.with_header("X-GitHub-Delivery", id);
    }
    let settings =
        crate::helpers::settings_for(tempfile::tempdir().unwrap().path(), "sqlite::memory:");
    let headers = Pairs(request.headers);
    let delivery = webhook::receive(
        Forge::Github,
        &headers,
        &request.body,
        &settings,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let run = delivery.event.run_request().unwrap();
    NewDelivery {
        delivery,
        run,
        repo: "Codertocat/Hello-World".into(),
    }
}

struct Pairs(Vec<(String, String)>);

impl webhook::Headers for Pairs {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

async fn records_and_reads_back_a_run(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let new = push_delivery(None);
    let Recorded::Queued { run_id } = store.record_delivery(new.clone()).await.unwrap() else {
        panic!("first delivery must queue a run");
    };
    let run = store.run(run_id).await.unwrap().expect("run is stored");
    assert_eq!(run.state, "queued");
    assert_eq!(run.repo, "Codertocat/Hello-World");
    assert_eq!(run.trigger, "push");
    assert_eq!(run.git_ref, "refs/heads/master");
    assert_eq!(run.commit_sha, "199eddf46df50de8d02e99bf1c5fdb4101338224");
    assert_eq!(run.delivery_id, new.delivery.id.as_str());
    assert_eq!(run.event.as_ref(), Some(&new.delivery.event));
    assert!(store.run(run_id + 1000).await.unwrap().is_none());
    assert_eq!(store.queue_depth().await.unwrap(), 1);
    assert!(store.is_reachable().await);
}
on_both_backends!(records_and_reads_back, records_and_reads_back_a_run);

async fn a_delivery_id_is_recorded_once(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let first = store
        .record_delivery(push_delivery(Some("d-1")))
        .await
        .unwrap();
    assert!(matches!(first, Recorded::Queued { .. }));
    let again = store
        .record_delivery(push_delivery(Some("d-1")))
        .await
        .unwrap();
    assert_eq!(again, Recorded::Duplicate);
    let runs = store
        .list_runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}
on_both_backends!(deduplicates, a_delivery_id_is_recorded_once);

async fn concurrent_deliveries_are_all_recorded_and_duplicates_once(backend: Backend) {
    let (store, _dir) = open(backend).await;
    // 200 distinct deliveries and 50 copies of one, all at once: group commit batches them.
    let mut tasks = Vec::new();
    for index in 0..250 {
        let store = store.clone();
        let id = if index < 200 {
            format!("d-{index}")
        } else {
            "same".to_owned()
        };
        tasks.push(tokio::spawn(async move {
            store
                .record_delivery(push_delivery(Some(&id)))
                .await
                .unwrap()
        }));
    }
    let mut queued = Vec::new();
    let mut duplicates = 0;
    for task in tasks {
        match task.await.unwrap() {
            Recorded::Queued { run_id } => queued.push(run_id),
            Recorded::Duplicate => duplicates += 1,
        }
    }
    assert_eq!(queued.len(), 201);
    assert_eq!(duplicates, 49);
    queued.sort();
    queued.dedup();
    assert_eq!(queued.len(), 201, "run ids are unique");
    let runs = store
        .list_runs(&RunFilter {
            limit: 500,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 201);
}
on_both_backends!(
    concurrent_intake,
    concurrent_deliveries_are_all_recorded_and_duplicates_once
);

async fn runs_are_listed_newest_first_with_filters_and_pages(backend: Backend) {
    let (store, _dir) = open(backend).await;
    for index in 0..5 {
        store
            .record_delivery(push_delivery(Some(&format!("p-{index}"))))
            .await
            .unwrap();
    }
    let page = |before, limit| RunFilter {
        before,
        limit,
        ..RunFilter::default()
    };
    let first = store.list_runs(&page(None, 2)).await.unwrap();
    let ids: Vec<i64> = first.iter().map(|run| run.id).collect();
    assert!(ids[0] > ids[1]);
    let second = store.list_runs(&page(Some(ids[1]), 10)).await.unwrap();
    assert_eq!(second.len(), 3);
    assert!(second.iter().all(|run| run.id < ids[1]));

    let by_repo = |repo: &str| RunFilter {
        repo: Some(repo.into()),
        limit: 10,
        ..RunFilter::default()
    };
    assert_eq!(
        store
            .list_runs(&by_repo("Codertocat/Hello-World"))
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        store.list_runs(&by_repo("other/repo")).await.unwrap().len(),
        0
    );
    let by_state = |state| RunFilter {
        state: Some(state),
        limit: 10,
        ..RunFilter::default()
    };
    assert_eq!(
        store
            .list_runs(&by_state(RunState::Queued))
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        store
            .list_runs(&by_state(RunState::Success))
            .await
            .unwrap()
            .len(),
        0
    );
}
on_both_backends!(listing, runs_are_listed_newest_first_with_filters_and_pages);

async fn reopening_keeps_everything_and_migrations_are_idempotent(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(backend, dir.path()).await;
    let store = Store::connect(&url).await.unwrap();
    store
        .record_delivery(push_delivery(Some("kept")))
        .await
        .unwrap();
    drop(store);
    let reopened = Store::connect(&url).await.unwrap();
    let again = reopened
        .record_delivery(push_delivery(Some("kept")))
        .await
        .unwrap();
    assert_eq!(again, Recorded::Duplicate);
    assert_eq!(reopened.queue_depth().await.unwrap(), 1);
}
on_both_backends!(
    reopening,
    reopening_keeps_everything_and_migrations_are_idempotent
);

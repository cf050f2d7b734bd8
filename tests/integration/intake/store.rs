//! The same store behaviour on SQLite and PostgreSQL.

use gantry::domain::{CommitStatus, Decision, Forge, RunState, StageState, StatusState, Trigger};
use gantry::git::GitAuth;
use gantry::runner::scheduler::resolve_abandoned_pipelines;
use gantry::store::{
    AnnouncedPipeline, BumpReport, Hold, LogChunk, LogPage, NewDelivery, Recorded, RunFilter,
    StageUpdate, Store,
};

use crate::gitops::repos::kustomization;
use crate::intake::helpers::{Backend, fixture, fresh_store_url, signed};
use crate::support::git::Repo;

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
    let settings = crate::intake::helpers::settings_for(
        tempfile::tempdir().unwrap().path(),
        "sqlite::memory:",
    );
    let delivery = request.receive(&settings).unwrap();
    let run = delivery.event.run_request().unwrap();
    NewDelivery {
        delivery,
        run,
        repo: "Codertocat/Hello-World".into(),
        approval: None,
    }
}

async fn records_and_reads_back_a_run(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let new = push_delivery(None);
    let Recorded::Queued { run_id } = store.record_delivery(new.clone()).await.unwrap() else {
        panic!("first delivery must queue a run");
    };
    let run = store.run(run_id).await.unwrap().expect("run is stored");
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(run.repo.as_str(), "Codertocat/Hello-World");
    assert_eq!(run.trigger, Trigger::Push);
    assert_eq!(run.git_ref, "refs/heads/master");
    assert_eq!(
        run.commit_sha.as_str(),
        "199eddf46df50de8d02e99bf1c5fdb4101338224"
    );
    assert_eq!(run.delivery_id, new.delivery.id.as_str());
    assert_eq!(run.event.as_ref(), Some(&new.delivery.event));
    assert!(store.run(run_id + 1000).await.unwrap().is_none());
    assert_eq!(store.waiting_runs().await.unwrap().queued, 1);
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

/// A claim reads its clock before it waits for a connection or the write lock, so the run it
/// takes may have been committed after that moment: the run still does not start before it
/// was created (a timeline drew its checkout before its arrival).
async fn a_run_never_starts_before_it_was_created(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(backend, dir.path()).await;
    let store = Store::connect(&url).await.expect("store opens");
    let Recorded::Queued { run_id } = store.record_delivery(push_delivery(None)).await.unwrap()
    else {
        panic!("the delivery queues a run");
    };
    // As if the intake committed the run a minute after the claim read its clock.
    let other = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE runs SET created_at = created_at + 60000 WHERE id = $1")
        .bind(run_id)
        .execute(&other)
        .await
        .unwrap();
    let claimed = store.claim_run("runner-1", &[]).await.unwrap().unwrap();
    assert_eq!(claimed.id, run_id);
    let runs = store
        .list_runs(&RunFilter {
            limit: 1,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        runs[0].started_at.as_deref(),
        Some(runs[0].created_at.as_str())
    );
}
on_both_backends!(
    claimed_after_creation,
    a_run_never_starts_before_it_was_created
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
    let pushed_ref = first[0].git_ref.clone();
    let by = |git_ref: Option<&str>, trigger| RunFilter {
        git_ref: git_ref.map(str::to_owned),
        trigger,
        limit: 10,
        ..RunFilter::default()
    };
    let count = |filter| {
        let store = store.clone();
        async move { store.list_runs(&filter).await.unwrap().len() }
    };
    assert_eq!(count(by(Some(&pushed_ref), None)).await, 5);
    assert_eq!(count(by(Some("refs/heads/elsewhere"), None)).await, 0);
    assert_eq!(count(by(None, Some(Trigger::Push))).await, 5);
    assert_eq!(count(by(None, Some(Trigger::PullRequest))).await, 0);
    assert_eq!(
        count(by(Some(&pushed_ref), Some(Trigger::Push))).await,
        5,
        "branch and event filters combine"
    );
}
on_both_backends!(listing, runs_are_listed_newest_first_with_filters_and_pages);

async fn queue_one(store: &Store) -> i64 {
    let Recorded::Queued { run_id } = store.record_delivery(push_delivery(None)).await.unwrap()
    else {
        panic!("a fresh delivery queues a run");
    };
    run_id
}

fn ci_status(state: StatusState, description: &str) -> CommitStatus {
    CommitStatus {
        forge: Forge::Github,
        repo: "Codertocat/Hello-World".into(),
        sha: "199eddf46df50de8d02e99bf1c5fdb4101338224".parse().unwrap(),
        git_ref: "master".into(),
        context: "gantry/ci".into(),
        state,
        description: description.into(),
        target_url: "http://gantry.test/runs/1".into(),
    }
}

/// An announcement lands once and only while its run waits; a pipeline a finished run left
/// pending is resolved once, with the run's reason; an older run never overrides a newer
/// run's status on the same commit and context.
async fn announcements_and_abandoned_pipelines(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let claimed = queue_one(&store).await;
    // Claimed before the newer run of its ref is queued: a queued run that a newer one
    // supersedes is never claimed.
    assert_eq!(
        store.claim_run("runner-1", &[]).await.unwrap().unwrap().id,
        claimed
    );
    let waiting = queue_one(&store).await;
    let pipeline = AnnouncedPipeline {
        pipeline: "ci",
        file: ".gantry/ci.yml",
        state: StageState::Pending,
        description: Some("queued"),
    };
    let pending = ci_status(StatusState::Pending, "queued");

    assert!(
        !store
            .announce_run(
                claimed,
                RunState::Queued,
                std::slice::from_ref(&pipeline),
                std::slice::from_ref(&pending)
            )
            .await
            .unwrap(),
        "a claimed run is its runner's to report"
    );
    assert!(store.run_statuses(claimed).await.unwrap().is_empty());
    assert!(store.pipeline_results(claimed).await.unwrap().is_empty());

    assert_eq!(store.unannounced_runs(10, true).await.unwrap().len(), 1);
    assert!(
        store
            .announce_run(
                waiting,
                RunState::Queued,
                std::slice::from_ref(&pipeline),
                std::slice::from_ref(&pending)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .announce_run(waiting, RunState::Queued, &[pipeline], &[pending])
            .await
            .unwrap(),
        "a second replica's announcement of the same run writes nothing"
    );
    assert!(store.unannounced_runs(10, true).await.unwrap().is_empty());
    let statuses = store.run_statuses(waiting).await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        (statuses[0].state.as_str(), statuses[0].delivery.as_str()),
        ("pending", "waiting")
    );

    // Nothing to resolve while the run waits; once it is canceled, its pipeline ends once.
    assert_eq!(resolve_abandoned_pipelines(&store).await.unwrap(), 0);
    assert!(store.request_cancel(waiting).await.unwrap());
    assert_eq!(resolve_abandoned_pipelines(&store).await.unwrap(), 1);
    assert_eq!(resolve_abandoned_pipelines(&store).await.unwrap(), 0);
    let pipelines = store.pipeline_results(waiting).await.unwrap();
    assert_eq!(
        (
            pipelines[0].state.as_str(),
            pipelines[0].description.as_deref()
        ),
        ("canceled", Some("canceled"))
    );
    let statuses = store.run_statuses(waiting).await.unwrap();
    assert_eq!(
        (
            statuses[0].state.as_str(),
            statuses[0].description.as_str(),
            statuses[0].target_url.as_str()
        ),
        ("canceled", "canceled", "http://gantry.test/runs/1")
    );

    // The claimed (older) run ends after the newer one spoke for this commit and context:
    // its status is not queued.
    store
        .queue_status(
            &Hold {
                run_id: claimed,
                runner: "runner-1".into(),
            },
            &ci_status(StatusState::Success, "passed"),
        )
        .await
        .unwrap();
    assert!(store.run_statuses(claimed).await.unwrap().is_empty());
}
on_both_backends!(announcements, announcements_and_abandoned_pipelines);

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
    assert_eq!(reopened.waiting_runs().await.unwrap().queued, 1);
}
on_both_backends!(
    reopening,
    reopening_keeps_everything_and_migrations_are_idempotent
);

/// A bump stage's result for `file` of the config repo.
fn bump_report(
    file: &str,
    changes: Vec<gantry::domain::ValueChange>,
    commit: Option<String>,
) -> BumpReport {
    BumpReport {
        pipeline: "web".into(),
        stage: "deploy-dev".into(),
        bumped: gantry::domain::BumpedFile {
            repo: "https://git.example.com/acme/config.git".into(),
            branch: "main".into(),
            file: file.into(),
            image: "registry.example.com/acme/web".into(),
            changes,
            commit,
            pull_request: None,
        },
        error: None,
        at: None,
    }
}

async fn bumps_are_recorded_and_read_back(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let Recorded::Queued { run_id } = store.record_delivery(push_delivery(None)).await.unwrap()
    else {
        panic!("first delivery must queue a run");
    };
    let report = bump_report(
        "apps/web/kustomization.yaml",
        vec![gantry::domain::ValueChange {
            line: 7,
            place: "images[0].newTag".into(),
            old: Some("v1".into()),
            new: "v2".into(),
        }],
        Some("0123456789abcdef0123456789abcdef01234567".into()),
    );
    store.record_bump(run_id, &report).await.unwrap();
    let read = store.run_bumps(run_id).await.unwrap();
    assert_eq!(read.len(), 1);
    assert!(read[0].at.is_some(), "a recorded bump has its time");
    assert_eq!(
        BumpReport {
            at: None,
            ..read[0].clone()
        },
        report
    );
    assert!(store.run_bumps(run_id + 1).await.unwrap().is_empty());
}
on_both_backends!(bumps_recorded, bumps_are_recorded_and_read_back);

/// A controller's reports are stored once per change, taken by one settler at a time, and
/// settle the deployments they name (a success is never undone).
async fn deploy_reports_settle_deployments(backend: Backend) {
    use gantry::domain::{DeployOutcome, DeploySource, DeployState};
    use gantry::store::{DeployRecorded, NewDeployEvent, SettledDeployment};
    let (store, _dir) = open(backend).await;
    let run_id = queue_one(&store).await;
    let report = bump_report(
        "apps/web/dev/kustomization.yaml",
        Vec::new(),
        Some("a".repeat(40)),
    );
    let bump_id = store.record_bump(run_id, &report).await.unwrap();
    store
        .open_deployments(bump_id, run_id, &[("dev".into(), None)])
        .await
        .unwrap();
    let open = store.open_deployments_of("dev").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].bump_id, open[0].state),
        (bump_id, DeployState::Pending)
    );
    let event = |revision: &str, outcome| NewDeployEvent {
        source: DeploySource::Flux,
        object: "flux-system/web-dev".into(),
        environment: "dev".into(),
        revision: revision.into(),
        outcome,
        message: Some("why".into()),
    };
    let failed = event(&"b".repeat(40), DeployOutcome::Failed);
    assert!(matches!(
        store.record_deploy_event(&failed).await.unwrap(),
        DeployRecorded::Stored { .. }
    ));
    assert_eq!(
        store.record_deploy_event(&failed).await.unwrap(),
        DeployRecorded::Repeated
    );
    let applied = event(&"b".repeat(40), DeployOutcome::Applied);
    assert!(matches!(
        store.record_deploy_event(&applied).await.unwrap(),
        DeployRecorded::Stored { .. }
    ));

    let first = store.claim_deploy_event(60_000).await.unwrap().unwrap();
    let second = store.claim_deploy_event(60_000).await.unwrap().unwrap();
    assert!(first.id < second.id, "claimed in order, each once");
    assert!(store.claim_deploy_event(60_000).await.unwrap().is_none());
    let settle = |state| SettledDeployment {
        bump_id,
        run_id,
        state,
        description: "told".into(),
    };
    let changed = store
        .settle_deploy_event(&first, &[settle(DeployState::Failure)])
        .await
        .unwrap();
    assert_eq!(changed, vec![bump_id]);
    let changed = store
        .settle_deploy_event(&second, &[settle(DeployState::Success)])
        .await
        .unwrap();
    assert_eq!(changed, vec![bump_id]);
    assert!(store.open_deployments_of("dev").await.unwrap().is_empty());
    // A later failure leaves a success alone.
    let late = event(&"c".repeat(40), DeployOutcome::Failed);
    store.record_deploy_event(&late).await.unwrap();
    let third = store.claim_deploy_event(60_000).await.unwrap().unwrap();
    let changed = store
        .settle_deploy_event(&third, &[settle(DeployState::Failure)])
        .await
        .unwrap();
    assert!(changed.is_empty());
    let shown = store.run_deployments(run_id).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].state, DeployState::Success);
    assert_eq!(shown[0].revision.as_deref(), Some("b".repeat(40).as_str()));
    assert_eq!(shown[0].stage, "deploy-dev");
    assert!(store.claim_deploy_event(60_000).await.unwrap().is_none());
    // Pruning the run takes its deployments with it.
    assert_eq!(store.remove_runs(&[run_id]).await.unwrap(), 1);
    assert!(store.run_deployments(run_id).await.unwrap().is_empty());
}
on_both_backends!(deploy_reports, deploy_reports_settle_deployments);

/// Two handles on one PostgreSQL database stand for two replicas: the second waits for the
/// lane until the first lets go. SQLite has no other process to exclude.
async fn lane_locks_make_replicas_take_turns(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(backend, dir.path()).await;
    let first = Store::connect(&url).await.unwrap();
    let second = Store::connect(&url).await.unwrap();
    let held = first.lock_lane("bump config main").await.unwrap();
    if matches!(backend, Backend::Sqlite) {
        assert!(held.is_none());
        return;
    }
    assert!(held.is_some());
    let waiting = tokio::spawn(async move { second.lock_lane("bump config main").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the second replica must wait");
    let other = first.lock_lane("bump config release").await.unwrap();
    assert!(other.is_some(), "another lane is free");
    drop(held);
    let taken = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("the lock is released when its holder drops it")
        .unwrap()
        .unwrap();
    assert!(taken.is_some());
}
on_both_backends!(lane_locks, lane_locks_make_replicas_take_turns);

/// Bumpers of two replicas sharing PostgreSQL take turns on the branch, so none of their
/// pushes is rejected (without the lock they race, as the gitops tests show).
#[tokio::test]
async fn replicas_sharing_postgres_never_race_each_others_pushes() {
    use gantry::gitops::bump::{Author, BumpRequest, Bumper, ConfigRepo};
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(Backend::Postgres, dir.path()).await;
    let images: Vec<String> = (0..12)
        .map(|i| format!("registry.example.com/acme/s{i}"))
        .collect();
    let config = Repo::new(&[("kustomization.yaml", &kustomization(&images))]);
    let config_url = config.url();
    let replica = |store: Store| {
        Bumper::new(
            Author::parse("Gantry <g@example.com>").unwrap(),
            GitAuth::None,
        )
        .with_store(store)
    };
    let replicas = [
        replica(Store::connect(&url).await.unwrap()),
        replica(Store::connect(&url).await.unwrap()),
    ];
    let tasks: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let bumper = replicas[i % 2].clone();
            let request = BumpRequest {
                repo: ConfigRepo {
                    url: config_url.clone(),
                    branch: "main".into(),
                },
                file: "kustomization.yaml".into(),
                new: gantry::gitops::edit::NewImage {
                    image: image.clone(),
                    tag: Some("v1".into()),
                    digest: None,
                    key: None,
                },
                mode: gantry::pipeline::BumpMode::Commit,
                forge: None,
                source: None,
            };
            tokio::spawn(async move { bumper.bump(request).await })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        assert_eq!(
            outcome.attempts, 1,
            "{} lost a push race",
            outcome.bumped.image
        );
        assert!(outcome.bumped.commit.is_some());
    }
}

/// A run taken back from a silent runner is no longer that runner's: whatever it writes
/// later (a stage, output, a status, the run's end) is dropped, and the new holder's
/// writes land. Labels keep a run from runners that lack them; a hand-back does not count
/// an attempt.
async fn writes_of_a_runner_that_lost_its_run_are_dropped(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let id = queue_one(&store).await;
    let claimed = store.claim_run("silent", &[]).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.attempts), (id, 1));
    let silent = Hold {
        run_id: id,
        runner: "silent".into(),
    };
    store
        .set_pipeline(&silent, "ci", ".gantry/ci.yml", StageState::Running, None)
        .await
        .unwrap();
    store
        .queue_status(&silent, &ci_status(StatusState::Running, "running test"))
        .await
        .unwrap();
    // The lease ran out: another runner takes the run back and claims it.
    let taken = store
        .take_back_lost_runs(gantry::store::now_millis() + 1, false)
        .await
        .unwrap();
    assert_eq!(taken, [id]);
    let run = store.run(id).await.unwrap().unwrap();
    assert_eq!(
        (run.state, run.description.as_deref()),
        (RunState::Queued, Some("runner lost; queued again"))
    );
    let lost_status = |statuses: Vec<gantry::store::StatusReport>| {
        statuses
            .iter()
            .map(|s| (s.state, s.description.clone()))
            .collect::<Vec<_>>()
    };
    let said = vec![(StatusState::Pending, "runner lost; queued again".to_owned())];
    assert_eq!(lost_status(store.run_statuses(id).await.unwrap()), said);
    assert_eq!(
        store.pipeline_results(id).await.unwrap()[0]
            .description
            .as_deref(),
        Some("runner lost; queued again")
    );
    assert_eq!(
        store
            .claim_run("other", &[])
            .await
            .unwrap()
            .unwrap()
            .attempts,
        2
    );
    let other = Hold {
        run_id: id,
        runner: "other".into(),
    };

    let stage = |state| StageUpdate {
        pipeline: "ci",
        stage: "test",
        position: 0,
        state,
        exit_code: None,
        message: None,
        attempts: 1,
        started: true,
        finished: false,
        log_dropped: 0,
    };
    let chunk = |text: &str| LogChunk {
        run_id: id,
        pipeline: "ci".into(),
        stage: "test".into(),
        first_line: 1,
        line_count: 1,
        text: format!("{text}\n"),
    };
    store
        .set_pipeline(&other, "ci", ".gantry/ci.yml", StageState::Running, None)
        .await
        .unwrap();
    store
        .set_stage(&other, &stage(StageState::Running))
        .await
        .unwrap();
    store
        .append_log(&other, &chunk("from the holder"))
        .await
        .unwrap();
    store
        .set_pipeline(&silent, "ci", ".gantry/ci.yml", StageState::Failure, None)
        .await
        .unwrap();
    store
        .set_stage(&silent, &stage(StageState::Failure))
        .await
        .unwrap();
    store
        .append_log(&silent, &chunk("from the silent runner"))
        .await
        .unwrap();
    store
        .queue_status(&silent, &ci_status(StatusState::Failure, "late"))
        .await
        .unwrap();
    assert!(
        !store
            .finish_run(&silent, RunState::Failure, None)
            .await
            .unwrap()
    );

    let results = store.pipeline_results(id).await.unwrap();
    assert_eq!(
        (results[0].state, results[0].stages[0].state),
        (StageState::Running, StageState::Running)
    );
    let page = LogPage::after(0, 100);
    let log: Vec<String> = store
        .log_chunks(id, &page)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, chunk)| chunk.text)
        .collect();
    assert_eq!(log, ["from the holder\n"]);
    assert_eq!(lost_status(store.run_statuses(id).await.unwrap()), said);
    assert!(
        store
            .finish_run(&other, RunState::Success, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.run(id).await.unwrap().unwrap().state,
        RunState::Success
    );

    // Labels: a run that asks for `big` goes only to a runner offering it.
    let big = queue_one(&store).await;
    let small = store.claim_run("small", &[]).await.unwrap().unwrap();
    assert_eq!(small.id, big);
    let small_hold = Hold {
        run_id: big,
        runner: "small".into(),
    };
    assert!(
        store
            .hand_back(
                &small_hold,
                &["big".into()],
                "waiting for a runner with labels big"
            )
            .await
            .unwrap()
    );
    assert!(store.claim_run("small", &[]).await.unwrap().is_none());
    assert!(
        store
            .claim_run("small", &["gpu".into()])
            .await
            .unwrap()
            .is_none()
    );
    let taken = store
        .claim_run("large", &["big".into(), "gpu".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (taken.id, taken.attempts),
        (big, 1),
        "the hand-back was not counted"
    );
    assert_eq!(store.run_labels(big).await.unwrap(), ["big"]);
}
on_both_backends!(lost_holds, writes_of_a_runner_that_lost_its_run_are_dropped);

/// A queued run that a newer run of its ref supersedes is never claimed, and claiming the
/// newer run asks the older one still running to cancel, before it can end.
async fn claims_never_take_a_superseded_run(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let running = queue_one(&store).await;
    assert_eq!(
        store.claim_run("a", &[]).await.unwrap().unwrap().id,
        running
    );
    let older = queue_one(&store).await;
    let newest = queue_one(&store).await;
    assert_eq!(store.claim_run("b", &[]).await.unwrap().unwrap().id, newest);
    assert!(store.claim_run("c", &[]).await.unwrap().is_none());
    let held = store
        .runner_heartbeat(
            &gantry::store::RunnerIdentity {
                id: "a".into(),
                name: "a".into(),
                labels: Vec::new(),
                capacity: 1,
                version: "test".into(),
            },
            gantry::domain::RunnerState::Active,
            30_000,
        )
        .await
        .unwrap();
    assert_eq!(
        held.iter()
            .map(|run| (run.id, run.cancel_requested))
            .collect::<Vec<_>>(),
        [(running, true)]
    );
    store.supersede_older_runs().await.unwrap();
    assert_eq!(
        store.run(older).await.unwrap().unwrap().state,
        RunState::Canceled
    );
}
on_both_backends!(superseded_claims, claims_never_take_a_superseded_run);

/// Stores a fresh delivery of the push fixture as a run that waits for approval.
async fn block_one(store: &Store) -> i64 {
    let new = NewDelivery {
        approval: Some("a run of this repo, sent by mallory".into()),
        ..push_delivery(None)
    };
    let Recorded::Queued { run_id } = store.record_delivery(new).await.unwrap() else {
        panic!("a fresh delivery stores a run");
    };
    run_id
}

/// A blocked run is never claimed; it waits until one decision, the first, queues or ends
/// it; a newer run of its ref supersedes it; a rerun waits again unless it was approved.
async fn blocked_runs_wait_for_one_decision(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let blocked = block_one(&store).await;
    let run = store.run(blocked).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Blocked);
    let approval = run.approval.expect("a blocked run says why");
    assert_eq!(approval.reason, "a run of this repo, sent by mallory");
    assert_eq!((approval.decision, approval.by), (None, None));
    assert!(store.claim_run("a", &[]).await.unwrap().is_none());
    let waiting = store.waiting_runs().await.unwrap();
    assert_eq!((waiting.queued, waiting.blocked), (0, 1));
    let unannounced = store.unannounced_runs(10, false).await.unwrap();
    assert_eq!(unannounced.len(), 1);
    assert_eq!(unannounced[0].state, RunState::Blocked);

    assert_eq!(
        store
            .decide_run(blocked, Decision::Approved, "alice")
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        store
            .decide_run(blocked, Decision::Declined, "bob")
            .await
            .unwrap(),
        Err(Some(RunState::Queued)),
        "the first decision holds"
    );
    assert_eq!(
        store
            .decide_run(blocked + 1000, Decision::Approved, "alice")
            .await
            .unwrap(),
        Err(None)
    );
    let run = store.run(blocked).await.unwrap().unwrap();
    let approval = run.approval.unwrap();
    assert_eq!(
        (run.state, approval.decision, approval.by.as_deref()),
        (RunState::Queued, Some(Decision::Approved), Some("alice"))
    );
    assert!(approval.at.is_some());
    // A rerun of the approved commit carries its approval.
    let again = store.rerun(blocked).await.unwrap().unwrap();
    let rerun = store.run(again).await.unwrap().unwrap();
    assert_eq!(rerun.state, RunState::Queued);
    assert_eq!(
        rerun.approval.unwrap().by.as_deref(),
        Some("alice"),
        "approval holds for the commit"
    );
    assert_eq!(store.claim_run("a", &[]).await.unwrap().unwrap().id, again);

    // A newer blocked run supersedes an older one; declining ends it for good.
    let older = block_one(&store).await;
    let newer = block_one(&store).await;
    store.supersede_older_runs().await.unwrap();
    let superseded = store.run(older).await.unwrap().unwrap();
    assert_eq!(superseded.state, RunState::Canceled);
    assert_eq!(
        superseded.description.as_deref(),
        Some("superseded by a newer run for the same ref")
    );
    assert_eq!(
        store
            .decide_run(older, Decision::Approved, "alice")
            .await
            .unwrap(),
        Err(Some(RunState::Canceled))
    );
    assert_eq!(
        store
            .decide_run(newer, Decision::Declined, "bob")
            .await
            .unwrap(),
        Ok(())
    );
    let declined = store.run(newer).await.unwrap().unwrap();
    assert_eq!(declined.state, RunState::Declined);
    assert!(declined.finished_at.is_some());
    assert_eq!(declined.description.as_deref(), Some("declined by bob"));
    // Its rerun waits again, and a blocked run can be canceled.
    let rerun = store.rerun(newer).await.unwrap().unwrap();
    assert_eq!(
        store.run(rerun).await.unwrap().unwrap().state,
        RunState::Blocked
    );
    assert!(store.request_cancel(rerun).await.unwrap());
    assert_eq!(
        store.run(rerun).await.unwrap().unwrap().state,
        RunState::Canceled
    );
}
on_both_backends!(blocked_runs, blocked_runs_wait_for_one_decision);

/// A push run of the fixture, claimed and finished with `pipelines` ended in success, and
/// a line of output.
async fn finished_run(store: &Store, pipelines: &[&str]) -> i64 {
    let id = queue_one(store).await;
    let claimed = store.claim_run("pruner-test", &[]).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    let hold = Hold {
        run_id: id,
        runner: "pruner-test".into(),
    };
    for pipeline in pipelines {
        store
            .set_pipeline(&hold, pipeline, ".gantry/x.yml", StageState::Success, None)
            .await
            .unwrap();
    }
    let chunk = LogChunk {
        run_id: id,
        pipeline: pipelines[0].into(),
        stage: "s".into(),
        first_line: 1,
        line_count: 1,
        text: "output\n".into(),
    };
    store.append_log(&hold, &chunk).await.unwrap();
    assert!(
        store
            .finish_run(&hold, RunState::Success, None)
            .await
            .unwrap()
    );
    id
}

/// Moves run `id` `days` into the past, through a connection of its own.
async fn backdate(url: &str, id: i64, days: i64) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query("UPDATE runs SET created_at = created_at - $1 WHERE id = $2")
        .bind(days * 24 * 60 * 60 * 1000)
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Retention by count and by age, logs alone past their own age, unfinished runs never,
/// and the newest finished run of each pipeline on each ref always kept.
async fn retention_keeps_what_it_must(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(backend, dir.path()).await;
    let store = Store::connect(&url).await.unwrap();
    let retention = gantry::store::Retention {
        keep_runs: 4,
        keep_days: 90,
        keep_logs_days: 30,
    };
    let oldest = finished_run(&store, &["ci"]).await;
    // The only run of `deploy` on its ref: kept whatever its age and place.
    let deploy = finished_run(&store, &["ci", "deploy"]).await;
    let third = finished_run(&store, &["ci"]).await;
    let old = finished_run(&store, &["ci"]).await;
    let logged = finished_run(&store, &["ci"]).await;
    let newest = finished_run(&store, &["ci"]).await;
    backdate(&url, old, 100).await;
    backdate(&url, deploy, 200).await;
    backdate(&url, logged, 40).await;
    let waiting = queue_one(&store).await;
    backdate(&url, waiting, 300).await;

    let ids = |runs: Vec<gantry::store::Prunable>| -> Vec<i64> {
        runs.iter().map(|run| run.id).collect()
    };
    let prunable = ids(store.prunable_runs(&retention, 100).await.unwrap());
    assert_eq!(
        prunable,
        [oldest, third, old],
        "beyond the newest four: {oldest} and {third} (but {deploy}, deploy's newest); \
         past 90 days: {old}; never the queued {waiting} nor the newest {newest}"
    );
    let logs = ids(store.prunable_logs(&retention, 100).await.unwrap());
    assert_eq!(
        logs,
        [deploy, old, logged],
        "runs past 30 days that still have a log"
    );

    let pruned = gantry::housekeeping::prune(&store, &retention, None)
        .await
        .unwrap();
    assert_eq!((pruned.runs, pruned.logs), (3, 2));
    for id in [oldest, third, old] {
        assert!(store.run(id).await.unwrap().is_none(), "run {id} is gone");
    }
    for id in [deploy, logged, newest, waiting] {
        assert!(store.run(id).await.unwrap().is_some(), "run {id} stays");
    }
    let page = LogPage::after(0, 10);
    assert!(store.log_chunks(logged, &page).await.unwrap().is_empty());
    assert_eq!(store.log_chunks(newest, &page).await.unwrap().len(), 1);
    assert!(store.pipeline_results(oldest).await.unwrap().is_empty());
    assert_eq!(
        gantry::housekeeping::prune(&store, &retention, None)
            .await
            .unwrap(),
        gantry::housekeeping::Pruned::default(),
        "a second pass finds nothing"
    );
    assert!(store.size_bytes().await.unwrap() > 0);
}
on_both_backends!(retention, retention_keeps_what_it_must);

/// `gantry prune --dry-run` lists what would go and removes nothing; `gantry prune` removes
/// it.
#[tokio::test]
async fn gantry_prune_lists_then_removes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gantry.db").display());
    let store = Store::connect(&url).await.unwrap();
    let first = finished_run(&store, &["ci"]).await;
    let second = finished_run(&store, &["ci"]).await;
    let newest = finished_run(&store, &["ci"]).await;
    drop(store);
    let config = dir.path().join("gantry.toml");
    std::fs::write(
        &config,
        format!("[store]\nurl = {url:?}\nkeep_runs = 1\nkeep_days = 90\nkeep_logs_days = 30\n"),
    )
    .unwrap();
    let prune = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("prune")
            .arg("-c")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let listed = prune(&["--dry-run"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines[0].starts_with(&format!(
            "run {first} Codertocat/Hello-World refs/heads/master "
        )) && lines[0].ends_with(": would be removed"),
        "{listed}"
    );
    assert!(lines[1].starts_with(&format!("run {second} ")), "{listed}");
    assert_eq!(lines[2], "2 runs and the logs of 0 more would be removed");
    assert_eq!(prune(&["--dry-run"]), listed, "a dry run removes nothing");
    assert_eq!(prune(&[]), "removed 2 runs and the logs of 0 more\n");
    let store = Store::connect(&url).await.unwrap();
    assert!(store.run(first).await.unwrap().is_none());
    assert!(store.run(newest).await.unwrap().is_some());
    assert_eq!(
        prune(&["--dry-run"]),
        "0 runs and the logs of 0 more would be removed\n"
    );
}

/// Schedules on a clock the test drives: nothing before the first slot after the schedule
/// was seen, one run per slot, one run for many missed slots, and of two replicas firing
/// at once, one claims the slot.
async fn schedules_fire_once_per_slot(backend: Backend) {
    use gantry::pipeline::schedule::{next_slot, parse};
    use gantry::runner::scheduler::fire_due;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(backend, dir.path()).await;
    let store = Store::connect(&url).await.unwrap();
    let replica = Store::connect(&url).await.unwrap();
    let pushed = queue_one(&store).await;
    let repo = store.run(pushed).await.unwrap().unwrap().repo;
    let entry = gantry::store::ScheduleEntry {
        pipeline: "nightly".into(),
        cron: "0 3 * * *".into(),
        branch: "master".into(),
    };
    store
        .replace_schedules(Forge::Github, &repo, std::slice::from_ref(&entry))
        .await
        .unwrap();
    let since = store.schedules(None).await.unwrap()[0].since;
    let cron = parse(&entry.cron).unwrap();
    let first = next_slot(&cron, since).unwrap();
    let day = 24 * 60 * 60 * 1000;
    let any = |_: &gantry::webhook::Event| true;

    assert!(
        fire_due(&store, first - 1000, any)
            .await
            .unwrap()
            .is_empty()
    );
    let started = fire_due(&store, first, any).await.unwrap();
    assert_eq!(started.len(), 1);
    let run = store.run(started[0]).await.unwrap().unwrap();
    assert_eq!(run.trigger, Trigger::Schedule);
    assert_eq!(run.git_ref, "refs/heads/master");
    match run.event.unwrap().kind {
        gantry::webhook::EventKind::Scheduled(scheduled) => {
            assert_eq!(
                (scheduled.pipeline.as_str(), scheduled.slot),
                ("nightly", first)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        fire_due(&store, first + 1000, any)
            .await
            .unwrap()
            .is_empty()
    );
    // Three nights missed: one run, for the last of them.
    let started = fire_due(&store, first + 3 * day + 1000, any).await.unwrap();
    assert_eq!(started.len(), 1);
    let records = store.schedules(None).await.unwrap();
    assert_eq!(records[0].last_slot, Some(first + 3 * day));
    // Two replicas at once: one run.
    let at = first + 4 * day;
    let (a, b) = tokio::join!(fire_due(&store, at, any), fire_due(&replica, at, any));
    assert_eq!(a.unwrap().len() + b.unwrap().len(), 1);
    // A schedule the default branch no longer has fires no more.
    store
        .replace_schedules(Forge::Github, &repo, &[])
        .await
        .unwrap();
    assert!(
        fire_due(&store, first + 5 * day, any)
            .await
            .unwrap()
            .is_empty()
    );
}
on_both_backends!(schedules, schedules_fire_once_per_slot);

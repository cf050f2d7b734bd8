//! The states of a run, of its pipelines and stages, of a commit status, and of the
//! delivery of a status to its forge.

named_enum! {
    /// Where a run is: waiting, being run, or ended (and how).
    pub enum RunState as "run state" {
        /// Waiting for someone with write permission to approve it: nothing of it runs.
        Blocked = "blocked",
        Queued = "queued",
        Running = "running",
        Success = "success",
        Failure = "failure",
        Error = "error",
        Canceled = "canceled",
        Skipped = "skipped",
        /// Refused by someone with write permission while it was blocked; it never ran.
        Declined = "declined",
    }
}

impl RunState {
    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            RunState::Blocked | RunState::Queued | RunState::Running
        )
    }
}

named_enum! {
    /// What someone with write permission decided about a run that waited for approval.
    pub enum Decision as "approval decision" {
        Approved = "approved",
        Declined = "declined",
    }
}

named_enum! {
    /// A stage's state; a pipeline's state is the worst of its stages'.
    pub enum StageState as "stage state" {
        Pending = "pending",
        Running = "running",
        Success = "success",
        Failure = "failure",
        /// Not run: excluded by `when`, or a stage it needs did not succeed.
        Skipped = "skipped",
        Canceled = "canceled",
        /// Gantry could not run it (the engine failed, an image could not be pulled).
        Error = "error",
    }
}

impl StageState {
    /// Whether stages that need this one may run after it.
    pub fn is_done_ok(self) -> bool {
        matches!(self, StageState::Success | StageState::Skipped)
    }
}

named_enum! {
    /// A pipeline's state as a forge shows it; each forge maps it to its own states.
    pub enum StatusState as "status state" {
        Pending = "pending",
        Running = "running",
        Success = "success",
        Failure = "failure",
        Error = "error",
        Canceled = "canceled",
    }
}

impl StatusState {
    /// Whether the state ends the pipeline's story on the forge.
    pub fn is_final(self) -> bool {
        !matches!(self, StatusState::Pending | StatusState::Running)
    }
}

named_enum! {
    /// Where a queued status update is on its way to the forge.
    pub enum DeliveryState as "delivery state" {
        /// Queued, or waiting for its next attempt.
        Waiting = "waiting",
        /// Claimed by a reporter that is sending it.
        Sending = "sending",
        Delivered = "delivered",
        /// Not sent: the forge already shows this state for the commit, ref and context, and
        /// would refuse to be told it again (GitLab).
        Merged = "merged",
        /// Replaced by a newer update of the same commit and context before it was sent.
        Superseded = "superseded",
        /// Given up: refused by the forge, or not delivered within the delivery window.
        Failed = "failed",
    }
}

named_enum! {
    /// Where a runner process is: taking runs, finishing what it has before it exits, or
    /// silent past its lease (its runs are taken back).
    pub enum RunnerState as "runner state" {
        Active = "active",
        Draining = "draining",
        Lost = "lost",
    }
}

named_enum! {
    /// How a pipeline's cache was restored.
    pub enum CacheOutcome as "cache outcome" {
        /// An entry for its own key.
        Hit = "hit",
        /// An entry for a `restore_keys` prefix.
        Restored = "restored",
        Miss = "miss",
    }
}

named_enum! {
    /// Who reports what a GitOps controller applied.
    pub enum DeploySource as "deploy source" {
        Flux = "flux",
        Argocd = "argocd",
    }
}

named_enum! {
    /// What a controller reported of a revision.
    pub enum DeployOutcome as "deploy outcome" {
        /// Applied and healthy.
        Applied = "applied",
        /// It could not be applied, or came up unhealthy.
        Failed = "failed",
        /// Under way: nothing to tell the commit yet.
        Progressing = "progressing",
    }
}

named_enum! {
    /// Where one bump stands in one environment.
    pub enum DeployState as "deploy state" {
        /// Pushed; no revision that contains it was applied yet.
        Pending = "pending",
        Success = "success",
        Failure = "failure",
    }
}

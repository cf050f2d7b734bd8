//! The forges Gantry takes webhooks from and reports to.

named_enum! {
    /// A forge, by the name its config section, route and store column use.
    pub enum Forge as "forge" {
        Github = "github",
        Gitlab = "gitlab",
        /// Gitea and its fork Forgejo, which share one webhook format and API.
        Gitea = "gitea",
    }
}

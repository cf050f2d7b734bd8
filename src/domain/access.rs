//! Who may see what: a repo's visibility, a person's permission on it, and what visitors who
//! are not signed in may read.

named_enum! {
    /// Who can see a repo on its forge. Unknown counts as private.
    pub enum Visibility as "visibility" {
        Public = "public",
        /// Every signed-in user of the forge (GitHub Enterprise, GitLab).
        Internal = "internal",
        Private = "private",
    }
}

impl Visibility {
    /// GitLab's `visibility_level`: 0 private, 10 internal, 20 public.
    pub fn from_gitlab_level(level: i64) -> Self {
        match level {
            20 => Visibility::Public,
            10 => Visibility::Internal,
            _ => Visibility::Private,
        }
    }
}

named_enum! {
    /// What a person may do with a repo on its forge, weakest first, so that `>=` compares.
    pub enum Permission as "permission" {
        None = "none",
        /// Read (pull) the code.
        Read = "read",
        /// Push: act on the repo's runs.
        Write = "write",
        Admin = "admin",
    }
}

named_enum! {
    /// What visitors who are not signed in may read.
    pub enum AnonymousAccess as "anonymous access" {
        /// Runs of public repos.
        Public = "public",
        None = "none",
        /// Everything: only for a server on a private network.
        All = "all",
    }
}

named_enum! {
    /// Which runs of a repo wait for someone with write permission before anything of them
    /// runs (`[[repos]] approval`); senders in `trusted_users` never wait.
    pub enum ApprovalPolicy as "approval policy" {
        None = "none",
        /// Pull requests whose head lives in another repository.
        Forks = "forks",
        /// Every pull request.
        PullRequests = "pull_requests",
        /// Every run: pushes and tags too.
        All = "all",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_compare_weakest_first() {
        assert!(Permission::Admin >= Permission::Write);
        assert!(Permission::Write > Permission::Read);
        assert!(Permission::Read > Permission::None);
    }

    #[test]
    fn gitlab_levels_map_and_unknown_is_private() {
        assert_eq!(Visibility::from_gitlab_level(20), Visibility::Public);
        assert_eq!(Visibility::from_gitlab_level(10), Visibility::Internal);
        assert_eq!(Visibility::from_gitlab_level(0), Visibility::Private);
        assert_eq!(Visibility::from_gitlab_level(7), Visibility::Private);
    }
}

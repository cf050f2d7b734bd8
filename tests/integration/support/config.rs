//! Gantry configs for the tests, built key by key and written as the TOML file users write,
//! so every test server reads its settings the way production does.

use std::path::{Path, PathBuf};

use gantry::config::Settings;
use gantry::domain::Forge;

/// A config file being built: sections with their keys, then `[[repos]]` and other tables.
#[derive(Debug, Clone, Default)]
pub struct TestConfig {
    /// (section, [(key, TOML value)]) in the order first set.
    sections: Vec<(String, Vec<(String, String)>)>,
    /// Whole tables written after the sections (`[[repos]]` entries, `[registries."…"]`).
    tables: Vec<String>,
}

/// `text` as a TOML string.
pub fn quoted(text: &str) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::to_string(text).unwrap()
}

/// The URL of a SQLite store in `dir`.
pub fn sqlite_in(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("gantry.db").display())
}

impl TestConfig {
    /// A server on a free loopback port with its store at `store_url` (see [`sqlite_in`]).
    /// Visitors read everything, as on a private network: only the sign-in tests unset
    /// `auth.anonymous`.
    pub fn new(store_url: &str) -> Self {
        Self::default()
            .set("server", "listen", &quoted("127.0.0.1:0"))
            .set("store", "url", &quoted(store_url))
            .text("auth", "anonymous", "all")
    }

    /// Sets `key` of `[section]` to `value`, written as TOML (`"text"`, `3`, `["a"]`).
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Self {
        let index = match self.sections.iter().position(|(name, _)| name == section) {
            Some(index) => index,
            None => {
                self.sections.push((section.to_owned(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let keys = &mut self.sections[index].1;
        keys.retain(|(name, _)| name != key);
        keys.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Removes `key` from `[section]`.
    pub fn unset(mut self, section: &str, key: &str) -> Self {
        for (name, keys) in &mut self.sections {
            if name == section {
                keys.retain(|(name, _)| name != key);
            }
        }
        self
    }

    /// Sets a string value.
    pub fn text(self, section: &str, key: &str, value: &str) -> Self {
        self.set(section, key, &quoted(value))
    }

    /// `forge`'s webhook secret (GitLab: its token), and, with `api`, the API token and root.
    pub fn forge(self, forge: Forge, secret: &str, api: Option<(&str, &str)>) -> Self {
        let section = forge.as_str();
        let key = match forge {
            Forge::Gitlab => "webhook_tokens",
            Forge::Github | Forge::Gitea => "webhook_secrets",
        };
        let config = self.set(section, key, &format!("[{}]", quoted(secret)));
        match api {
            Some((token, url)) => config
                .text(section, "token", token)
                .text(section, "api_url", url),
            None => config,
        }
    }

    /// A `[[repos]]` entry; `extra` lines are TOML as written (`clone_url = "…"`).
    pub fn repo(mut self, forge: Forge, name: &str, extra: &[&str]) -> Self {
        let mut table = format!(
            "[[repos]]\nname = {}\nforge = {}\n",
            quoted(name),
            quoted(forge.as_str())
        );
        for line in extra {
            table.push_str(line);
            table.push('\n');
        }
        self.tables.push(table);
        self
    }

    /// A whole table as written, for what has no builder (`[registries."host"]`).
    pub fn table(mut self, text: &str) -> Self {
        self.tables.push(text.trim_end().to_owned() + "\n");
        self
    }

    pub fn toml(&self) -> String {
        let mut text = String::new();
        for (section, keys) in &self.sections {
            text.push_str(&format!("[{section}]\n"));
            for (key, value) in keys {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        for table in &self.tables {
            text.push_str(table);
        }
        text
    }

    /// Writes `gantry.toml` into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("gantry.toml");
        std::fs::write(&path, self.toml()).expect("writing the test config");
        path
    }

    /// The settings Gantry reads from this config (written into `dir`).
    pub fn settings(&self, dir: &Path) -> Settings {
        Settings::load_with_env(Some(&self.write(dir)), []).expect("the test config is valid")
    }
}

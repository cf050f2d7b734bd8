//! A config repo reached over SSH: a real `sshd` on a loopback port, with its own host key
//! and one authorised key, so bumps exercise the key and known-hosts path for real.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry::domain::describe;
use gantry::gitops::bump::{Author, Bumper};

use crate::gitops::bumps::request;
use crate::support::git::Repo;
use gantry::git::GitAuth;

const FILE: &str = "kustomization.yaml";

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// An sshd that lets in only the key at `client.pub`.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("host"));
        keygen(&dir.path().join("client"));
        std::fs::copy(
            dir.path().join("client.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             StrictModes no\nUsePAM no\nPidFile none\n",
            host = dir.path().join("host").display(),
            keys = dir.path().join("authorized_keys").display(),
        );
        std::fs::write(dir.path().join("sshd_config"), config).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd runs (scripts/test-services.sh installs openssh-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, dir }
    }

    fn client_key(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// A known-hosts file holding the server's real host key.
    fn known_hosts(&self) -> PathBuf {
        let key = std::fs::read_to_string(self.dir.path().join("host.pub")).unwrap();
        let path = self.dir.path().join("known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {key}", self.port)).unwrap();
        path
    }

    fn url(&self, bare: &Path) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!("ssh://{user}@127.0.0.1:{}{}", self.port, bare.display())
    }
}

fn bumper(auth: GitAuth) -> Bumper {
    Bumper::new(Author::parse("Gantry <g@example.com>").unwrap(), auth)
}

#[tokio::test]
async fn bumps_over_ssh_use_the_key_and_check_the_host() {
    let repo = Repo::new(&[(
        FILE,
        "images:\n  - name: registry.example.com/acme/web\n    newTag: v1\n",
    )]);
    let sshd = Sshd::start();
    let mut bump = request(&repo, FILE, "registry.example.com/acme/web", "v2");
    bump.repo.url = sshd.url(&repo.bare);
    let outcome = bumper(GitAuth::SshKey {
        key: sshd.client_key(),
        known_hosts: Some(sshd.known_hosts()),
    })
    .bump(bump)
    .await
    .unwrap();
    assert_eq!(outcome.bumped.commit.as_deref(), Some(repo.head().as_str()));
    assert!(repo.file(FILE).contains("newTag: v2"));
}

#[tokio::test]
async fn an_unknown_key_or_host_is_refused_and_nothing_is_pushed() {
    let repo = Repo::new(&[(
        FILE,
        "images:\n  - name: registry.example.com/acme/web\n    newTag: v1\n",
    )]);
    let before = repo.head();
    let sshd = Sshd::start();
    let stranger = tempfile::tempdir().unwrap();
    keygen(&stranger.path().join("key"));
    let mut bump = request(&repo, FILE, "registry.example.com/acme/web", "v2");
    bump.repo.url = sshd.url(&repo.bare);
    let err = bumper(GitAuth::SshKey {
        key: stranger.path().join("key"),
        known_hosts: Some(sshd.known_hosts()),
    })
    .bump(bump.clone())
    .await
    .unwrap_err();
    let err = describe(&err);
    assert!(err.contains("Permission denied"), "{err}");
    // The right key, but a known-hosts file that names another host key.
    let other_hosts = stranger.path().join("known_hosts");
    let other_key = std::fs::read_to_string(stranger.path().join("key.pub")).unwrap();
    std::fs::write(
        &other_hosts,
        format!("[127.0.0.1]:{} {other_key}", sshd.port),
    )
    .unwrap();
    let err = bumper(GitAuth::SshKey {
        key: sshd.client_key(),
        known_hosts: Some(other_hosts),
    })
    .bump(bump)
    .await
    .unwrap_err();
    let err = describe(&err);
    assert!(err.contains("Host key verification failed"), "{err}");
    assert_eq!(repo.head(), before);
}

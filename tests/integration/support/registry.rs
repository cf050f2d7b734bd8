//! A real OCI registry for tests: Debian's docker-registry with htpasswd auth, started on a
//! free loopback port. Shared by the runner and server tests (`#[path]` modules).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "ci";
pub const PASSWORD: &str = "s3cret-pw";

/// A docker-registry process with htpasswd auth on a free port.
pub struct Registry {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Self {
        gantry::forge::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .unwrap();
        assert!(
            htpasswd.status.success(),
            "htpasswd (apache2-utils) is needed"
        );
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\nhttp:\n  addr: 127.0.0.1:{port}\n\
             auth:\n  htpasswd:\n    realm: gantry-test\n    path: {root}/htpasswd\n",
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs");
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            host,
            _dir: dir,
        }
    }

    /// The digest the registry serves for `name:tag`.
    pub async fn manifest_digest(&self, name: &str, tag: &str) -> String {
        let response = reqwest::Client::new()
            .head(format!("http://{}/v2/{name}/manifests/{tag}", self.host))
            .basic_auth(USER, Some(PASSWORD))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            200,
            "{name}:{tag} is not in the registry"
        );
        response.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

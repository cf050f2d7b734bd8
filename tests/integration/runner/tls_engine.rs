//! A Docker engine over TLS (`[runner] docker_tls`): a second `dockerd` started by the test
//! on a loopback port with `--tlsverify` and certificates made with `openssl`. The right
//! certificates reach it; a wrong CA, a client certificate it does not trust and a missing
//! file are refused at once, with the engine named.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry::config::DockerTls;
use gantry::domain::describe;
use gantry::runner::Engine;

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`{name}-ca.pem`) and a certificate it signs for `subject` with `extensions`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &format!("{name}-ca-key.pem"),
            "-out",
            &format!("{name}-ca.pem"),
        ],
    );
}

fn signed(dir: &Path, ca: &str, name: &str, subject: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// The second engine, stopped when dropped.
struct TlsEngine {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
    bridge: String,
}

/// Runs `ip` with `args`.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {args:?}");
}

impl TlsEngine {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        ca(path, "good");
        ca(path, "other");
        signed(
            path,
            "good",
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        signed(
            path,
            "good",
            "client",
            "/CN=gantry",
            "extendedKeyUsage=clientAuth\n",
        );
        signed(
            path,
            "other",
            "stranger",
            "/CN=stranger",
            "extendedKeyUsage=clientAuth\n",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("tcp://127.0.0.1:{port}");
        // A bridge of its own: a second daemon given `--bridge=none`, or the default, would
        // take down or share the first daemon's `docker0`.
        let bridge = format!("gtls{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", "10.213.0.1/24", "dev", &bridge]);
        let child = Command::new("dockerd")
            .args([
                "--tlsverify",
                "--tlscacert",
                "good-ca.pem",
                "--tlscert",
                "server.pem",
            ])
            .args(["--tlskey", "server-key.pem", "-H", &host])
            .arg(format!("--data-root={}", path.join("data").display()))
            .arg(format!("--exec-root={}", path.join("exec").display()))
            .arg(format!("--pidfile={}", path.join("docker.pid").display()))
            .arg(format!("--bridge={bridge}"))
            .args(["--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .args([
                "--containerd-namespace=gantry-tls-test",
                "--containerd-plugins-namespace=gantry-tls-test-plugins",
            ])
            .current_dir(path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path.join("dockerd.log")).unwrap())
            .spawn()
            .expect("dockerd starts");
        Self {
            child,
            host,
            dir,
            bridge,
        }
    }

    fn tls(&self, ca: &str, client: &str) -> DockerTls {
        let at = |name: String| -> PathBuf { self.dir.path().join(name) };
        DockerTls {
            ca: at(format!("{ca}-ca.pem")),
            cert: at(format!("{client}.pem")),
            key: at(format!("{client}-key.pem")),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for TlsEngine {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

#[tokio::test]
async fn an_engine_over_tls_is_reached_with_its_certificates_and_refused_without() {
    let daemon = TlsEngine::start();
    let engine = Engine::connect(&daemon.host, Some(&daemon.tls("good", "client"))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(err) = engine.ping().await {
        assert!(
            Instant::now() < deadline,
            "the TLS engine never answered: {}\n{}",
            describe(&err),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let version = engine.docker().version().await.unwrap();
    assert!(version.version.is_some());

    for (ca, client, what) in [
        (
            "other",
            "client",
            "a CA that did not sign the engine's certificate",
        ),
        (
            "good",
            "stranger",
            "a client certificate the engine does not trust",
        ),
    ] {
        let engine = Engine::connect(&daemon.host, Some(&daemon.tls(ca, client))).unwrap();
        let started = Instant::now();
        let err = engine.ping().await.expect_err(what);
        let message = describe(&err);
        assert!(
            message.contains(&daemon.host),
            "{what}: the error names the engine: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: refused at once, not after {:?}",
            started.elapsed()
        );
    }

    let mut missing = daemon.tls("good", "client");
    missing.cert = daemon.dir.path().join("absent.pem");
    let err = Engine::connect(&daemon.host, Some(&missing))
        .err()
        .expect("a missing certificate file is refused");
    let message = describe(&err);
    assert!(
        message.contains(&daemon.host) && message.contains("absent.pem"),
        "{message}"
    );
}

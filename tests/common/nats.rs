//! A real NATS JetStream cluster of three `nats-server` processes (Debian's
//! package) on loopback, each on ports it chose itself (read back from its
//! ports file), optionally with mutual TLS and the users of
//! packaging/examples/nats-logseal-authorization.conf.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Passwords of the example's users, as the servers' environment gives them.
pub const COLLECTOR_PASSWORD: &str = "collector-secret-1";
pub const READER_PASSWORD: &str = "reader-secret-2";
pub const ADMIN_PASSWORD: &str = "admin-secret-3";

/// TLS files for the servers (a certificate for 127.0.0.1) and their CA.
pub struct NatsTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Option<Child>>,
    /// Client URLs (`nats://127.0.0.1:PORT`), by node.
    pub clients: Vec<String>,
    /// What the first node's route list names so that it starts clustered
    /// (JetStream wants a route): a listener of this test, never answered.
    /// The others route to the first node and learn each other from it.
    _seed_placeholder: TcpListener,
    pub auth: bool,
}

fn ports(file_dir: &Path) -> Option<serde_json::Value> {
    let e = std::fs::read_dir(file_dir).ok()?.flatten().next()?;
    let text = std::fs::read_to_string(e.path()).ok()?;
    serde_json::from_str(&text).ok()
}

impl NatsCluster {
    /// Starts three nodes; with `tls`, clients must present a certificate
    /// of its CA and log in as one of the example's users.
    pub fn start(dir: &Path, tls: Option<&NatsTls>) -> NatsCluster {
        let placeholder = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = NatsCluster {
            dir: dir.to_path_buf(),
            nodes: Vec::new(),
            clients: Vec::new(),
            _seed_placeholder: placeholder,
            auth: tls.is_some(),
        };
        let first_route = format!("nats-route://{}", c._seed_placeholder.local_addr().unwrap());
        let seed = c.start_node(1, &first_route, tls);
        for i in 2..=3 {
            c.start_node(i, &seed, tls);
        }
        c.wait_ready();
        c
    }

    /// Starts node `i` routing to `route`; returns its own route URL.
    fn start_node(&mut self, i: usize, route: &str, tls: Option<&NatsTls>) -> String {
        let pdir = self.dir.join(format!("ports{i}"));
        std::fs::create_dir_all(&pdir).unwrap();
        let mut conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:-1\nports_file_dir: \"{}\"\n\
             jetstream {{ store_dir: \"{}\" }}\n\
             cluster {{ name: logseal-test, listen: 127.0.0.1:-1, routes: [\"{route}\"] }}\n",
            pdir.display(),
            self.dir.join(format!("data{i}")).display(),
        );
        if let Some(t) = tls {
            // As the example says: beside the server's configuration.
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("packaging/examples/nats-logseal-authorization.conf"),
                self.dir.join("nats-logseal-authorization.conf"),
            )
            .unwrap();
            conf.push_str(&format!(
                "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true, timeout: 5 }}\n\
                 include \"nats-logseal-authorization.conf\"\n",
                t.cert.display(),
                t.key.display(),
                t.ca.display(),
            ));
        }
        let path = self.dir.join(format!("n{i}.conf"));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        let log = std::fs::File::create(self.dir.join(format!("n{i}.log"))).unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&path)
            .env("LOGSEAL_NATS_COLLECTOR_PASSWORD", COLLECTOR_PASSWORD)
            .env("LOGSEAL_NATS_READER_PASSWORD", READER_PASSWORD)
            .env("LOGSEAL_NATS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server (Debian package nats-server) is needed");
        self.nodes.push(Some(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        let p = loop {
            if let Some(p) = ports(&pdir) {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server n{i} did not start: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.clients
            .push(p["nats"][0].as_str().unwrap().to_string());
        p["cluster"][0]
            .as_str()
            .unwrap()
            .replace("nats://", "nats-route://")
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default()
    }

    /// A cluster with mutual TLS and the example's users, its certificates
    /// issued by `logseal pki` in `ca_dir` (a CA made there already): the
    /// servers' for 127.0.0.1, and a client certificate for the admin.
    pub fn start_secure(dir: &Path, ca_dir: &Path) -> NatsCluster {
        use logseal::cmd::pki::{self, Paths, Role};
        let p = Paths {
            dir: ca_dir.to_path_buf(),
        };
        for (name, role) in [
            ("nats-server", Role::Collector),
            ("nats-admin", Role::Agent),
        ] {
            if !p.cert(name).exists() {
                pki::issue(ca_dir, name, role, 365, &["127.0.0.1".into()]).unwrap();
            }
        }
        let t = dir.join("admin-tls");
        std::fs::create_dir_all(&t).unwrap();
        std::fs::copy(ca_dir.join("ca.crt"), t.join("ca.crt")).unwrap();
        std::fs::copy(p.cert("nats-admin"), t.join("admin.crt")).unwrap();
        std::fs::copy(p.key("nats-admin"), t.join("admin.key")).unwrap();
        let tls = NatsTls {
            ca: ca_dir.join("ca.crt"),
            cert: p.cert("nats-server"),
            key: p.key("nats-server"),
        };
        Self::start(dir, Some(&tls))
    }

    /// Waits until JetStream has a meta leader (an account request answers).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let Err(e) = self.client_ok() else {
                return;
            };
            assert!(
                Instant::now() < deadline,
                "the JetStream cluster did not form ({e}): {}",
                self.log(1)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client_ok(&self) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = self
                .admin_options()
                .connect(self.clients.clone())
                .await
                .map_err(|e| format!("connecting: {e}"))?;
            // A stream that does not exist: "not found" comes from the
            // JetStream meta leader, so the cluster has one.
            match async_nats::jetstream::new(client)
                .get_stream("READY-PROBE")
                .await
            {
                Err(e) if e.to_string().contains("10059") => Ok(()),
                Err(e) => Err(format!("stream info: {e}")),
                Ok(_) => Ok(()),
            }
        })
    }

    /// Connect options of the admin user (with the TLS files of `tls_for`).
    pub fn admin_options(&self) -> async_nats::ConnectOptions {
        let mut o = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)));
        if self.auth {
            let t = self.dir.join("admin-tls");
            o = o
                .add_root_certificates(t.join("ca.crt"))
                .add_client_certificate(t.join("admin.crt"), t.join("admin.key"))
                .require_tls(true)
                .user_and_password("admin".into(), ADMIN_PASSWORD.into());
        }
        o
    }

    /// `servers = [...]` for a `[jetstream]` table.
    pub fn servers_toml(&self) -> String {
        let list: Vec<String> = self.clients.iter().map(|c| format!("\"{c}\"")).collect();
        format!("servers = [{}]", list.join(", "))
    }

    /// `HOST:PORT,HOST:PORT,…` of the live nodes, for a `nats://` URL.
    pub fn hostports(&self) -> String {
        self.clients
            .iter()
            .zip(&self.nodes)
            .filter(|(_, n)| n.is_some())
            .map(|(c, _)| c.split("://").last().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `kill -9` of node `i` (1-based).
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for c in self.nodes.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

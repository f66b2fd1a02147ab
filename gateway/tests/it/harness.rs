//! A testnet, a gateway process serving it, and its first (admin) access key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use andromede_testnet::cluster::{CLIENT_FILE, Testnet, UpOptions};

/// An access key as `init` or `key create` printed it.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) id: String,
    pub(crate) secret: String,
}

/// Reads the id and secret out of `init` / `key create` output.
fn parse_key(stdout: &str) -> Key {
    let field = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} in:\n{stdout}"))
    };
    Key {
        id: field("access key id:"),
        secret: field("secret access key:"),
    }
}

/// A running gateway on a 3-node testnet; both stop on drop.
pub(crate) struct Gateway {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) endpoint: String,
    pub(crate) admin: Key,
    config: PathBuf,
    process: Child,
    testnet: Testnet,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The node binary of this source tree, built once per test binary (see
/// `andromede_testnet::process::build_workspace_node`).
fn node_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| andromede_testnet::process::build_workspace_node().unwrap())
        .clone()
}

fn gateway_binary() -> &'static str {
    env!("CARGO_BIN_EXE_andromede-gateway")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How to start a gateway.
#[derive(Debug, Default)]
pub(crate) struct StartOptions {
    /// Serve HTTPS with a certificate made for 127.0.0.1 and localhost (its PEM is
    /// `ca.pem` in the gateway's directory).
    pub(crate) tls: bool,
    /// Root domains for virtual-hosted-style requests.
    pub(crate) domains: Vec<String>,
}

impl Gateway {
    pub(crate) async fn start() -> Self {
        Self::start_with(StartOptions::default()).await
    }

    pub(crate) async fn start_with(start: StartOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = UpOptions {
            nodes: 3,
            zones: 3,
            k: 2,
            m: 1,
            membership_refresh: Duration::from_secs(1),
            node_bin: Some(node_binary()),
            ..UpOptions::default()
        };
        let testnet = Testnet::up(&dir.path().join("testnet"), &options)
            .await
            .unwrap()
            .kill_on_drop();
        let client_config = dir.path().join("testnet").join(CLIENT_FILE);
        let config = dir.path().join("gateway.toml");
        let port = free_port();
        let mut init = Command::new(gateway_binary());
        init.args(["init", "--client"])
            .arg(&client_config)
            .arg("--out")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        for domain in &start.domains {
            init.args(["--domain", domain]);
        }
        if start.tls {
            let certified = rcgen::generate_simple_self_signed(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ])
            .unwrap();
            let certificate = dir.path().join("ca.pem");
            let key = dir.path().join("key.pem");
            std::fs::write(&certificate, certified.cert.pem()).unwrap();
            std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
            init.arg("--tls-certificate")
                .arg(&certificate)
                .arg("--tls-key")
                .arg(&key);
        }
        let init = init.output().unwrap();
        let stdout = String::from_utf8_lossy(&init.stdout).into_owned();
        assert!(
            init.status.success(),
            "init failed: {stdout}{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let admin = parse_key(&stdout);
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let process = Command::new(gateway_binary())
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let scheme = if start.tls { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{port}");
        let gateway = Self {
            dir,
            endpoint,
            admin,
            config,
            process,
            testnet,
        };
        gateway.wait_listening(port).await;
        gateway
    }

    async fn wait_listening(&self, port: u16) {
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway never listened:\n{}", self.log());
    }

    /// A second gateway on the same cluster, with a client identity of its own (every
    /// gateway needs one) and the same master key: it serves the same keys and buckets.
    pub(crate) async fn second(&self) -> Second {
        let client_config = self
            .testnet
            .new_client_file("gateway-2", "gateway-2", &["*:all"])
            .unwrap();
        let port = free_port();
        let config = self.dir.path().join("gateway-2.toml");
        andromede_gateway::config::GatewayFile {
            client_config,
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            domains: Vec::new(),
            region: "us-east-1".into(),
            multipart_expiry: andromede_client::api::MULTIPART_EXPIRY_DEFAULT,
            tls_certificate: None,
            tls_key: None,
        }
        .create(&config)
        .unwrap();
        let log = std::fs::File::create(self.dir.path().join("gateway-2.log")).unwrap();
        let process = Command::new(gateway_binary())
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let second = Second {
            endpoint: format!("http://127.0.0.1:{port}"),
            process,
        };
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return second;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the second gateway never listened");
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// `andromede-gateway key ARGS…` through the binary; its stdout.
    pub(crate) fn key_command(&self, args: &[&str]) -> (bool, String) {
        key_command_at(&self.config, args)
    }

    /// `andromede-gateway init` for a client of this cluster certified with `grants`
    /// (`BUCKET:RIGHTS`), writing `DIR/STEM.toml`; whether it succeeded, its output and
    /// the config's path.
    pub(crate) fn init_certified(&self, stem: &str, grants: &[&str]) -> (bool, String, PathBuf) {
        let client = self.testnet.new_client_file(stem, stem, grants).unwrap();
        let config = self.dir.path().join(format!("{stem}-gateway.toml"));
        let out = Command::new(gateway_binary())
            .args(["init", "--client"])
            .arg(&client)
            .arg("--out")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .output()
            .unwrap();
        (out.status.success(), output_text(&out), config)
    }
}

/// `andromede-gateway key --config CONFIG ARGS…`: whether it succeeded, and its output.
pub(crate) fn key_command_at(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(gateway_binary())
        .arg("key")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), output_text(&out))
}

/// A command's standard output, then its standard error.
fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Gateway {
    /// Creates a key through the binary.
    pub(crate) fn create_key(&self, name: &str, grants: &[&str]) -> Key {
        let mut args = vec!["create", name];
        for grant in grants {
            args.push("--grant");
            args.push(grant);
        }
        let (ok, text) = self.key_command(&args);
        assert!(ok, "key create failed: {text}");
        parse_key(&text)
    }

    /// Runs a command with the endpoint and `key` in its environment (as the aws tools
    /// read them); panics with its output unless it succeeds; returns its stdout.
    pub(crate) fn run(&self, key: &Key, command: &mut Command) -> String {
        let out = command
            .env("S3_ENDPOINT", &self.endpoint)
            .env(
                "S3_PORT",
                self.endpoint.rsplit(':').next().unwrap_or_default(),
            )
            // The gateway's own certificate when it serves TLS; none otherwise (a bundle
            // set by the machine makes rclone's S3 client refuse its own transport).
            .env_remove("AWS_CA_BUNDLE")
            .envs(
                Some(self.dir.path().join("ca.pem"))
                    .filter(|ca| ca.exists())
                    .map(|ca| ("AWS_CA_BUNDLE", ca)),
            )
            .env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{command:?} failed:\n{stdout}\n{}\ngateway log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        stdout
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A second gateway process; stops on drop.
pub(crate) struct Second {
    pub(crate) endpoint: String,
    process: Child,
}

impl Drop for Second {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A boto3 script of `tests/s3/`.
pub(crate) fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/s3")
        .join(name)
}

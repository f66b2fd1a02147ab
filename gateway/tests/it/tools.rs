//! The real tools against the gateway.

use std::process::Command;

use crate::harness::{Gateway, StartOptions, key_command_at, script};

/// boto3: buckets, objects, ranges, conditions, metadata, checksums, listings, copies,
/// multi-delete, and the errors (see the script's own assertions).
#[tokio::test(flavor = "multi_thread")]
async fn boto3_operations_and_errors() {
    let gateway = Gateway::start().await;
    let reader = gateway.create_key("reader", &["photos:read"]);
    let out = gateway.run(
        &gateway.admin,
        Command::new("python3")
            .arg(script("operations.py"))
            .env("READER_ID", &reader.id)
            .env("READER_SECRET", &reader.secret),
    );
    assert!(out.contains("operations: all passed"), "{out}");
}

/// The aws CLI: a directory tree synced up, listed, downloaded and compared byte for
/// byte, then removed recursively; a deleted key stops working.
#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_sync_ls_and_rm() {
    let gateway = Gateway::start().await;
    let up = gateway.path().join("up");
    // The largest is above the aws CLI's 8 MiB multipart threshold.
    let files = [
        ("a.txt", 10usize),
        ("dir/b.bin", 300_000),
        ("dir/sub/c.bin", 20_000_000),
        ("dir/sub/ü é.txt", 5),
    ];
    for (name, len) in files {
        let path = up.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..len)
            .map(|i| u8::try_from(i * 31 % 251).unwrap())
            .collect();
        std::fs::write(path, bytes).unwrap();
    }
    let aws = |args: &[&str]| {
        let mut command = Command::new("aws");
        command
            .arg("--endpoint-url")
            .arg(&gateway.endpoint)
            .args(args);
        gateway.run(&gateway.admin, &mut command)
    };
    aws(&["s3", "mb", "s3://tree"]);
    aws(&[
        "s3",
        "sync",
        "--no-progress",
        up.to_str().unwrap(),
        "s3://tree/backup",
    ]);
    let listed = aws(&["s3", "ls", "--recursive", "s3://tree"]);
    for (name, len) in files {
        let line = listed
            .lines()
            .find(|l| l.ends_with(&format!("backup/{name}")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{listed}"));
        assert!(line.contains(&format!(" {len} ")), "{line}");
    }
    let down = gateway.path().join("down");
    aws(&[
        "s3",
        "sync",
        "--no-progress",
        "s3://tree/backup",
        down.to_str().unwrap(),
    ]);
    // A multipart ETag for the large file, the MD5 for the others.
    let head = aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "tree",
        "--key",
        "backup/dir/sub/c.bin",
    ]);
    assert!(head.contains("-3\\\""), "{head}");
    // `aws s3 cp` up and down of the large file alone.
    let single = gateway.path().join("single.bin");
    std::fs::copy(up.join("dir/sub/c.bin"), &single).unwrap();
    aws(&[
        "s3",
        "cp",
        "--no-progress",
        single.to_str().unwrap(),
        "s3://tree/single.bin",
    ]);
    let back = gateway.path().join("single.back");
    aws(&[
        "s3",
        "cp",
        "--no-progress",
        "s3://tree/single.bin",
        back.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&single).unwrap(),
        std::fs::read(&back).unwrap()
    );
    aws(&["s3", "rm", "s3://tree/single.bin"]);
    for (name, _) in files {
        assert_eq!(
            std::fs::read(up.join(name)).unwrap(),
            std::fs::read(down.join(name)).unwrap(),
            "{name} came back different"
        );
    }
    aws(&["s3", "rm", "--recursive", "s3://tree/backup"]);
    assert_eq!(aws(&["s3", "ls", "--recursive", "s3://tree"]).trim(), "");
    aws(&["s3", "rb", "s3://tree"]);

    let (ok, listed) = gateway.key_command(&["list"]);
    assert!(ok && listed.contains(&gateway.admin.id), "{listed}");
    assert!(
        !listed.contains(&gateway.admin.secret),
        "key list shows a secret"
    );
    let (ok, text) = gateway.key_command(&["delete", &gateway.admin.id]);
    assert!(ok, "{text}");
    // The running gateway stops taking it once its cache entry expires (10 s).
    let refused = |out: &std::process::Output| {
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("InvalidAccessKeyId")
    };
    let mut last = None;
    for _ in 0..60 {
        let out = Command::new("aws")
            .args(["--endpoint-url", &gateway.endpoint, "s3", "ls"])
            .env("AWS_ACCESS_KEY_ID", &gateway.admin.id)
            .env("AWS_SECRET_ACCESS_KEY", &gateway.admin.secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap();
        if refused(&out) {
            return;
        }
        last = Some(out);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("a deleted key still works after 30 s: {last:?}");
}

/// HTTPS with the configured certificate, verified by boto3 and the aws CLI; virtual-hosted
/// style requests under a configured root domain beside path-style ones.
#[tokio::test(flavor = "multi_thread")]
async fn tls_and_virtual_hosted_addressing() {
    let gateway = Gateway::start_with(StartOptions {
        tls: true,
        domains: vec!["s3.test".to_owned()],
    })
    .await;
    assert!(gateway.endpoint.starts_with("https://"));
    let out = gateway.run(
        &gateway.admin,
        Command::new("python3").arg(script("addressing.py")),
    );
    assert!(out.contains("addressing: all passed"), "{out}");
    let mut aws = Command::new("aws");
    aws.args(["--endpoint-url", &gateway.endpoint, "s3", "ls"]);
    let listed = gateway.run(&gateway.admin, &mut aws);
    assert!(listed.contains("hosted"), "{listed}");
}

/// A small tree with files of several sizes (one above 8 MiB) and distinct
/// modification times.
fn make_tree(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = [
        ("notes.txt", 12usize),
        ("photos/2026/a.jpg", 700_000),
        ("photos/2026/b.jpg", 9_500_000),
        ("empty", 0),
        ("deep/er/still/c.bin", 70_000),
    ]
    .iter()
    .enumerate()
    .map(|(i, (name, len))| {
        let bytes = (0..*len)
            .map(|j| u8::try_from((j * 7 + i * 13) % 256).unwrap())
            .collect();
        ((*name).to_owned(), bytes)
    })
    .collect();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let mtime = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(1_600_000_000 + 86_400 * i as u64);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    files
}

/// rclone: sync a tree up, `rclone check` it (sizes and MD5s), modification times kept
/// (rclone keeps them in `x-amz-meta-mtime`), and sync it back down byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn rclone_sync_check_and_modification_times() {
    let gateway = Gateway::start().await;
    let up = gateway.path().join("rclone-up");
    let files = make_tree(&up);
    let rclone = |args: &[&str]| {
        let mut command = Command::new("rclone");
        command
            .args(args)
            .env("RCLONE_CONFIG_GW_TYPE", "s3")
            .env("RCLONE_CONFIG_GW_PROVIDER", "Other")
            .env("RCLONE_CONFIG_GW_ENDPOINT", &gateway.endpoint)
            .env("RCLONE_CONFIG_GW_ACCESS_KEY_ID", &gateway.admin.id)
            .env("RCLONE_CONFIG_GW_SECRET_ACCESS_KEY", &gateway.admin.secret)
            .env("RCLONE_CONFIG_GW_REGION", "us-east-1")
            .env("RCLONE_CONFIG", "/dev/null");
        gateway.run(&gateway.admin, &mut command)
    };
    rclone(&["mkdir", "gw:synced"]);
    rclone(&["sync", up.to_str().unwrap(), "gw:synced/tree"]);
    rclone(&["check", up.to_str().unwrap(), "gw:synced/tree"]);
    let listed = rclone(&["lsjson", "-R", "--files-only", "gw:synced/tree"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), files.len(), "{listed:?}");
    for (i, (name, bytes)) in files.iter().enumerate() {
        let entry = listed
            .iter()
            .find(|e| e["Path"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert_eq!(entry["Size"], bytes.len());
        let expected = 1_600_000_000 + 86_400 * i as i64;
        let mod_time = entry["ModTime"].as_str().unwrap();
        let shown =
            time::OffsetDateTime::parse(mod_time, &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert_eq!(shown.unix_timestamp(), expected, "{name}: {mod_time}");
    }
    let down = gateway.path().join("rclone-down");
    rclone(&["sync", "gw:synced/tree", down.to_str().unwrap()]);
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(down.join(name)).unwrap(), bytes, "{name}");
    }
    // A changed file is found by check, and sync puts it right.
    std::fs::write(up.join("notes.txt"), b"changed").unwrap();
    let mut check = Command::new("rclone");
    check
        .args(["check", up.to_str().unwrap(), "gw:synced/tree"])
        .env("RCLONE_CONFIG_GW_TYPE", "s3")
        .env("RCLONE_CONFIG_GW_PROVIDER", "Other")
        .env("RCLONE_CONFIG_GW_ENDPOINT", &gateway.endpoint)
        .env("RCLONE_CONFIG_GW_ACCESS_KEY_ID", &gateway.admin.id)
        .env("RCLONE_CONFIG_GW_SECRET_ACCESS_KEY", &gateway.admin.secret)
        .env("RCLONE_CONFIG", "/dev/null")
        .env_remove("AWS_CA_BUNDLE");
    assert!(
        !check.output().unwrap().status.success(),
        "check missed a change"
    );
    rclone(&["sync", up.to_str().unwrap(), "gw:synced/tree"]);
    rclone(&["check", up.to_str().unwrap(), "gw:synced/tree"]);
}

/// restic: init a repository in a bucket, back a tree up, check the repository (reading
/// all its data), restore, and compare the restored tree byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn restic_backup_check_and_restore() {
    let gateway = Gateway::start().await;
    let source = gateway.path().join("restic-source");
    let files = make_tree(&source);
    let restic = |args: &[&str]| {
        let mut command = Command::new("restic");
        command
            .args(args)
            .env(
                "RESTIC_REPOSITORY",
                format!("s3:{}/backups/restic", gateway.endpoint),
            )
            .env("RESTIC_PASSWORD", "correct horse battery staple")
            .env("RESTIC_CACHE_DIR", gateway.path().join("restic-cache"));
        gateway.run(&gateway.admin, &mut command)
    };
    let mut mb = Command::new("aws");
    mb.args([
        "--endpoint-url",
        &gateway.endpoint,
        "s3",
        "mb",
        "s3://backups",
    ]);
    gateway.run(&gateway.admin, &mut mb);
    restic(&["init"]);
    restic(&["backup", source.to_str().unwrap()]);
    restic(&["check", "--read-data"]);
    let target = gateway.path().join("restic-restored");
    restic(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let restored = target.join(source.strip_prefix("/").unwrap());
    for (name, bytes) in &files {
        assert_eq!(
            &std::fs::read(restored.join(name)).unwrap(),
            bytes,
            "{name}"
        );
    }
    let snapshots = restic(&["snapshots", "--json"]);
    let snapshots: Vec<serde_json::Value> = serde_json::from_str(&snapshots).unwrap();
    assert_eq!(snapshots.len(), 1);
}

/// Two gateways on one cluster: a key made through one works on the other at once, an
/// object written through one reads back through the other with the same ETag, a write
/// condition sees the other gateway's object, and a key deleted through one stops
/// working on the other within the key cache's lifetime.
#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_share_keys_and_buckets() {
    let gateway = Gateway::start().await;
    let second = gateway.second().await;
    let key = gateway.create_key("shared", &["shared:owner"]);
    let out = gateway.run(
        &gateway.admin,
        Command::new("python3")
            .arg(script("two_gateways.py"))
            .env("SECOND_ENDPOINT", &second.endpoint)
            .env("SHARED_ID", &key.id)
            .env("SHARED_SECRET", &key.secret),
    );
    assert!(out.contains("two gateways: all passed"), "{out}");
    let (ok, text) = gateway.key_command(&["delete", &key.id]);
    assert!(ok, "{text}");
    let mut last = None;
    for _ in 0..60 {
        let out = Command::new("aws")
            .args(["--endpoint-url", &second.endpoint, "s3", "ls"])
            .env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap();
        if !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("InvalidAccessKeyId")
        {
            return;
        }
        last = Some(out);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("a key deleted on one gateway still works on the other after 30 s: {last:?}");
}

/// A gateway certified for `photos*` only: its first key gets no more, a key beyond its
/// certificate is refused when created, and a client that owns no bucket cannot set a
/// gateway up (it could not keep its keys).
#[tokio::test(flavor = "multi_thread")]
async fn a_gateways_certificate_bounds_its_access_keys() {
    let gateway = Gateway::start().await;
    let (ok, text, config) = gateway.init_certified("bounded", &["photos*:all"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("grants:            photos*:owner; may create buckets"),
        "{text}"
    );
    let (ok, text) = key_command_at(&config, &["create", "wide", "--grant", "docs:read"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("grant docs:read goes beyond this gateway's certificate (photos*:all)"),
        "{text}"
    );
    let (ok, text) = key_command_at(
        &config,
        &["create", "narrow", "--grant", "photos-2026:write"],
    );
    assert!(ok, "{text}");

    // A gateway must keep its keys: a client that owns no bucket cannot.
    let (ok, text, _) = gateway.init_certified("reader", &["logs:read"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("this client may not read client-private values (it needs the owner right on some bucket)"),
        "{text}"
    );
}

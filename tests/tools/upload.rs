//! `ldawt upload` against a real WebDAV server (rclone) on loopback: layout, skipping,
//! retries through a proxy that fails PUTs, partial failure, credentials and bad input.

use std::path::Path;
use std::time::Duration;

use crate::dav::{DavServer, FailPuts, FaultProxy, PASS, USER, tree};
use crate::util::{bad_input, ok, run_env, stdout};

fn sample_files(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("shards");
    std::fs::create_dir_all(root.join("nested dir")).unwrap();
    for i in 0..6u32 {
        let bytes: Vec<u8> = (0..(50_000 + i * 7_919))
            .map(|b| (b * (i + 3)) as u8)
            .collect();
        std::fs::write(root.join(format!("shard_{i}.tar.gz")), bytes).unwrap();
    }
    std::fs::write(root.join("nested dir/notes ü.txt"), "hello").unwrap();
    root
}

fn upload(
    to: &str,
    paths: &[&Path],
    extra: &[&str],
    password: Option<&str>,
) -> std::process::Output {
    let mut args = vec!["upload", "--no-progress", "--to", to, "--user", USER];
    args.extend_from_slice(extra);
    let owned: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    args.extend(owned.iter().map(String::as_str));
    let envs: Vec<(&str, &str)> = password
        .map(|p| ("LDAWT_PASSWORD", p))
        .into_iter()
        .collect();
    run_env(&args, &envs, Duration::from_secs(120))
}

#[test]
fn upload_mirrors_a_tree_then_skips_what_is_there() {
    let Some(server) = DavServer::start() else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    let root = sample_files(local.path());
    let to = server.url("dav/run 1");
    let text = ok(&upload(&to, &[&root], &[], Some(PASS)));
    assert!(
        text.contains("7 files: 7 uploaded, 0 skipped, 0 failed"),
        "{text}"
    );
    assert_eq!(tree(&server.file("dav/run 1/shards")), tree(&root));
    // Second run: everything already there with the same size.
    let text = ok(&upload(&to, &[&root], &[], Some(PASS)));
    assert!(text.contains("0 uploaded, 7 skipped"), "{text}");
    // A changed size is uploaded again.
    std::fs::write(root.join("shard_2.tar.gz"), b"now different").unwrap();
    let text = ok(&upload(&to, &[&root], &[], Some(PASS)));
    assert!(text.contains("1 uploaded, 6 skipped"), "{text}");
    assert_eq!(
        std::fs::read(server.file("dav/run 1/shards/shard_2.tar.gz")).unwrap(),
        b"now different"
    );
}

#[test]
fn upload_retries_failed_puts_and_reports_what_still_fails() {
    let Some(server) = DavServer::start() else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    let root = sample_files(local.path());
    // Every first PUT of a file gets HTTP 500: all must arrive anyway.
    let flaky = FaultProxy::start(server.port, FailPuts::FirstOfEachPath);
    let text = ok(&upload(
        &flaky.url("flaky"),
        &[&root],
        &["--concurrency", "3"],
        Some(PASS),
    ));
    assert!(text.contains("7 uploaded"), "{text}");
    assert_eq!(flaky.injected.load(std::sync::atomic::Ordering::SeqCst), 7);
    assert_eq!(tree(&server.file("flaky/shards")), tree(&root));
    // One file always fails: exit 1, it is named, the others are there.
    let broken = FaultProxy::start(server.port, FailPuts::Always("shard_4".into()));
    let out = upload(
        &broken.url("broken"),
        &[&root],
        &["--attempts", "2"],
        Some(PASS),
    );
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        crate::util::stderr(&out)
    );
    assert!(
        text.contains("FAILED") && text.contains("shard_4.tar.gz") && text.contains("HTTP 500"),
        "{text}"
    );
    assert!(text.contains("6 uploaded, 0 skipped, 1 failed"), "{text}");
    assert_eq!(
        broken.injected.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "2 attempts"
    );
    assert!(!server.file("broken/shards/shard_4.tar.gz").exists());
    assert!(server.file("broken/shards/shard_5.tar.gz").exists());
}

#[test]
fn upload_takes_credentials_from_netrc() {
    let Some(server) = DavServer::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".netrc"),
        format!("machine 127.0.0.1 login {USER} password {PASS}\n"),
    )
    .unwrap();
    let file = home.path().join("one.bin");
    std::fs::write(&file, vec![7u8; 1234]).unwrap();
    let to = server.url("n");
    let out = run_env(
        &[
            "upload",
            "--no-progress",
            "--to",
            &to,
            file.to_str().unwrap(),
        ],
        &[("HOME", home.path().to_str().unwrap())],
        Duration::from_secs(60),
    );
    assert!(ok(&out).contains("1 uploaded"));
    assert_eq!(std::fs::read(server.file("n/one.bin")).unwrap().len(), 1234);
}

#[test]
fn upload_refuses_bad_input_with_exit_2() {
    let Some(server) = DavServer::start() else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("a.bin");
    std::fs::write(&file, b"abc").unwrap();
    let to = server.url("x");
    let err = bad_input(
        &upload(&to, &[&file], &[], Some("wrong")),
        &["rejected the credentials", "401"],
    );
    assert!(
        !err.contains("wrong"),
        "the password must never be printed: {err}"
    );
    let dead = format!("http://127.0.0.1:{}/x", crate::util::free_port());
    bad_input(
        &upload(&dead, &[&file], &[], Some(PASS)),
        &["cannot reach", &dead],
    );
    bad_input(
        &upload(&to, &[&local.path().join("missing.bin")], &[], Some(PASS)),
        &["missing.bin"],
    );
    let with_pass = format!("http://{USER}:{PASS}@127.0.0.1:{}/x", server.port);
    let err = bad_input(
        &upload(&with_pass, &[&file], &[], None),
        &["credentials do not belong"],
    );
    assert!(!err.contains(PASS), "{err}");
    bad_input(
        &upload("ftp://127.0.0.1/x", &[&file], &[], Some(PASS)),
        &["ftp://127.0.0.1/x"],
    );
    // A plain HTTP server (the image fixture), not WebDAV: refused before anything is sent.
    let fx = crate::common::fixture();
    bad_input(
        &upload(&fx.url("/dav"), &[&file], &[], Some(PASS)),
        &["not 207 Multi-Status"],
    );
    assert!(
        !server.file("x").exists(),
        "nothing created by refused runs"
    );
}

#[test]
fn upload_file_library_call_creates_parents_then_skips() {
    // The entry point `ldawt node --upload-to` uses for each verified shard archive.
    use ldawt::webdav::{Credentials, FileOutcome, RetryPolicy, WebDavClient, upload_file};
    let Some(server) = DavServer::start() else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    let archive = local.path().join("shard_00007.tar.gz");
    std::fs::write(&archive, vec![9u8; 70_000]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let creds = Credentials {
        user: USER.into(),
        password: PASS.into(),
    };
    let client = WebDavClient::new(Some(creds), RetryPolicy::default()).unwrap();
    let dir = reqwest::Url::parse(&server.url("deep/er/run 7/")).unwrap();
    let sent = std::sync::atomic::AtomicU64::new(0);
    let first = rt
        .block_on(upload_file(&client, &archive, &dir, true, &sent))
        .unwrap();
    assert_eq!(first, FileOutcome::Uploaded(70_000));
    assert_eq!(sent.load(std::sync::atomic::Ordering::Relaxed), 70_000);
    assert_eq!(
        std::fs::read(server.file("deep/er/run 7/shard_00007.tar.gz")).unwrap(),
        vec![9u8; 70_000]
    );
    let again = rt
        .block_on(upload_file(&client, &archive, &dir, true, &sent))
        .unwrap();
    assert_eq!(again, FileOutcome::Skipped);
    // Wrong password: a clear Unauthorized error, flagged as bad input.
    let wrong = WebDavClient::new(
        Some(Credentials {
            user: USER.into(),
            password: "nope".into(),
        }),
        RetryPolicy::default(),
    )
    .unwrap();
    let err = rt
        .block_on(upload_file(&wrong, &archive, &dir, true, &sent))
        .unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("401"),
        "{err}"
    );
}

#[test]
fn upload_and_compare_leave_hidden_entries_out_unless_asked() {
    let Some(server) = DavServer::start() else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    // A seeder's --out: archives plus its private state and a temp folder.
    let root = local.path().join("results");
    std::fs::create_dir_all(root.join(".ldawt")).unwrap();
    std::fs::create_dir_all(root.join(".incoming/peer")).unwrap();
    std::fs::write(root.join(".ldawt/identity.key"), b"private key").unwrap();
    std::fs::write(root.join(".incoming/peer/x.part"), b"partial").unwrap();
    std::fs::write(root.join("data-00000.tar.gz"), vec![7u8; 5000]).unwrap();
    std::fs::write(root.join("overview.json"), b"{}").unwrap();
    let to = server.url("run");
    let out = upload(&to, &[&root], &[], Some(PASS));
    let text = ok(&out);
    assert!(
        text.contains("2 files: 2 uploaded, 0 skipped, 0 failed"),
        "{text}"
    );
    let err = crate::util::stderr(&out);
    assert!(
        err.contains("left out 2 hidden entries") && err.contains("--include-hidden"),
        "{err}"
    );
    let remote = tree(&server.file("run/results"));
    let names: Vec<&str> = remote.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["data-00000.tar.gz", "overview.json"]);
    assert!(
        !server.file("run/results/.ldawt").exists(),
        "the key stays home"
    );

    // compare leaves the local hidden entries out too: the sides match.
    let envs = [("LDAWT_PASSWORD", PASS)];
    let url = server.url("run/results");
    let out = run_env(
        &["compare", root.to_str().unwrap(), &url, "--user", USER],
        &envs,
        Duration::from_secs(60),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("left out 2 hidden files of the left side"),
        "{text}"
    );
    let out = run_env(
        &[
            "compare",
            root.to_str().unwrap(),
            &url,
            "--user",
            USER,
            "--include-hidden",
        ],
        &envs,
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("2 in common, 2 only left"),
        "{}",
        stdout(&out)
    );

    // Asked for: everything goes.
    let text = ok(&upload(&to, &[&root], &["--include-hidden"], Some(PASS)));
    assert!(text.contains("4 files: 2 uploaded, 2 skipped"), "{text}");
    assert_eq!(
        std::fs::read(server.file("run/results/.ldawt/identity.key")).unwrap(),
        b"private key"
    );
}

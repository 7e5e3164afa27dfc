//! Tests of `ldawt node`'s flag and config parsing.

use clap::Parser;

use std::path::PathBuf;
use std::time::Duration;

use super::output::progress_line;
use super::*;
use crate::commands::cli::{Cli, Command};
use crate::model::shard::ShardSizing;
use crate::node::swarm_key::KeySource;
use crate::protocol::status::{DEFAULT_STATUS_ADDR, NodeStatus};

fn args(v: &[&str]) -> NodeArgs {
    let mut full = vec!["ldawt", "node"];
    full.extend_from_slice(v);
    match Cli::try_parse_from(full).unwrap().command {
        Command::Node(a) => *a,
        _ => unreachable!(),
    }
}

#[test]
fn ldawt_manager_config_is_accepted_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("taskvine.json");
    std::fs::write(
        &cfg_path,
        r#"{"port_number": 9124, "parquets_directory": "examples/2split",
            "url_col": "photo_url", "class_col": "species_name",
            "timeout_minutes": 30, "max_retries": 5, "unused": true}"#,
    )
    .unwrap();
    let c = node_config(&args(&["--config", cfg_path.to_str().unwrap()])).unwrap();
    let seed = c.seed.unwrap();
    assert_eq!(seed.path, PathBuf::from("examples/2split"));
    assert_eq!(seed.columns.class.as_deref(), Some("species_name"));
    assert_eq!(c.listen[0].to_string(), "/ip4/0.0.0.0/tcp/9124");
    // The swarm takes LDAWT's port; the status endpoint moves out of its way.
    assert_eq!(c.status_addr.to_string(), "127.0.0.1:9125");
    assert_eq!(c.lease.ttl, Duration::from_secs(1800));
    assert_eq!(c.lease.max_retries, 5);
    assert_eq!(c.out, Some(PathBuf::from("results")));
    assert_eq!(c.data_dir, PathBuf::from("results/.ldawt"));

    let c = node_config(&args(&[
        "--config",
        cfg_path.to_str().unwrap(),
        "--class-col",
        "taxon_name",
        "--max-retries",
        "1",
        "--lease-ttl",
        "20",
        "--shards",
        "4",
        "--out",
        "o",
    ]))
    .unwrap();
    let seed = c.seed.unwrap();
    assert_eq!(seed.columns.class.as_deref(), Some("taxon_name"));
    assert_eq!(seed.sizing, ShardSizing::Count(4));
    assert_eq!(
        (c.lease.max_retries, c.lease.ttl),
        (1, Duration::from_secs(20))
    );
    assert_eq!(c.data_dir, PathBuf::from("o/.ldawt"));
}

#[test]
fn a_worker_uses_defaults_and_bad_values_are_usage_errors() {
    let c = node_config(&args(&["--join", "/ip4/10.0.0.5/tcp/4001", "--open"])).unwrap();
    assert!(c.seed.is_none() && c.work && c.mdns);
    assert!(matches!(c.swarm_key, KeySource::Open));
    assert!(!c.allow_private_urls && c.allow_peers.is_empty());
    assert_eq!(c.status_addr.to_string(), DEFAULT_STATUS_ADDR);
    assert!(c.data_dir.ends_with("ldawt"));
    let e = node_config(&args(&["--seed", "x.parquet", "--shard-rows", "0"])).unwrap_err();
    assert_eq!(exit::code_for(&e), exit::BAD_INPUT);
    let e = node_config(&args(&["--config", "/nonexistent/ldawt.json"])).unwrap_err();
    assert_eq!(exit::code_for(&e), exit::BAD_INPUT);
    assert!(Cli::try_parse_from(["ldawt", "node", "--shards", "2", "--shard-rows", "3"]).is_err());
}

#[test]
fn the_swarm_key_comes_from_the_file_then_the_environment_then_the_seeders_data_dir() {
    use super::access::key_source;
    use crate::node::swarm_key;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let worker = args(&["--join", "/ip4/10.0.0.5/tcp/4001"]);
    // A worker without a key or --open is refused, naming the ways to give one.
    let e = key_source(&worker.access, false, &data, None).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("--swarm-key") && msg.contains("LDAWT_SWARM_KEY") && msg.contains("--open"),
        "{msg}"
    );
    let e = anyhow::Error::from(e);
    assert_eq!(exit::code_for(&e), exit::BAD_INPUT);
    // A seeder creates (or reuses) its own key in its data dir.
    let seeder = args(&["--seed", "x.parquet"]);
    match key_source(&seeder.access, true, &data, None).unwrap() {
        KeySource::CreateOrReuse(p) => assert_eq!(p, data.join("swarm.key")),
        other => panic!("{other:?}"),
    }
    // LDAWT_SWARM_KEY (hex) is used, and a bad value is refused.
    let hex = "ab".repeat(32);
    assert!(matches!(
        key_source(&worker.access, false, &data, Some(&hex)).unwrap(),
        KeySource::Env(_)
    ));
    assert!(key_source(&worker.access, false, &data, Some("abc")).is_err());
    // --swarm-key FILE wins over the environment; a missing file is refused at once.
    let key_file = dir.path().join("swarm.key");
    let (key, _) = swarm_key::load_or_create(&key_file).unwrap();
    let with_file = args(&[
        "--swarm-key",
        key_file.to_str().unwrap(),
        "--allow-peer",
        "12D3KooWLRPJAA5o6Z6ZtDUXRF2jdSPaxi3RgVV5QiXsC9RsWprZ",
        "--allow-private-urls",
    ]);
    match key_source(&with_file.access, false, &data, Some(&hex)).unwrap() {
        KeySource::File(p) => assert_eq!(swarm_key::load(&p).unwrap(), key),
        other => panic!("{other:?}"),
    }
    assert_eq!(with_file.access.allow_peers.len(), 1);
    assert!(with_file.access.allow_private_urls);
    let missing = args(&["--swarm-key", "/nonexistent/swarm.key"]);
    assert!(key_source(&missing.access, false, &data, None).is_err());
    // --open and --swarm-key exclude each other.
    assert!(Cli::try_parse_from(["ldawt", "node", "--open", "--swarm-key", "k"]).is_err());
    assert!(!data.exists(), "choosing a key creates nothing");
}

#[test]
fn the_progress_line_names_datasets_peers_and_local_work() {
    use crate::protocol::status::{DatasetProgress, PeerStatus};
    let s = NodeStatus {
        roles: vec!["seeder".into(), "worker".into()],
        local: PeerStatus {
            leases_held: 2,
            shards_done: 3,
            mb_per_s: 12.34,
            images_per_s: 80.0,
            ..Default::default()
        },
        peers: vec![
            PeerStatus {
                connected: true,
                ..Default::default()
            },
            PeerStatus::default(),
        ],
        datasets: vec![DatasetProgress {
            name: "birds".into(),
            shards_total: 16,
            shards_done: 5,
            shards_leased: 2,
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(
        progress_line(&s),
        "birds: 5/16 shards done, 2 leased, 0 failed · 1 peer(s) · here: 2 lease(s), 3 shard(s) done, 12.3 MB/s, 80 img/s"
    );
}

#[test]
fn max_archive_bytes_reaches_the_node_config() {
    let c = node_config(&args(&["--open", "--max-archive-bytes", "5000000000"])).unwrap();
    assert_eq!(c.max_archive_bytes, Some(5_000_000_000));
    assert_eq!(
        node_config(&args(&["--open"])).unwrap().max_archive_bytes,
        None
    );
    let cli = Cli::try_parse_from(["ldawt", "node", "--max-archive-bytes", "lots"]);
    assert!(cli.is_err());
}

#[test]
fn exit_when_idle_on_a_node_that_never_works_is_refused() {
    let e = node_config(&args(&["--open", "--no-work", "--exit-when-idle", "3"])).unwrap_err();
    assert!(e.to_string().contains("--no-work"), "{e}");
    assert!(node_config(&args(&["--open", "--exit-when-idle", "3"])).is_ok());
}

#[test]
fn engine_flags_are_checked_as_download_checks_them_and_a_seed_carries_their_columns() {
    // One validation for both commands: `download` refused 0 and so does `node` now.
    for bad in [
        &["--concurrency", "0"][..],
        &["--per-host", "0"],
        &["--timeout", "0"],
    ] {
        assert!(node_config(&args(bad)).is_err(), "{bad:?} accepted");
    }
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("s.csv");
    std::fs::write(
        &seed,
        "photo_url,taxon_name,cap,sha\nhttp://h/a.jpg,c,x,y\n",
    )
    .unwrap();
    let s = seed.to_str().unwrap();
    // A plain tree cannot be delivered as one verified file: refused at the seeder.
    let err = node_config(&args(&["--seed", s, "--format", "files"])).unwrap_err();
    assert!(err.to_string().contains("plain directory tree"), "{err}");
    assert!(node_config(&args(&["--seed", s, "--format", "webdataset"])).is_ok());
    let c = node_config(&args(&[
        "--seed",
        s,
        "--extra-cols",
        "cap",
        "--verify-hash",
        "sha",
        "--swarm-per-host",
        "4",
        "--concurrency",
        "8",
    ]))
    .unwrap();
    assert_eq!(c.swarm_per_host, Some(4));
    assert_eq!((c.engine.concurrency, c.engine.fetch.per_host), (8, 8));
    let cols = c.seed.unwrap().columns;
    assert_eq!(cols.extra, vec!["cap".to_string(), "sha".to_string()]);
    // The budget is a seeder's.
    let mut full = vec!["ldawt", "node", "--swarm-per-host", "4"];
    full.push("--no-mdns");
    assert!(Cli::try_parse_from(full).is_err());
}

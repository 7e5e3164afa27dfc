//! The SSRF guard through the real engine (`run_shard`) and the fixture on loopback: with
//! `block_private_addresses` every row reaching 127.0.0.1 — as an IP literal, through a name
//! resolving to it, or through a redirect — fails as `blocked_address` without a request
//! reaching the server; without it the same rows are stored. A second test (root: a network
//! namespace) gives the first hop a public-looking address, so the guard must stop the
//! redirect itself.

use std::collections::BTreeMap;

use ldawt::engine::{
    EngineConfig, FetchConfig, RowResult, RowStatus, ShardCounters, ShardJob, run_shard,
};
use ldawt::input::{UrlRow, VecRows};
use tokio_util::sync::CancellationToken;

use crate::common::{self, results};
use crate::netns::{LoneNs, TestNet, enter_netns};

/// Percent-encodes a URL for the fixture's `redirect-to-` directive.
fn encode(url: &str) -> String {
    percent_encoding::utf8_percent_encode(url, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Runs one shard of `urls` and returns its rows by index.
fn run(urls: &[String], block: bool, dir: &std::path::Path) -> BTreeMap<u64, RowResult> {
    let rows = urls
        .iter()
        .enumerate()
        .map(|(i, u)| UrlRow {
            index: i as u64,
            url: Some(u.clone()),
            class: Some("c".into()),
            extra: Vec::new(),
        })
        .collect();
    let archive = dir.join(if block { "blocked.tar" } else { "open.tar" });
    let cfg = EngineConfig {
        fetch: FetchConfig {
            block_private_addresses: block,
            ..FetchConfig::default()
        },
        max_attempts: 3,
        ..EngineConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt
        .block_on(run_shard(
            ShardJob {
                rows: Box::new(VecRows::new(rows)),
                archive_path: archive.clone(),
                resume: false,
            },
            &cfg,
            ShardCounters::new(),
            CancellationToken::new(),
        ))
        .expect("the run completes");
    assert_eq!(report.rows_total, urls.len() as u64);
    results(&ldawt::engine::results_path(&archive))
}

#[test]
fn internal_addresses_are_blocked_only_when_asked() {
    let fx = common::fixture();
    let port = fx.addr().port();
    let dir = tempfile::tempdir().unwrap();
    let urls = vec![
        // An IP literal (reqwest never asks the resolver about it).
        fx.url("/photos/s1/a.jpg"),
        // A name resolving to 127.0.0.1 (through /etc/hosts).
        format!("http://localhost:{port}/photos/s2/a.jpg"),
        // A redirect on the same internal host.
        fx.url("/fx/redirect/photos/s3/a.jpg"),
        // A redirect to a name resolving to an internal address.
        fx.url(&format!(
            "/fx/redirect-to-{}/photos/s4/a.jpg",
            encode(&format!("http://localhost:{port}/photos/s4b/a.jpg"))
        )),
        // An IPv4-mapped IPv6 spelling of loopback (blocked before any connection).
        format!("http://[::ffff:127.0.0.1]:{port}/photos/s5/a.jpg"),
    ];

    let open = run(&urls[..4], false, dir.path());
    for (i, r) in &open {
        assert_eq!(r.status, RowStatus::Ok, "row {i} without the guard: {r:?}");
    }
    assert_eq!(
        fx.requests("/photos/s4b/a.jpg"),
        1,
        "the redirect was followed"
    );

    let before = fx.total_requests();
    let blocked = run(&urls, true, dir.path());
    assert_eq!(blocked.len(), urls.len());
    for (i, r) in &blocked {
        assert_eq!(r.status, RowStatus::Failed, "row {i}: {r:?}");
        assert_eq!(
            r.error_kind.as_deref(),
            Some("blocked_address"),
            "row {i}: {r:?}"
        );
        assert_eq!(r.attempts, 1, "blocked_address is final: row {i}");
        let message = r.error_message.as_deref().unwrap_or_default();
        assert!(message.contains("internal address"), "row {i}: {message}");
        assert_eq!(
            ldawt::results::sanitized_error(r).as_deref(),
            Some("blocked_address")
        );
    }
    assert_eq!(
        fx.total_requests(),
        before,
        "no request reached the internal server"
    );
}

#[test]
fn the_guard_is_a_config_field_defaulting_to_off() {
    assert!(!EngineConfig::default().fetch.block_private_addresses);
    // Older serialized configs (without the field) still load, with the guard off.
    let mut json = serde_json::to_value(EngineConfig::default()).unwrap();
    json.as_object_mut()
        .unwrap()
        .remove("block_private_addresses");
    let cfg: EngineConfig = serde_json::from_value(json).unwrap();
    assert!(!cfg.fetch.block_private_addresses);
}

#[test]
fn a_public_first_hop_redirecting_inside_is_blocked() {
    if let Some(reason) = TestNet::unavailable() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but the namespace SSRF test cannot run: {reason}"
        );
        eprintln!("SKIP a_public_first_hop_redirecting_inside_is_blocked: {reason}");
        return;
    }
    let ns = LoneNs::create("fs").expect("namespace");
    // TEST-NET-2: not an internal range, so the guard lets it through.
    ns.add_lo_address("198.51.100.7/32").expect("address");
    let name = ns.name.clone();
    // Everything below runs in a thread moved into the namespace; the runtimes (and their
    // threads) it starts live there too.
    let worker = std::thread::spawn(move || {
        enter_netns(&name).expect("enter the namespace");
        let public = common::fixture_with(ldawt::fixture::FixtureConfig {
            listen: "198.51.100.7:0".parse().unwrap(),
            ..Default::default()
        });
        let internal = common::fixture();
        let iport = internal.addr().port();
        let dir = tempfile::tempdir().unwrap();
        let to = |target: String, path: &str| {
            public.url(&format!("/fx/redirect-to-{}{path}", encode(&target)))
        };
        let urls = vec![
            public.url("/photos/p1/a.jpg"),
            public.url("/fx/redirect/photos/p2/a.jpg"),
            to(internal.url("/photos/p3/a.jpg"), "/photos/p3r/a.jpg"),
            to(
                format!("http://localhost:{iport}/photos/p4/a.jpg"),
                "/photos/p4r/a.jpg",
            ),
        ];
        let open = run(&urls, false, dir.path());
        for (i, r) in &open {
            assert_eq!(r.status, RowStatus::Ok, "row {i} without the guard: {r:?}");
        }
        assert_eq!(internal.requests("/photos/p3/a.jpg"), 1);
        assert_eq!(internal.requests("/photos/p4/a.jpg"), 1);

        let guarded = run(&urls, true, dir.path());
        for i in [0u64, 1] {
            assert_eq!(
                guarded[&i].status,
                RowStatus::Ok,
                "row {i}: {:?}",
                guarded[&i]
            );
        }
        for i in [2u64, 3] {
            let r = &guarded[&i];
            assert_eq!(r.status, RowStatus::Failed, "row {i}: {r:?}");
            assert_eq!(
                r.error_kind.as_deref(),
                Some("blocked_address"),
                "row {i}: {r:?}"
            );
            assert_eq!(r.attempts, 1, "final: row {i}");
        }
        assert_eq!(
            internal.total_requests(),
            2,
            "the guarded run sent nothing to the internal server"
        );
    });
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
}

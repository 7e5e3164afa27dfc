//! `ldawt peers` through the binary against a real status endpoint on 127.0.0.1.

use std::process::Output;

use ldawt::protocol::status::{DatasetProgress, NodeStatus, PeerStatus, STATUS_VERSION};
use ldawt::status_server;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

async fn ldawt(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ldawt"))
        .args(args)
        .env_remove("LDAWT_STATUS_ADDR")
        .output()
        .await
        .expect("run ldawt")
}

fn three_node_status() -> NodeStatus {
    let peer = |id: &str, role: &str, connected: bool| PeerStatus {
        peer_id: id.into(),
        addrs: vec![format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}")],
        role: role.into(),
        cores: 2,
        leases_held: 1,
        shards_done: 3,
        mb_per_s: 1.5,
        images_per_s: 12.0,
        last_seen_ms: 9_000,
        connected,
        ..Default::default()
    };
    NodeStatus {
        version: STATUS_VERSION,
        peer_id: "12D3KooWSeederSeederSeederSeederSeederSeeder0001".into(),
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWSeeder".into()],
        roles: vec!["seeder".into()],
        started_at_ms: 1_000,
        now_ms: 10_000,
        local: peer(
            "12D3KooWSeederSeederSeederSeederSeederSeeder0001",
            "seeder",
            true,
        ),
        peers: vec![
            peer(
                "12D3KooWWorkerOneWorkerOneWorkerOneWorkerOne0002",
                "worker",
                true,
            ),
            peer(
                "12D3KooWWorkerTwoWorkerTwoWorkerTwoWorkerTwo0003",
                "worker",
                false,
            ),
        ],
        datasets: vec![DatasetProgress {
            dataset_id: "abcdefabcdefabcdefabcdefabcdefab".into(),
            seeder: "12D3KooWSeederSeederSeederSeederSeederSeeder0001".into(),
            name: "sample.parquet".into(),
            shards_total: 4,
            shards_done: 1,
            rows_total: 200,
            rows_ok: 50,
            ..Default::default()
        }],
    }
}

#[tokio::test]
async fn peers_prints_the_served_status_as_json_and_as_tables() {
    let doc = three_node_status();
    let (tx, rx) = watch::channel(doc.clone());
    let stop = CancellationToken::new();
    let addr = status_server::serve(
        "127.0.0.1:0".parse().unwrap(),
        rx,
        String::new,
        stop.clone(),
    )
    .await
    .unwrap();
    let addr = addr.to_string();

    let out = ldawt(&["peers", "--json", "--status-addr", &addr]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: NodeStatus = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(parsed, doc);

    // The document is live: the next call sees the update.
    let mut updated = doc.clone();
    updated.datasets[0].shards_done = 4;
    tx.send(updated.clone()).unwrap();
    let out = ldawt(&["peers", "--status-addr", &addr]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("2 peer(s) known, 1 connected"), "{text}");
    for short in ["12D3Ko…er0001", "12D3Ko…ne0002", "12D3Ko…wo0003"] {
        assert!(text.contains(short), "{short} missing from\n{text}");
    }
    assert!(text.contains("sample.parquet"));
    assert!(text.contains("4 / 4"), "{text}");
    assert!(text.contains("100.0%"), "{text}");
    stop.cancel();
}

#[tokio::test]
async fn peers_names_the_address_when_no_node_answers() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = ldawt(&["peers", "--status-addr", &free]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no ldawt node answers at {free}")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // Something that is not a status endpoint is named too.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let out = ldawt(&["peers", "--json", "--status-addr", &other]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{other} is not an ldawt status endpoint")),
        "{stderr}"
    );
    server.abort();
}

//! HTTPS and HTTP/2 through the real stack: nginx on loopback with a certificate from a test CA
//! made here with `openssl`, offering HTTP/2 by ALPN. A run that trusts the CA (the standard
//! `SSL_CERT_FILE` variable) stores every image and nginx logs each request as HTTP/2; a run
//! that does not trust it fails every row at once as `tls_certificate` (final: one attempt).
//! Skips, with the reason printed, where nginx or openssl is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ldawt::engine::RowStatus;

use crate::common::{self, archive_members};

fn tool(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost.
fn make_certificates(openssl: &Path, dir: &Path) {
    let d = |f: &str| dir.join(f);
    run(Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=ldawt test CA", "-keyout"])
        .args([d("ca.key"), "-out".into(), d("ca.pem")]));
    run(Command::new(openssl)
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .args([d("srv.key"), "-out".into(), d("srv.csr")]));
    std::fs::write(
        d("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new(openssl)
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .args([
            d("srv.csr"),
            "-CA".into(),
            d("ca.pem"),
            "-CAkey".into(),
            d("ca.key"),
        ])
        .args(["-out".into(), d("srv.pem"), "-extfile".into(), d("ext.cnf")]));
}

/// nginx serving `root` over HTTPS (HTTP/2 offered) on a free loopback port, as a single
/// process (`master_process off`: killing a master would orphan its workers); killed on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(nginx: &Path, dir: &Path, root: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let conf = format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               log_format proto '$server_protocol $status $request_uri';\n\
               access_log {d}/access.log proto;\n\
               types {{ image/jpeg jpg; }}\n\
               client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
               uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
               server {{ listen 127.0.0.1:{port} ssl http2; root {root};\n\
                 ssl_certificate {d}/srv.pem; ssl_certificate_key {d}/srv.key; }}\n\
             }}\n",
            root = root.display()
        );
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut child = Command::new(nginx)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, port };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "nginx did not listen on {port}: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small JPEG-shaped body (start and end markers) distinct per `n`.
fn jpeg(n: u8) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend((0..20_000u32).map(|i| (i as u8).wrapping_mul(n)));
    b.extend([0xFF, 0xD9]);
    b
}

fn download(input: &Path, output: &Path, ca: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new(common::ldawt_bin());
    cmd.args(["download", "--no-progress", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    common::wait_timeout(cmd.spawn().expect("spawn ldawt"), Duration::from_secs(60))
}

#[test]
fn https_with_http2_stores_images_and_untrusted_certificates_fail_once() {
    let (Some(nginx), Some(openssl)) = (tool("nginx"), tool("openssl")) else {
        common::skip("https_with_http2…: nginx or openssl is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // nginx workers may run as an unprivileged user: the tree must be readable.
    let mut perms = std::fs::metadata(d).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(d, perms).unwrap();
    make_certificates(&openssl, d);
    let root = d.join("www");
    for n in 1..=3u8 {
        std::fs::create_dir_all(root.join(format!("photos/{n}"))).unwrap();
        std::fs::write(root.join(format!("photos/{n}/medium.jpg")), jpeg(n)).unwrap();
    }
    let server = Nginx::start(&nginx, d, &root);
    let p = server.port;
    let urls = [
        format!("https://127.0.0.1:{p}/photos/1/medium.jpg"),
        format!("https://localhost:{p}/photos/2/medium.jpg"),
        format!("https://127.0.0.1:{p}/photos/3/medium.jpg"),
        format!("https://127.0.0.1:{p}/photos/4/medium.jpg"),
    ];
    let input = d.join("in.parquet");
    common::write_string_parquet(
        &input,
        &[
            ("photo_url", urls.iter().map(|u| Some(u.clone())).collect()),
            (
                "taxon_name",
                urls.iter().map(|_| Some("tls".into())).collect(),
            ),
        ],
    );

    let trusted = d.join("out").join("ok.tar");
    let out = download(&input, &trusted, Some(&d.join("ca.pem")));
    assert_eq!(
        common::code(&out),
        1,
        "row 4 is a 404\n{}",
        common::text(&out)
    );
    let members = archive_members(&trusted);
    for n in 1..=3u8 {
        assert_eq!(members[&format!("ok/tls/{n}.jpg")], jpeg(n), "image {n}");
    }
    let results = common::results(&d.join("out").join("ok.results.parquet"));
    assert_eq!(results[&3].error_kind.as_deref(), Some("http_404"));
    let log = std::fs::read_to_string(d.join("access.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "one request per row: {log}");
    assert!(
        lines.iter().all(|l| l.starts_with("HTTP/2.0 ")),
        "every request used HTTP/2: {log}"
    );

    let untrusted = d.join("out").join("bad.tar");
    let out = download(&input, &untrusted, None);
    assert_eq!(common::code(&out), 1, "{}", common::text(&out));
    let results = common::results(&d.join("out").join("bad.results.parquet"));
    assert_eq!(results.len(), 4);
    for r in results.values() {
        assert_eq!(r.status, RowStatus::Failed);
        assert_eq!(r.error_kind.as_deref(), Some("tls_certificate"), "{r:?}");
        assert_eq!(
            r.attempts, 1,
            "a rejected certificate is not retried: {r:?}"
        );
    }
}

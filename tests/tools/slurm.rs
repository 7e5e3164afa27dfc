//! `ldawt slurm` and `bootstrap/`: the rendered script passes `bash -n` and carries the right
//! directives; bad values exit 2; `bootstrap/install.sh` really installs a binary; and a real
//! single-host Slurm runs the generated job, whose `srun` starts `ldawt node --join …
//! --swarm-key FILE` on the allocated node (the key's path, never the key, is in the script).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::slurm_harness::Slurm;
use crate::util::{bad_input, bin, free_port, ok, run};

fn bash_n(path: &Path) {
    let out = Command::new("bash")
        .arg("-n")
        .arg(path)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "bash -n {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn slurm_renders_a_valid_script_with_the_resources_asked() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.sbatch");
    let key = dir.path().join("swarm.key");
    common::write_swarm_key(&key, common::test_swarm_key());
    let text = ok(&run(&[
        "slurm",
        "--join",
        "/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWabc",
        "--swarm-key",
        key.to_str().unwrap(),
        "--nodes",
        "3",
        "--cpus-per-task",
        "16",
        "--mem",
        "32G",
        "--time",
        "1-02:00:00",
        "--partition",
        "standard",
        "--account",
        "nirav",
        "--node-arg",
        "--verbose",
        "--output",
        job.to_str().unwrap(),
    ]));
    assert!(text.contains("sbatch"), "{text}");
    bash_n(&job);
    assert_eq!(
        std::fs::metadata(&job).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let script = std::fs::read_to_string(&job).unwrap();
    for line in [
        "#SBATCH --nodes=3",
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --mem=32G",
        "#SBATCH --time=1-02:00:00",
        "#SBATCH --partition=standard",
        "#SBATCH --account=nirav",
        "#SBATCH --ntasks-per-node=1",
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "missing {line}:\n{script}"
        );
    }
    assert!(script.contains("JOIN='/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWabc'"));
    assert!(script.contains(
        "node --join \"${JOIN}\" --swarm-key \"${SWARM_KEY}\" --exit-when-idle 300 '--verbose'"
    ));
    assert!(script.contains(&format!("SWARM_KEY='{}'", key.display())));
    let key_hex = std::fs::read_to_string(&key).unwrap();
    let key_hex = key_hex.lines().nth(2).unwrap();
    assert!(
        !script.contains(key_hex),
        "the key itself is never in the script"
    );
    assert!(script.contains(&format!(
        "LDAWT='{}'",
        std::fs::canonicalize(bin()).unwrap().display()
    )));
    // Printed to stdout without --output; still valid bash.
    let printed = ok(&run(&[
        "slurm",
        "--join",
        "/ip4/127.0.0.1/tcp/4001",
        "--open",
    ]));
    assert!(printed.contains("--open --exit-when-idle"), "{printed}");
    let p = dir.path().join("printed.sbatch");
    std::fs::write(&p, printed).unwrap();
    bash_n(&p);
}

#[test]
fn slurm_refuses_bad_values_with_exit_2() {
    let j = ["slurm", "--join", "/ip4/127.0.0.1/tcp/4001", "--open"];
    let with = |extra: &[&str]| {
        let mut a = j.to_vec();
        a.extend_from_slice(extra);
        run(&a)
    };
    bad_input(&with(&["--time", "4h"]), &["--time", "4h"]);
    bad_input(&with(&["--mem", "16GB"]), &["--mem", "16GB"]);
    bad_input(&with(&["--partition", "a;rm -rf /"]), &["--partition"]);
    bad_input(&with(&["--nodes", "0"]), &["--nodes"]);
    bad_input(&run(&["slurm", "--join", "a b", "--open"]), &["--join"]);
    bad_input(
        &run(&["slurm", "--join", "127.0.0.1:4001", "--open"]),
        &["--join", "multiaddr"],
    );
    // A key (or --open) is required, and a missing key file is refused before anything.
    bad_input(
        &run(&["slurm", "--join", "/ip4/127.0.0.1/tcp/4001"]),
        &["--swarm-key"],
    );
    bad_input(
        &run(&[
            "slurm",
            "--join",
            "/ip4/127.0.0.1/tcp/4001",
            "--swarm-key",
            "/nonexistent/swarm.key",
        ]),
        &["/nonexistent/swarm.key"],
    );
    bad_input(
        &with(&["--output", "/nonexistent/dir/job.sbatch"]),
        &["/nonexistent/dir/job.sbatch"],
    );
}

#[test]
fn bootstrap_scripts_parse_and_install_sh_installs_a_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("bootstrap");
    bash_n(&root.join("install.sh"));
    for f in [
        "ldawt.sbatch.tmpl",
        "ldawt-node.service",
        "cloud-init.yaml",
        "README.md",
    ] {
        assert!(root.join(f).is_file(), "bootstrap/{f} missing");
    }
    let cloud = std::fs::read_to_string(root.join("cloud-init.yaml")).unwrap();
    assert!(cloud.starts_with("#cloud-config\n"));
    let unit = std::fs::read_to_string(root.join("ldawt-node.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/ldawt node $LDAWT_NODE_ARGS"));
    let prefix = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root.join("install.sh"))
        .args(["--binary", bin(), "--prefix"])
        .arg(prefix.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = prefix.path().join("ldawt");
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("ldawt "));
    let bad = Command::new("bash")
        .arg(root.join("install.sh"))
        .args(["--binary", "/nonexistent/ldawt"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn slurm_job_runs_ldawt_node_on_a_real_single_host_cluster() {
    let Some(slurm) = Slurm::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Stage 1: the generated job, with a stand-in binary that records how srun started it.
    let fake = dir.path().join("fake-ldawt.sh");
    std::fs::write(
        &fake,
        "#!/bin/bash\n{ echo \"args=$*\"; echo \"cwd=$PWD\"; echo \"cpus=$SLURM_CPUS_PER_TASK\"; \
         echo \"nodes=$SLURM_JOB_NUM_NODES\"; } > \"$PWD/record.txt\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = dir.path().join("work");
    let job = dir.path().join("job.sbatch");
    let log = dir.path().join("slurm-%j.out");
    let stage1_key = dir.path().join("stage1.key");
    common::write_swarm_key(&stage1_key, common::test_swarm_key());
    ok(&run(&[
        "slurm",
        "--join",
        "/ip4/127.0.0.1/tcp/4999",
        "--swarm-key",
        stage1_key.to_str().unwrap(),
        "--nodes",
        "1",
        "--cpus-per-task",
        "1",
        "--mem",
        "100M",
        "--time",
        "0:05:00",
        "--ldawt",
        fake.to_str().unwrap(),
        "--work-root",
        work.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--node-arg",
        "--out",
        "--node-arg",
        "/data/x y",
        "--output",
        job.to_str().unwrap(),
    ]));
    let id = slurm.submit(&job, dir.path());
    let state = slurm.wait(&id, Duration::from_secs(60));
    let job_log =
        std::fs::read_to_string(dir.path().join(format!("slurm-{id}.out"))).unwrap_or_default();
    assert_eq!(state, "COMPLETED", "job log:\n{job_log}");
    assert!(
        job_log.contains("joining /ip4/127.0.0.1/tcp/4999"),
        "{job_log}"
    );
    let node_dir = work.join(format!("node-{}-{id}", slurm.node));
    let record = std::fs::read_to_string(node_dir.join("record.txt")).expect("the node task ran");
    let expected = format!(
        "args=node --join /ip4/127.0.0.1/tcp/4999 --swarm-key {} --exit-when-idle 300 --out /data/x y --data-dir {}/.ldawt",
        stage1_key.display(),
        node_dir.display()
    );
    assert!(record.contains(&expected), "{record}");
    assert!(
        record.contains("cpus=1") && record.contains("nodes=1"),
        "{record}"
    );

    // Stage 2: a real seeder on loopback; the job's `ldawt node` joins it and downloads the
    // dataset from the HTTP fixture.
    let help = Command::new(bin())
        .args(["node", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--exit-when-idle") && help.contains("--join"),
        "the generated job relies on `ldawt node --join … --exit-when-idle`: {help}"
    );
    let fx = common::fixture();
    // Real iNaturalist rows when the shared data is here, with their hosts rewritten to the
    // fixture; otherwise synthetic rows of the same shape.
    let input = common::inat_parquet(dir.path(), "birds.parquet", ROWS, &fx.base_url())
        .unwrap_or_else(|| {
            let path = dir.path().join("birds.parquet");
            common::write_string_parquet(
                &path,
                &[
                    (
                        "photo_url",
                        (0..ROWS)
                            .map(|i| Some(fx.url(&format!("/photos/{i}/medium.jpg"))))
                            .collect(),
                    ),
                    (
                        "taxon_name",
                        (0..ROWS)
                            .map(|i| Some(format!("species {}", i % 5)))
                            .collect(),
                    ),
                ],
            );
            path
        });
    let out = dir.path().join("results");
    let mut seeder = Seeder::start(&input, &out, &dir.path().join("seeder.err"));
    let job2 = dir.path().join("swarm.sbatch");
    let worker_status = format!("127.0.0.1:{}", free_port());
    ok(&run(&[
        "slurm",
        "--join",
        &seeder.join,
        "--swarm-key",
        &seeder.key,
        "--cpus-per-task",
        "1",
        "--mem",
        "500M",
        "--time",
        "0:10:00",
        "--exit-when-idle",
        "5",
        "--ldawt",
        bin(),
        "--work-root",
        work.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--node-arg",
        "--listen",
        "--node-arg",
        "/ip4/127.0.0.1/tcp/0",
        "--node-arg",
        "--no-mdns",
        "--node-arg",
        "--status-addr",
        "--node-arg",
        &worker_status,
        "--node-arg",
        "--no-progress",
        "--node-arg",
        "--allow-private-urls",
        "--output",
        job2.to_str().unwrap(),
    ]));
    let id2 = slurm.submit(&job2, dir.path());
    let state = slurm.wait(&id2, Duration::from_secs(180));
    let job_log =
        std::fs::read_to_string(dir.path().join(format!("slurm-{id2}.out"))).unwrap_or_default();
    assert_eq!(
        state,
        "COMPLETED",
        "job log:\n{job_log}\nseeder:\n{}",
        seeder.log()
    );
    let code = seeder.wait(Duration::from_secs(60));
    assert_eq!(
        code,
        0,
        "seeder exit; its log:\n{}\njob log:\n{job_log}",
        seeder.log()
    );
    let rows = crate::util::read_parquet(&out.join("results.parquet"));
    let statuses: Vec<String> = rows
        .iter()
        .flat_map(|b| {
            let st = b.column_by_name("status").expect("status column");
            ldawt::split::class_keys(st.as_ref()).unwrap()
        })
        .map(|s| s.unwrap_or_default())
        .collect();
    assert_eq!(statuses.len(), ROWS, "every row accounted for");
    assert!(statuses.iter().all(|s| s == "ok"), "{statuses:?}");
}

const ROWS: usize = 40;

/// A `--no-work` seeder process on loopback; its join address and swarm key file are read
/// from its stdout.
struct Seeder {
    child: std::process::Child,
    join: String,
    key: String,
    stderr: std::path::PathBuf,
}

impl Seeder {
    fn start(input: &Path, out: &Path, stderr: &Path) -> Seeder {
        let port = free_port();
        let mut child = Command::new(bin())
            .args([
                "node",
                "--seed",
                input.to_str().unwrap(),
                "--class-col",
                "taxon_name",
            ])
            .args([
                "--out",
                out.to_str().unwrap(),
                "--shards",
                "4",
                "--no-mdns",
                "--no-work",
            ])
            .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{port}")])
            .args([
                "--status-addr",
                &format!("127.0.0.1:{}", free_port()),
                "--no-progress",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in
                std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok)
            {
                // Keep draining after the join line, so the seeder's stdout stays open.
                let _ = tx.send(line);
            }
        });
        let mut seeder = Seeder {
            child,
            join: String::new(),
            key: String::new(),
            stderr: stderr.to_path_buf(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seeder.join.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("seeder printed no --join line:\n{}", seeder.log()));
            if line.contains("--join ") {
                let words: Vec<&str> = line.split_whitespace().collect();
                let after = |flag: &str| {
                    let i = words
                        .iter()
                        .position(|w| *w == flag)
                        .unwrap_or_else(|| panic!("no {flag} in the seeder's join line {line:?}"));
                    words[i + 1].to_string()
                };
                seeder.key = after("--swarm-key");
                seeder.join = after("--join");
            }
        }
        seeder
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait(&mut self, limit: Duration) -> i32 {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < limit,
                "seeder did not finish; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Seeder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! `ldawt compare` across every kind of side: directory, tar, tar.gz, text listing (the
//! `gocmd ls` shape LDAWT used) and a WebDAV collection on a real rclone server.

use std::path::Path;
use std::time::Duration;

use crate::dav::{DavServer, PASS, USER};
use crate::util::{bad_input, ok, run, run_env, stdout};

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("Apis mellifera")).unwrap();
    std::fs::create_dir_all(root.join("Bombus")).unwrap();
    std::fs::write(root.join("Apis mellifera/1.jpg"), vec![1u8; 100]).unwrap();
    std::fs::write(root.join("Apis mellifera/2.jpg"), vec![2u8; 200]).unwrap();
    std::fs::write(root.join("Bombus/3.jpg"), vec![3u8; 300]).unwrap();
}

fn make_tar(src: &Path, out: &Path, gz: bool) {
    let file = std::fs::File::create(out).unwrap();
    let write = |w: Box<dyn std::io::Write>| {
        let mut b = tar::Builder::new(w);
        b.append_dir_all(".", src).unwrap();
        b.into_inner().unwrap().flush().unwrap();
    };
    if gz {
        let enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        write(Box::new(enc));
    } else {
        write(Box::new(file));
    }
}

fn compare(args: &[&str]) -> std::process::Output {
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn compare_directory_archives_and_text_listings() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    make_tree(&a);
    let tgz = tmp.path().join("a.tar.gz");
    let tarp = tmp.path().join("a.tar");
    make_tar(&a, &tgz, true);
    make_tar(&a, &tarp, false);
    // Identical: exit 0, both orders, with sizes.
    let text = ok(&compare(&[
        a.to_str().unwrap(),
        tgz.to_str().unwrap(),
        "--sizes",
    ]));
    assert!(
        text.contains("3 in common, 0 only left, 0 only right, 0 size differs"),
        "{text}"
    );
    ok(&compare(&[
        tarp.to_str().unwrap(),
        a.to_str().unwrap(),
        "--sizes",
    ]));
    // Change the directory: one file gone, one added, one resized.
    std::fs::remove_file(a.join("Bombus/3.jpg")).unwrap();
    std::fs::write(a.join("Bombus/4.jpg"), b"x").unwrap();
    std::fs::write(a.join("Apis mellifera/2.jpg"), vec![2u8; 201]).unwrap();
    let out_dir = tmp.path().join("report");
    let out = compare(&[
        a.to_str().unwrap(),
        tgz.to_str().unwrap(),
        "--sizes",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("2 in common, 1 only left, 1 only right, 1 size differs"),
        "{text}"
    );
    assert!(
        text.contains("Apis mellifera/2.jpg: 201 vs 200 bytes"),
        "{text}"
    );
    let read = |n: &str| std::fs::read_to_string(out_dir.join(n)).unwrap();
    assert_eq!(read("only_left.txt"), "Bombus/4.jpg\n");
    assert_eq!(read("only_right.txt"), "Bombus/3.jpg\n");
    assert_eq!(read("size_differs.tsv"), "Apis mellifera/2.jpg\t201\t200\n");
    // A gocmd-style listing of archive names against a folder of archives, by basename/suffix.
    let listing = tmp.path().join("cloud.txt");
    std::fs::write(&listing, "/iplant/home/u/AIIRA:\n  a.tar.gz\n  z.tar.gz\n  C- /iplant/home/u/AIIRA/sub\n  notes.txt\n").unwrap();
    let text = stdout(&compare(&[
        tmp.path().to_str().unwrap(),
        listing.to_str().unwrap(),
        "--basename",
        "--suffix",
        ".tar.gz",
    ]));
    assert!(text.contains("only in right (1):\n  z.tar.gz"), "{text}");
    assert!(
        text.contains("1 in common, 0 only left, 1 only right"),
        "{text}"
    );
}

#[test]
fn compare_against_a_webdav_collection() {
    let Some(server) = DavServer::start() else {
        return;
    };
    make_tree(&server.file("coll"));
    std::fs::write(server.file("coll/Bombus/extra.jpg"), b"e").unwrap();
    let local = tempfile::tempdir().unwrap();
    make_tree(local.path());
    std::fs::write(local.path().join("Bombus/3.jpg"), vec![3u8; 301]).unwrap();
    let url = server.url("coll");
    let envs = [("LDAWT_PASSWORD", PASS)];
    let out = run_env(
        &[
            "compare",
            local.path().to_str().unwrap(),
            &url,
            "--sizes",
            "--user",
            USER,
        ],
        &envs,
        Duration::from_secs(60),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("only in right (1):\n  Bombus/extra.jpg"),
        "{text}"
    );
    assert!(text.contains("Bombus/3.jpg: 301 vs 300 bytes"), "{text}");
    assert!(text.contains("3 in common"), "{text}");
    // Bad credentials, a missing collection and a dead server: exit 2 naming the URL.
    let wrong = [("LDAWT_PASSWORD", "nope")];
    bad_input(
        &run_env(
            &[
                "compare",
                local.path().to_str().unwrap(),
                &url,
                "--user",
                USER,
            ],
            &wrong,
            Duration::from_secs(60),
        ),
        &["rejected the credentials"],
    );
    let missing = server.url("no-such-collection");
    bad_input(
        &run_env(
            &[
                "compare",
                local.path().to_str().unwrap(),
                &missing,
                "--user",
                USER,
            ],
            &envs,
            Duration::from_secs(60),
        ),
        &["no-such-collection", "404"],
    );
    let dead = format!("http://127.0.0.1:{}/x", crate::util::free_port());
    bad_input(
        &compare(&[local.path().to_str().unwrap(), &dead]),
        &["cannot reach"],
    );
}

#[test]
fn compare_refuses_bad_input_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    bad_input(
        &compare(&[d, "/nonexistent/list.txt"]),
        &["/nonexistent/list.txt", "not found"],
    );
    let bogus = tmp.path().join("bogus.tar.gz");
    std::fs::write(&bogus, [0x1f, 0x8b, 1, 2, 3, 4, 5]).unwrap();
    bad_input(&compare(&[d, bogus.to_str().unwrap()]), &["bogus.tar.gz"]);
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    bad_input(
        &compare(&[d, d, "--out-dir", blocker.join("sub").to_str().unwrap()]),
        &["--out-dir"],
    );
}

#[test]
fn compare_an_archive_with_its_unpacked_folder_strips_the_top_folder() {
    let tmp = tempfile::tempdir().unwrap();
    // `download` writes `<stem>/<class>/<file>`; the unpacked class folders have no `<stem>/`.
    let staged = tmp.path().join("staged");
    make_tree(&staged.join("shard"));
    let tarp = tmp.path().join("shard.tar");
    make_tar(&staged, &tarp, false);
    let unpacked = tmp.path().join("unpacked");
    make_tree(&unpacked);
    let text = ok(&compare(&[
        tarp.to_str().unwrap(),
        unpacked.to_str().unwrap(),
        "--sizes",
    ]));
    assert!(
        text.contains("every entry of the left side is under shard/"),
        "{text}"
    );
    assert!(
        text.contains("3 in common, 0 only left, 0 only right"),
        "{text}"
    );
    // --keep-prefix compares the names as they are.
    let out = compare(&[
        tarp.to_str().unwrap(),
        unpacked.to_str().unwrap(),
        "--keep-prefix",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("0 in common, 3 only left, 3 only right"),
        "{}",
        stdout(&out)
    );
}

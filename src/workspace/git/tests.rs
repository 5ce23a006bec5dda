//! Unit tests of snapshots, restore and branches.

use super::*;

/// A name swapped between a file and a symlink to a host file while snapshots are taken:
/// no snapshot ever holds the host file's content.
#[test]
fn snapshots_never_store_what_a_swapped_symlink_points_at() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(dir.path().join("secret"), "SECRET-CONTENT").unwrap();
    std::fs::write(root.join("x"), "inside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("y")).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flipper = {
        let (root, stop) = (root.clone(), stop.clone());
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&root).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = rustix::fs::renameat_with(
                    &fd,
                    "x",
                    &fd,
                    "y",
                    rustix::fs::RenameFlags::EXCHANGE,
                );
                n += 1;
            }
            n
        })
    };
    // The status scan may fail on a name that changes under it: the turn then has no
    // snapshot, which costs only this session.
    let taken = (0..200)
        .filter(|_| snapshot(&root, "turn", false, &policy()).is_ok())
        .count();
    assert!(taken > 0, "no snapshot was taken");
    stop.store(true, Ordering::Relaxed);
    assert!(flipper.join().unwrap() > 0);
    let repo = Repository::open(git_dir(&root)).unwrap();
    let odb = repo.odb().unwrap();
    let mut leaked = false;
    odb.foreach(|id| {
        if let Ok(blob) = repo.find_blob(*id) {
            leaked |= blob.content().windows(6).any(|w| w == b"SECRET");
        }
        true
    })
    .unwrap();
    assert!(!leaked, "a snapshot stored the host file");
}

#[test]
fn files_too_large_for_snapshots_are_named_and_survive_restore() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(root.join("upload")).unwrap();
    std::fs::write(root.join("a.txt"), "v1").unwrap();
    let first = snapshot(&root, "one", true, &policy()).unwrap();
    std::fs::write(root.join("upload/big video.bin"), vec![7u8; 4096]).unwrap();
    std::fs::write(root.join("a.txt"), "v2").unwrap();
    snapshot(&root, "two", true, &policy()).unwrap();
    let listed = state(&root, 10, &policy()).unwrap().not_in_snapshots;
    assert_eq!(listed, vec!["/mnt/okcomputer/upload/big video.bin"]);
    restore_snapshot(&root, &first.id, true, &policy()).unwrap();
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "v1");
    assert!(
        root.join("upload/big video.bin").exists(),
        "restore kept the large file"
    );
    // Small enough again: snapshotted like any file.
    std::fs::write(root.join("upload/big video.bin"), "small").unwrap();
    snapshot(&root, "three", true, &policy()).unwrap();
    assert!(state(&root, 10, &policy())
        .unwrap()
        .not_in_snapshots
        .is_empty());
}

#[test]
fn labels_are_one_clean_line() {
    assert_eq!(label_of("\n  fix\0 the\u{7} bug \nmore"), "fix the bug");
    assert_eq!(label_of("\0\0"), "Snapshot");
    assert_eq!(label_of(""), "Snapshot");
}

fn policy() -> SnapshotPolicy {
    SnapshotPolicy {
        ignore: vec!["node_modules/".into(), "*.pyc".into()],
        max_file_bytes: 1024,
    }
}

#[test]
fn snapshot_restore_and_branch_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "v1").unwrap();
    let first = snapshot(&root, "turn one\nmore", false, &policy()).unwrap();
    assert_eq!(first.label, "turn one");
    // Unchanged: no new commit unless asked.
    assert_eq!(
        snapshot(&root, "again", false, &policy()).unwrap().id,
        first.id
    );
    std::fs::write(root.join("a.txt"), "v2").unwrap();
    std::fs::write(root.join("new.txt"), "n").unwrap();
    std::fs::write(root.join("big.bin"), vec![0u8; 4096]).unwrap();
    std::fs::write(root.join("x.pyc"), "c").unwrap();
    let second = snapshot(&root, "turn two", false, &policy()).unwrap();
    assert_ne!(second.id, first.id);
    let st = state(&root, 10, &policy()).unwrap();
    assert_eq!(st.snapshots.len(), 2);
    assert_eq!(st.git.branch.as_deref(), Some("main"));
    // Big and ignored files stay out of history; nothing a snapshot could take is left.
    assert!(!st.git.is_dirty);
    assert_eq!(st.not_in_snapshots, vec!["/mnt/okcomputer/big.bin"]);

    // A deleted file leaves the next snapshot.
    std::fs::remove_file(root.join("new.txt")).unwrap();
    let third = snapshot(&root, "turn three", false, &policy()).unwrap();
    let repo = open_or_init(&root, &policy()).unwrap();
    let tree = repo
        .find_commit(Oid::from_str(&third.id).unwrap())
        .unwrap()
        .tree()
        .unwrap();
    assert!(tree.get_name("new.txt").is_none());
    assert!(tree.get_name("a.txt").is_some());
    assert!(tree.get_name("big.bin").is_none() && tree.get_name("x.pyc").is_none());
    drop(tree);
    drop(repo);

    restore_snapshot(&root, &first.id[..10], true, &policy()).unwrap();
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "v1");
    assert!(!root.join("new.txt").exists());
    assert!(matches!(
        restore_snapshot(&root, "deadbeef", true, &policy()),
        Err(GitError::UnknownSnapshot(_))
    ));
    assert!(matches!(
        restore_snapshot(&root, "HEAD~1", true, &policy()),
        Err(GitError::UnknownSnapshot(_))
    ));

    create_branch(&root, "alt", Some(&second.id), true, &policy()).unwrap();
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "v2");
    switch_branch(&root, "main", true, &policy()).unwrap();
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "v1");
    assert!(matches!(
        switch_branch(&root, "nope", true, &policy()),
        Err(GitError::UnknownBranch(_))
    ));
    assert!(matches!(
        create_branch(&root, "alt", None, true, &policy()),
        Err(GitError::BranchExists(_))
    ));
}

#[test]
fn branch_names_are_checked() {
    for good in ["main", "v2", "feature/x-1", "a.b"] {
        assert!(check_branch_name(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "-x",
        "a..b",
        "a b",
        "x.lock",
        "/x",
        "x/",
        &"b".repeat(201),
        "a~1",
        "é",
    ] {
        assert!(check_branch_name(bad).is_err(), "{bad}");
    }
}

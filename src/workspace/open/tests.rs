//! Unit tests of the confined opener.

use std::io::{Read, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "SECRET").unwrap();
    Fixture {
        _dir: dir,
        root,
        outside,
    }
}

fn read_all(mut file: File) -> String {
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text
}

fn p(path: &str) -> &Path {
    Path::new(path)
}

#[test]
fn files_and_folders_are_created_read_listed_renamed_and_removed() {
    let f = fixture();
    let dir = Dir::open_root(&f.root, None).unwrap();
    let mut file = dir
        .create_file(p("a/b/c.txt"), "c.txt", Write::New)
        .unwrap();
    file.write_all(b"one").unwrap();
    assert_eq!(
        dir.create_file(p("a/b/c.txt"), "c.txt", Write::New)
            .unwrap_err(),
        OpenError::Exists("c.txt".into())
    );
    dir.create_file(p("a/b/c.txt"), "c.txt", Write::Append)
        .unwrap()
        .write_all(b"two")
        .unwrap();
    assert_eq!(
        read_all(dir.open_file(p("a/b/c.txt"), "c").unwrap()),
        "onetwo"
    );
    assert_eq!(dir.kind(p("a/b"), "b").unwrap(), Some(Kind::Dir));
    assert_eq!(dir.kind(p("a/nope"), "nope").unwrap(), None);
    assert_eq!(dir.kind(p("nope/deeper"), "x").unwrap(), None);
    dir.rename(p("a/b/c.txt"), p("d/e.txt"), "e").unwrap();
    let names: Vec<_> = dir
        .open_dir(p("d"), "d")
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.name.into_string().unwrap(), e.kind, e.size))
        .collect();
    assert_eq!(names, vec![("e.txt".to_string(), Kind::File, 6)]);
    dir.remove_file(p("d/e.txt"), "e").unwrap();
    dir.remove_file(p("d/e.txt"), "e").unwrap();
    assert_eq!(
        dir.open_file(p("d/e.txt"), "e").unwrap_err(),
        OpenError::NotFound("e".into())
    );
    assert_eq!(
        dir.open_file(p("a"), "a").unwrap_err(),
        OpenError::IsDir("a".into())
    );
}

#[test]
fn symlinks_inside_are_followed_and_those_leading_out_refused() {
    let f = fixture();
    let dir = Dir::open_root(&f.root, None).unwrap();
    dir.create_file(p("real/x.txt"), "x", Write::New)
        .unwrap()
        .write_all(b"inside")
        .unwrap();
    std::os::unix::fs::symlink("real", f.root.join("inner")).unwrap();
    std::os::unix::fs::symlink(&f.outside, f.root.join("out")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", f.root.join("rel")).unwrap();
    std::os::unix::fs::symlink("/proc/self/root/etc/passwd", f.root.join("magic")).unwrap();
    std::os::unix::fs::symlink("../outside/new", f.root.join("dangling")).unwrap();
    assert_eq!(
        read_all(dir.open_file(p("inner/x.txt"), "x").unwrap()),
        "inside"
    );
    for name in ["out/secret", "rel", "magic"] {
        assert_eq!(
            dir.open_file(p(name), name).unwrap_err(),
            OpenError::Escapes(name.into()),
            "{name}"
        );
    }
    for name in ["out/new", "dangling", "out/sub/new"] {
        assert_eq!(
            dir.create_file(p(name), name, Write::Truncate).unwrap_err(),
            OpenError::Escapes(name.into()),
            "{name}"
        );
    }
    assert!(!f.outside.join("new").exists());
    assert!(!f.outside.join("sub").exists());
    assert!(dir.open_dir(p("out"), "out").is_err());
    assert!(dir.rename(p("inner/x.txt"), p("out/x.txt"), "x").is_err());
    assert_eq!(
        std::fs::read_dir(&f.outside).unwrap().count(),
        1,
        "nothing was moved out"
    );
}

#[test]
fn fifos_sockets_and_devices_are_refused_without_blocking() {
    let f = fixture();
    let dir = Dir::open_root(&f.root, None).unwrap();
    nix::unistd::mkfifo(
        &f.root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(f.root.join("sock")).unwrap();
    let device = nix::sys::stat::mknod(
        &f.root.join("zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .is_ok(); // only root may make device nodes
    let mut names = vec!["fifo", "sock"];
    if device {
        names.push("zero");
    }
    for name in names {
        let read = dir.open_file(p(name), name).unwrap_err();
        assert!(
            matches!(read, OpenError::NotRegular { .. }),
            "{name}: {read:?}"
        );
        let write = dir.create_file(p(name), name, Write::Truncate).unwrap_err();
        assert!(
            matches!(write, OpenError::NotRegular { .. }),
            "{name}: {write:?}"
        );
    }
}

/// Another thread swaps `x` between a regular file and a symlink to a host file as fast as
/// it can (as agent code can with `renameat2(RENAME_EXCHANGE)`); no read may see the host
/// file and no write may change it.
#[test]
fn a_name_swapped_with_a_symlink_never_leads_outside() {
    const ATTEMPTS: usize = 3000;
    let f = fixture();
    let dir = Dir::open_root(&f.root, None).unwrap();
    std::fs::write(f.root.join("x"), "inside").unwrap();
    std::os::unix::fs::symlink(f.outside.join("secret"), f.root.join("y")).unwrap();
    std::fs::create_dir(f.root.join("sub")).unwrap();
    std::os::unix::fs::symlink(&f.outside, f.root.join("z")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (root, stop) = (f.root.clone(), stop.clone());
        std::thread::spawn(move || {
            let fd = Dir::open_root(&root, None).unwrap();
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (a, b) in [("x", "y"), ("sub", "z")] {
                    let _ = rustix::fs::renameat_with(
                        &fd,
                        a,
                        &fd,
                        b,
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
                swaps += 1;
            }
            swaps
        })
    };
    let mut seen_inside = 0;
    for i in 0..ATTEMPTS {
        if let Ok(file) = dir.open_file(p("x"), "x") {
            let text = read_all(file);
            assert_ne!(text, "SECRET", "attempt {i} read the host file");
            seen_inside += usize::from(!text.is_empty());
        }
        if let Ok(mut file) = dir.create_file(p("x"), "x", Write::Truncate) {
            file.write_all(b"inside").unwrap();
        }
        let _ = dir.create_file(p("sub/new"), "new", Write::Truncate);
        let _ = dir.rename(p("sub/new"), p("sub/moved"), "moved");
        let _ = dir.open_dir(p("sub"), "sub").and_then(|d| {
            d.entries().map_err(|e| OpenError::Io {
                shown: String::new(),
                reason: e.to_string(),
            })
        });
    }
    stop.store(true, Ordering::Relaxed);
    assert!(flipper.join().unwrap() > 100, "the swap loop ran");
    assert!(seen_inside > 0, "some reads succeeded");
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret")).unwrap(),
        "SECRET"
    );
    assert_eq!(
        std::fs::read_dir(&f.outside).unwrap().count(),
        1,
        "nothing was created outside"
    );
}

#[test]
fn created_files_and_folders_are_given_to_the_owner() {
    if !nix::unistd::geteuid().is_root() {
        return; // chown needs root
    }
    let f = fixture();
    let owner = FileOwner {
        uid: 4242,
        gid: 4343,
    };
    let dir = Dir::open_root(&f.root, Some(owner)).unwrap();
    std::fs::write(f.root.join("by-git.txt"), "x").unwrap();
    assert!(!dir.is_shared_with_owner());
    dir.share_with_owner();
    dir.give_tree_to_owner();
    assert!(dir.is_shared_with_owner());
    dir.create_file(p("a/b.txt"), "b", Write::New).unwrap();
    use std::os::unix::fs::MetadataExt;
    for path in ["a", "a/b.txt", "by-git.txt"] {
        let meta = std::fs::metadata(f.root.join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "{path}");
    }
    let root = std::fs::metadata(&f.root).unwrap();
    assert_eq!(
        (root.uid(), root.gid(), root.mode() & 0o777),
        (0, 4343, 0o775)
    );
}

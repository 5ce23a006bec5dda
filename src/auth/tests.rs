//! Unit tests of owners, proxies, tokens and user names.

use super::*;

fn config(mode: AuthMode) -> AuthConfig {
    AuthConfig {
        mode,
        trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into()],
        admins: vec!["root@example.com".into()],
        ..AuthConfig::default()
    }
}

#[test]
fn owners_of_users_and_of_client_ids_never_meet() {
    let user = Caller {
        user: Some("alice".into()),
        role: Role::User,
    };
    assert_eq!(&*user.owner("anything"), "@alice");
    assert_eq!(&*Authenticator::anonymous().owner("alice"), "alice");
}

#[test]
fn proxy_headers_count_only_from_trusted_peers() {
    let auth = Authenticator::new(&config(AuthMode::Proxy)).unwrap();
    let inside: IpAddr = "10.1.2.3".parse().unwrap();
    let caller = auth.by_proxy(Some(inside), Some("bob")).unwrap();
    assert_eq!(
        (caller.user.as_deref(), caller.role),
        (Some("bob"), Role::User)
    );
    let admin = auth
        .by_proxy(Some(inside), Some("root@example.com"))
        .unwrap();
    assert!(admin.is_admin());
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert!(auth.by_proxy(Some(mapped), Some("bob")).is_ok());
    let outside: IpAddr = "192.168.1.1".parse().unwrap();
    assert_eq!(
        auth.by_proxy(Some(outside), Some("bob")),
        Err(Unauthenticated::UntrustedPeer)
    );
    assert_eq!(
        auth.by_proxy(Some(inside), None),
        Err(Unauthenticated::MissingUser)
    );
    assert_eq!(
        auth.by_proxy(Some(inside), Some("../x")),
        Err(Unauthenticated::InvalidUser)
    );
}

#[test]
fn tokens_find_their_user_and_the_file_keeps_only_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let alice = users::add(&path, "alice", Role::Admin).unwrap();
    let bob = users::add(&path, "bob", Role::User).unwrap();
    assert!(matches!(
        users::add(&path, "bob", Role::User),
        Err(users::UsersError::Exists(_))
    ));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&alice) && !text.contains(&bob));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let mut config = config(AuthMode::Token);
    config.users_file = path.clone();
    let auth = Authenticator::new(&config).unwrap();
    assert_eq!(auth.user_count(), 2);
    let found = auth.by_token(Some(&bob)).unwrap();
    assert_eq!(
        (found.user.as_deref(), found.role),
        (Some("bob"), Role::User)
    );
    assert!(auth.by_token(Some(&alice)).unwrap().is_admin());
    assert_eq!(
        auth.by_token(Some("okcvm_nope")),
        Err(Unauthenticated::UnknownToken)
    );
    assert_eq!(auth.by_token(None), Err(Unauthenticated::MissingToken));
    assert!(users::remove(&path, "bob").unwrap());
    assert!(!users::remove(&path, "bob").unwrap());
}

#[test]
fn user_names_are_safe_as_store_keys_and_folders() {
    for good in ["alice", "a.b-c_d", "alice@example.com", "x+y"] {
        assert!(users::check_name(good).is_ok(), "{good}");
    }
    for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(65)] {
        assert!(users::check_name(bad).is_err(), "{bad}");
    }
}

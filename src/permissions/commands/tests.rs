//! Rules matched against one command's words.

use super::*;

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn options_match_in_any_grouping() {
    for line in ["rm -rf x", "rm -r -f x", "rm -fr x", "rm -f -r x"] {
        assert!(matches_loosely(&["rm", "-rf"], &words(line)), "{line}");
    }
    assert!(!matches_loosely(&["rm", "-rf"], &words("rm -r x")));
    assert!(matches_loosely(&["rm", "-r"], &words("/bin/rm -Rr x")));
    assert!(matches_loosely(
        &["git", "push"],
        &words("git -C dir push origin")
    ));
    assert!(matches_loosely(
        &["python", "-m", "pip"],
        &words("python3.11 -m pip install x")
    ));
    assert!(!matches_loosely(&["git", "push"], &words("git status")));
    assert!(matches_exactly(&["git", "status"], &words("git status -s")));
    assert!(!matches_exactly(
        &["git", "status"],
        &words("git -c x=y status")
    ));
}

#[test]
fn deny_beats_ask_and_a_longer_allow_beats_both() {
    let rules = CommandRules {
        allow: vec!["git push origin".into(), "curl".into()],
        ask: vec!["git push".into(), "curl".into()],
        deny: vec![],
    };
    let decision = |line: &str| rule_for(&words(line), &rules).map(|(d, _)| d);
    assert_eq!(decision("git push origin main"), Some(Decision::Allow));
    assert_eq!(decision("git push upstream"), Some(Decision::Ask));
    assert_eq!(decision("curl x"), Some(Decision::Ask));
    assert_eq!(decision("ls"), None);
    let rules = CommandRules {
        allow: vec!["rm -rf build".into()],
        ask: vec!["rm -r".into()],
        deny: vec!["rm".into()],
    };
    let decision = |line: &str| rule_for(&words(line), &rules).map(|(d, _)| d);
    assert_eq!(decision("rm -rf x"), Some(Decision::Deny));
    assert_eq!(decision("rm -rf build"), Some(Decision::Allow));
}

#[test]
fn names_lose_their_path_and_version() {
    assert_eq!(base_name("/usr/bin/python3.11"), "python");
    assert_eq!(base_name("pip3"), "pip");
    assert_eq!(base_name("md5sum"), "md5sum");
    assert_eq!(base_name("x-12"), "x-12");
    assert_eq!(base_name("mkfs.ext4"), "mkfs");
}

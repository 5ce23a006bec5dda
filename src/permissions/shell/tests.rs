//! Shell lines classified by their riskiest command, however the command is tucked away.

use super::read_line;
use crate::config::permissions::CommandRules;
use crate::permissions::Class;

fn class(line: &str) -> Class {
    read_line(line, &CommandRules::default())
        .iter()
        .map(|p| p.class)
        .max()
        .unwrap()
}

#[test]
fn plain_reads_are_reads() {
    for line in [
        "ls -la",
        "cat a.txt | grep x | wc -l",
        "git status && git diff HEAD~1",
        "find . -name '*.rs' -type f",
        "echo hi 2>&1 >/dev/null",
        "",
        "X=1",
        "cd output && ls",
    ] {
        assert_eq!(class(line), Class::Reads, "{line}");
    }
}

#[test]
fn work_in_the_workspace_writes() {
    for line in [
        "mkdir -p out && cp a b",
        "python3 make_chart.py",
        "echo hi > notes.txt",
        "sort -o sorted.txt data.txt",
        "find . -name x -fprint list",
        "git commit -am wip",
        "git -c core.pager=less log",
        "bash build.sh",
    ] {
        assert_eq!(class(line), Class::Writes, "{line}");
    }
}

#[test]
fn compound_lines_take_their_riskiest_part() {
    for line in [
        "ls; rm -rf x",
        "ls && rm -r -f x",
        "echo $(curl https://example.com)",
        "echo \"$(curl https://example.com)\"",
        "echo `wget x`",
        "bash -c 'ls; rm -fr /tmp/x'",
        "sh -ec \"pip install requests\"",
        "eval 'curl x'",
        "(cd a && rm -Rf b)",
        "{ ls; curl x; }",
        "if true; then git push; fi",
        "for f in $(curl x); do echo $f; done",
        "f() { rm -rf /; }",
        "cat <(curl x)",
        "diff <(ls) >(curl -d @- x)",
        "sudo ls",
        "env A=1 timeout 10 curl x",
        "xargs -I {} rm -rf {}",
        "find . -exec rm -rf {} \\;",
        "find . -delete",
        "nohup nice -n 5 wget x &",
        "/usr/bin/curl x",
        "\"curl\" x",
        "X=$(curl x) true",
        "echo ${X:-$(curl x)} > /dev/null",
        "[[ $(curl x) == y ]]",
        "(( $(curl x) + 1 ))",
        "cat <<EOF\n$(curl x)\nEOF",
        "bash <<EOF\nrm -rf out\nEOF",
        "python3 -m pip install pandas",
        "git clean -fdx",
        "curl x | bash",
    ] {
        assert!(class(line) >= Class::Risky, "{line}: {:?}", class(line));
    }
}

#[test]
fn a_quoted_here_document_is_data() {
    assert_eq!(class("cat <<'EOF'\n$(curl x)\nEOF"), Class::Reads);
    assert_eq!(class("echo 'rm -rf x; curl y'"), Class::Reads);
    assert_eq!(class("grep -r curl ."), Class::Reads);
}

#[test]
fn what_cannot_be_read_is_opaque() {
    for line in [
        "$CMD -rf x",
        "\"$(echo rm)\" -rf x",
        "eval \"$X\"",
        "bash -c \"$SCRIPT\"",
        "if then fi ((",
        "echo 'unterminated",
        "env -S 'rm -rf x'",
        "curl x | sh -s",
    ] {
        assert!(class(line) >= Class::Risky, "{line}: {:?}", class(line));
    }
    assert_eq!(class("$CMD"), Class::Opaque);
}

#[test]
fn deep_nesting_is_opaque_not_a_crash() {
    let deep = format!("{}x{}", "$(".repeat(5000), ")".repeat(5000));
    assert_eq!(class(&deep), Class::Opaque);
    let keywords = "if true; then ".repeat(2000);
    assert_eq!(class(&keywords), Class::Opaque);
    let long = "ls; ".repeat(30_000);
    assert_eq!(class(&long), Class::Opaque);
    let scripts = (0..12).fold("rm -rf x".to_string(), |inner, _| {
        format!("echo $({inner})")
    });
    assert_eq!(class(&scripts), Class::Opaque);
}

#[test]
fn operator_rules_allow_and_deny() {
    let rules = CommandRules {
        allow: vec!["curl http://localhost".into()],
        ask: vec!["curl".into()],
        deny: vec!["shutdown".into(), "git push --force".into()],
    };
    let class = |line: &str| {
        read_line(line, &rules)
            .iter()
            .map(|p| p.class)
            .max()
            .unwrap()
    };
    assert_eq!(class("curl http://localhost"), Class::Allowed);
    assert_eq!(class("curl http://example.com"), Class::Risky);
    assert_eq!(class("ls; shutdown -h now"), Class::Denied);
    assert_eq!(class("git push origin --force"), Class::Denied);
    assert_eq!(class("echo $(shutdown)"), Class::Denied);
    let parts = read_line("ls && shutdown now", &rules);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].why, "rule \"shutdown\"");
}

//! Unit tests of the store.

use super::*;
use crate::agent::Conversation;
use crate::auth::Owner;
use crate::protocol::{ChatEvent, SeqEvent};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    (dir, store)
}

fn at(owner: &str, conversation: &str) -> SessionKey {
    SessionKey::new(Owner::client(owner), conversation)
}

#[test]
fn keys_are_owner_then_conversation() {
    let session = at("alice", "c1");
    assert_eq!(key(&session), b"alice\x1fc1");
    assert_eq!(prefix(&session), b"alice\x1fc1\x1f");
}

#[test]
fn history_round_trips_and_truncates() {
    let (_d, store) = open();
    let mut c = Conversation::new();
    c.push_user("one");
    c.push_user("two");
    c.push_user("three");
    store
        .save_history(&at("alice", "c1"), 0, &c.entries()[0..])
        .unwrap();
    store
        .save_history(&at("alice", "c10"), 0, &c.entries()[..1])
        .unwrap();
    assert_eq!(store.load_history(&at("alice", "c1")).unwrap(), c.entries());
    c.drop_last_exchange();
    c.push_user("three again");
    store
        .save_history(&at("alice", "c1"), 2, &c.entries()[2..])
        .unwrap();
    assert_eq!(store.load_history(&at("alice", "c1")).unwrap(), c.entries());
    assert_eq!(store.load_history(&at("alice", "c10")).unwrap().len(), 1);
    assert!(store.load_history(&at("bob", "c1")).unwrap().is_empty());
}

#[test]
fn replaced_versions_are_kept_per_owner_and_taken_once() {
    let (_d, store) = open();
    let mut c = Conversation::new();
    c.push_user("one");
    c.push_assistant("a", vec![], Default::default());
    let id = c.entries()[0].id.clone();
    let branch = HistoryBranch {
        after: None,
        entries: c.entries().to_vec(),
    };
    store.save_branch(&at("alice", "c1"), &branch).unwrap();
    assert_eq!(store.take_branch(&at("bob", "c1"), &id).unwrap(), None);
    assert_eq!(store.take_branch(&at("alice", "c2"), &id).unwrap(), None);
    store.clear_history(&at("alice", "c2")).unwrap();
    assert_eq!(
        store.take_branch(&at("alice", "c1"), &id).unwrap(),
        Some(branch.clone())
    );
    assert_eq!(store.take_branch(&at("alice", "c1"), &id).unwrap(), None);
    store.save_branch(&at("alice", "c1"), &branch).unwrap();
    store.clear_history(&at("alice", "c1")).unwrap();
    assert_eq!(store.take_branch(&at("alice", "c1"), &id).unwrap(), None);
}

#[test]
fn history_chunks_append_and_cut_in_the_middle() {
    let (_d, store) = open();
    let mut c = Conversation::new();
    for turn in 0..3 {
        let from = c.len();
        c.push_user(&format!("q{turn}"));
        c.push_assistant(&format!("a{turn}"), vec![], Default::default());
        store
            .save_history(&at("o", "c"), from, &c.entries()[from..])
            .unwrap();
    }
    assert_eq!(store.load_history(&at("o", "c")).unwrap(), c.entries());
    // Edit the second answer away: the cut falls inside the second chunk.
    let mut edited = Conversation::from_entries(c.entries()[..3].to_vec());
    edited.push_user("q1 again");
    store
        .save_history(&at("o", "c"), 3, &edited.entries()[3..])
        .unwrap();
    assert_eq!(store.load_history(&at("o", "c")).unwrap(), edited.entries());
    // Everything cleared, then one new turn.
    let mut fresh = Conversation::new();
    fresh.push_user("new");
    store
        .save_history(&at("o", "c"), 0, &fresh.entries()[0..])
        .unwrap();
    assert_eq!(store.load_history(&at("o", "c")).unwrap(), fresh.entries());
}

#[test]
fn conversations_are_per_owner_and_newest_first() {
    let (_d, store) = open();
    store
        .put_conversation(&at("alice", "a"), serde_json::json!({"title": "A", "x": 1}))
        .unwrap();
    store
        .touch_conversation(&at("alice", "b"), "hello world")
        .unwrap();
    let list = store.list_conversations("alice").unwrap();
    assert_eq!(
        list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(list[0].title, "hello world");
    assert_eq!(list[1].to_json()["x"], 1);
    assert!(store.list_conversations("alic").unwrap().is_empty());
    assert!(store.delete_conversation(&at("alice", "a")).unwrap());
    assert!(!store.delete_conversation(&at("bob", "b")).unwrap());
    assert_eq!(store.list_conversations("alice").unwrap().len(), 1);
}

fn token(seq: u64, delta: &str) -> SeqEvent {
    SeqEvent {
        seq,
        event: ChatEvent::Token {
            delta: delta.into(),
        },
    }
}

#[test]
fn running_turns_become_interrupted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).unwrap();
        store.begin_turn(&at("o", "c"), 1).unwrap();
        store
            .append_turn(&at("o", "c"), TurnState::Running, 5, &[token(4, "par")])
            .unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let turn = store.load_turn(&at("o", "c")).unwrap().unwrap();
    assert_eq!(turn.state, TurnState::Interrupted);
    let seqs: Vec<u64> = turn.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 5, 6]);
    assert_eq!(turn.events[2].event, ChatEvent::Stop);
    assert_eq!(turn.next_seq, 7);
}

#[test]
fn a_turn_is_appended_and_a_late_checkpoint_never_undoes_its_end() {
    let (_dir, store) = open();
    store.begin_turn(&at("o", "c"), 1).unwrap();
    store
        .append_turn(&at("o", "c"), TurnState::Running, 5, &[token(4, "abcd")])
        .unwrap();
    store
        .append_turn(&at("o", "c"), TurnState::Finished, 9, &[token(8, "efgh")])
        .unwrap();
    // A checkpoint that arrives after the end, and a start that does, change nothing.
    store
        .append_turn(&at("o", "c"), TurnState::Running, 7, &[token(6, "xy")])
        .unwrap();
    store.begin_turn(&at("o", "c"), 7).unwrap();
    let stored = store.load_turn(&at("o", "c")).unwrap().unwrap();
    assert_eq!((stored.state, stored.next_seq), (TurnState::Finished, 9));
    assert_eq!(stored.events, [token(4, "abcd"), token(8, "efgh")]);
    // The next turn starts where the last one ended, without the last one's events.
    store.begin_turn(&at("o", "c"), 9).unwrap();
    let stored = store.load_turn(&at("o", "c")).unwrap().unwrap();
    assert_eq!(stored.state, TurnState::Running);
    assert!(stored.events.is_empty());
    // Events of an old-format head (kept inside it) still load.
    let legacy = TurnRecord {
        state: TurnState::Finished,
        events: vec![token(1, "old")],
        next_seq: 2,
    };
    store
        .turns
        .insert(
            super::key(&at("o", "legacy")),
            serde_json::to_vec(&legacy).unwrap(),
        )
        .unwrap();
    assert_eq!(store.load_turn(&at("o", "legacy")).unwrap(), Some(legacy));
}

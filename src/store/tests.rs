use super::*;
use crate::agent::Conversation;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    (dir, store)
}

#[test]
fn history_round_trips_and_truncates() {
    let (_d, store) = open();
    let mut c = Conversation::new();
    c.push_user("one");
    c.push_user("two");
    c.push_user("three");
    store
        .save_history("alice", "c1", 0, &c.entries()[0..])
        .unwrap();
    store
        .save_history("alice", "c10", 0, &c.entries()[..1])
        .unwrap();
    assert_eq!(store.load_history("alice", "c1").unwrap(), c.entries());
    c.drop_last_exchange();
    c.push_user("three again");
    store
        .save_history("alice", "c1", 2, &c.entries()[2..])
        .unwrap();
    assert_eq!(store.load_history("alice", "c1").unwrap(), c.entries());
    assert_eq!(store.load_history("alice", "c10").unwrap().len(), 1);
    assert!(store.load_history("bob", "c1").unwrap().is_empty());
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
    store.save_branch("alice", "c1", &branch).unwrap();
    assert_eq!(store.take_branch("bob", "c1", &id).unwrap(), None);
    assert_eq!(store.take_branch("alice", "c2", &id).unwrap(), None);
    store.clear_history("alice", "c2").unwrap();
    assert_eq!(
        store.take_branch("alice", "c1", &id).unwrap(),
        Some(branch.clone())
    );
    assert_eq!(store.take_branch("alice", "c1", &id).unwrap(), None);
    store.save_branch("alice", "c1", &branch).unwrap();
    store.clear_history("alice", "c1").unwrap();
    assert_eq!(store.take_branch("alice", "c1", &id).unwrap(), None);
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
            .save_history("o", "c", from, &c.entries()[from..])
            .unwrap();
    }
    assert_eq!(store.load_history("o", "c").unwrap(), c.entries());
    // Edit the second answer away: the cut falls inside the second chunk.
    let mut edited = Conversation::from_entries(c.entries()[..3].to_vec());
    edited.push_user("q1 again");
    store
        .save_history("o", "c", 3, &edited.entries()[3..])
        .unwrap();
    assert_eq!(store.load_history("o", "c").unwrap(), edited.entries());
    // Everything cleared, then one new turn.
    let mut fresh = Conversation::new();
    fresh.push_user("new");
    store
        .save_history("o", "c", 0, &fresh.entries()[0..])
        .unwrap();
    assert_eq!(store.load_history("o", "c").unwrap(), fresh.entries());
}

#[test]
fn conversations_are_per_owner_and_newest_first() {
    let (_d, store) = open();
    store
        .put_conversation("alice", "a", serde_json::json!({"title": "A", "x": 1}))
        .unwrap();
    store
        .touch_conversation("alice", "b", "hello world")
        .unwrap();
    let list = store.list_conversations("alice").unwrap();
    assert_eq!(
        list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(list[0].title, "hello world");
    assert_eq!(list[1].to_json()["x"], 1);
    assert!(store.list_conversations("alic").unwrap().is_empty());
    assert!(store.delete_conversation("alice", "a").unwrap());
    assert!(!store.delete_conversation("bob", "b").unwrap());
    assert_eq!(store.list_conversations("alice").unwrap().len(), 1);
}

#[test]
fn running_turns_become_interrupted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).unwrap();
        let turn = TurnRecord {
            state: TurnState::Running,
            events: vec![SeqEvent {
                seq: 4,
                event: ChatEvent::Token {
                    delta: "par".into(),
                },
            }],
            next_seq: 5,
        };
        store.save_turn("o", "c", &turn).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let turn = store.load_turn("o", "c").unwrap().unwrap();
    assert_eq!(turn.state, TurnState::Interrupted);
    let seqs: Vec<u64> = turn.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 5, 6]);
    assert_eq!(turn.events[2].event, ChatEvent::Stop);
    assert_eq!(turn.next_seq, 7);
}

#[test]
fn a_late_checkpoint_never_replaces_the_final_record() {
    let (_dir, store) = open();
    let record = |state, next_seq| TurnRecord {
        state,
        events: Vec::new(),
        next_seq,
    };
    store
        .checkpoint_turn("o", "c", &record(TurnState::Running, 5))
        .unwrap();
    store
        .save_turn("o", "c", &record(TurnState::Finished, 9))
        .unwrap();
    store
        .checkpoint_turn("o", "c", &record(TurnState::Running, 7))
        .unwrap();
    let stored = store.load_turn("o", "c").unwrap().unwrap();
    assert_eq!((stored.state, stored.next_seq), (TurnState::Finished, 9));
    // The next turn starts where the last one ended.
    store
        .checkpoint_turn("o", "c", &record(TurnState::Running, 9))
        .unwrap();
    let stored = store.load_turn("o", "c").unwrap().unwrap();
    assert_eq!(stored.state, TurnState::Running);
}

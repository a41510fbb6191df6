//! File transfers through the room core: who gets offers and chunks, every refusal, the
//! byte rate, and what happens when people cancel or leave.

use conclave_proto::{ClientMessage, ErrorCode, FileEnd, ParticipantId, ServerMessage};

use crate::tests::{ROOM, Sim, error_code, sent_to};
use crate::{Effect, Limits};

const FILE: &str = "file-0123456789ab";

/// Base64 of `n` zero bytes.
fn b64(n: usize) -> String {
    let tail = ["", "AA==", "AAA="][n % 3];
    "AAAA".repeat(n / 3) + tail
}

fn offer(size: u64, to: Option<u64>) -> ClientMessage {
    ClientMessage::FileOffer {
        file: FILE.into(),
        size,
        text: None,
        ciphertext: Some("aGk=".into()),
        to: to.map(ParticipantId),
    }
}

/// A chunk of `plain` bytes (plus the 16-byte tag).
fn chunk(seq: u32, plain: usize, last: bool) -> ClientMessage {
    ClientMessage::FileChunk {
        file: FILE.into(),
        seq,
        data: b64(plain + 16),
        last,
    }
}

fn three() -> Sim {
    let mut s = Sim::new(Limits::default());
    s.join(1, ROOM, "Ada");
    s.join(2, ROOM, "Bob");
    s.join(3, ROOM, "Cy");
    s
}

fn cancels(effects: &[Effect], c: u64) -> Vec<(ParticipantId, FileEnd)> {
    sent_to(effects, c)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::FileCancel { by, reason, .. } => Some((by, reason)),
            _ => None,
        })
        .collect()
}

fn chunks(effects: &[Effect], c: u64) -> Vec<(u32, bool)> {
    sent_to(effects, c)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::FileChunk {
                seq, last, from, ..
            } => {
                assert_eq!(from, ParticipantId(1));
                Some((seq, last))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_file_reaches_everyone_else_in_order_and_is_then_forgotten() {
    let mut s = three();
    let e = s.msg(1, offer(5, None));
    for c in [2, 3] {
        assert!(matches!(
            &sent_to(&e, c)[..],
            [ServerMessage::FileOffer { from, size: 5, private: false, ciphertext: Some(_), .. }]
                if *from == ParticipantId(1)
        ));
    }
    assert!(
        sent_to(&e, 1).is_empty(),
        "the sender gets no answer: {e:?}"
    );
    let e = s.msg(1, chunk(0, 2, false));
    assert_eq!(chunks(&e, 2), [(0, false)]);
    assert_eq!(chunks(&e, 3), [(0, false)]);
    let e = s.msg(1, chunk(1, 3, true));
    assert_eq!(chunks(&e, 3), [(1, true)]);
    // done: the ID is free again, and a chunk after the last is refused
    assert_eq!(
        error_code(&s.msg(1, chunk(2, 2, true))),
        Some(ErrorCode::InvalidFile)
    );
    assert!(sent_to(&s.msg(1, offer(5, None)), 2).len() == 1);
}

#[test]
fn a_private_file_reaches_only_its_addressee() {
    let mut s = three();
    let e = s.msg(1, offer(2, Some(3)));
    assert!(sent_to(&e, 2).is_empty());
    assert!(matches!(
        &sent_to(&e, 3)[..],
        [ServerMessage::FileOffer { private: true, .. }]
    ));
    let e = s.msg(1, chunk(0, 2, true));
    assert!(chunks(&e, 2).is_empty());
    assert_eq!(chunks(&e, 3), [(0, true)]);
    assert_eq!(
        error_code(&s.msg(1, offer(2, Some(1)))),
        Some(ErrorCode::UnknownParticipant),
        "not to oneself"
    );
    assert_eq!(
        error_code(&s.msg(1, offer(2, Some(99)))),
        Some(ErrorCode::UnknownParticipant)
    );
}

#[test]
fn bad_offers_are_refused_and_register_nothing() {
    let mut s = three();
    let max = Limits::default().max_file_bytes;
    let with =
        |file: &str, size: u64, text: Option<&str>, ct: Option<&str>| ClientMessage::FileOffer {
            file: file.into(),
            size,
            text: text.map(str::to_owned),
            ciphertext: ct.map(str::to_owned),
            to: None,
        };
    for (m, code) in [
        (with("short", 1, None, Some("aGk=")), ErrorCode::InvalidFile),
        (
            with("file/0123456789ab", 1, None, Some("aGk=")),
            ErrorCode::InvalidFile,
        ),
        (with(FILE, 0, None, Some("aGk=")), ErrorCode::InvalidFile),
        (
            with(FILE, max + 1, None, Some("aGk=")),
            ErrorCode::InvalidFile,
        ),
        (with(FILE, 1, None, None), ErrorCode::InvalidFile),
        (
            with(FILE, 1, Some("{}"), Some("aGk=")),
            ErrorCode::InvalidFile,
        ),
        (with(FILE, 1, Some("{}"), None), ErrorCode::InvalidE2ee),
        (
            with(FILE, 1, None, Some("not base64")),
            ErrorCode::InvalidE2ee,
        ),
    ] {
        let e = s.msg(1, m.clone());
        assert_eq!(error_code(&e), Some(code), "{m:?}");
        assert_eq!(e.len(), 1, "{m:?}: {e:?}");
    }
    // nothing was registered: a chunk finds no transfer
    assert_eq!(
        error_code(&s.msg(1, chunk(0, 2, true))),
        Some(ErrorCode::InvalidFile)
    );
    // alone in a room, there is nobody to send to
    let mut alone = Sim::new(Limits::default());
    alone.join(1, ROOM, "Ada");
    assert_eq!(
        error_code(&alone.msg(1, offer(2, None))),
        Some(ErrorCode::InvalidFile)
    );
}

#[test]
fn file_offers_as_text_only_without_e2ee() {
    let mut s = Sim::without_e2ee(Limits::default());
    s.join(1, ROOM, "Ada");
    s.join(2, ROOM, "Bob");
    let e = s.msg(1, offer(2, None));
    assert_eq!(error_code(&e), Some(ErrorCode::E2eeOff));
    let e = s.msg(
        1,
        ClientMessage::FileOffer {
            file: FILE.into(),
            size: 2,
            text: Some(r#"{"name":"a.txt"}"#.into()),
            ciphertext: None,
            to: None,
        },
    );
    assert!(matches!(
        &sent_to(&e, 2)[..],
        [ServerMessage::FileOffer { text: Some(_), .. }]
    ));
}

#[test]
fn a_bad_chunk_ends_the_transfer_for_everyone() {
    let cases: Vec<(&str, Vec<ClientMessage>)> = vec![
        ("out of order", vec![chunk(1, 2, false)]),
        (
            "longer than offered",
            vec![chunk(0, 5, false), chunk(1, 2, false)],
        ),
        ("ends short", vec![chunk(0, 2, true)]),
        (
            "only a tag",
            vec![
                chunk(0, 2, false),
                ClientMessage::FileChunk {
                    file: FILE.into(),
                    seq: 1,
                    data: b64(15),
                    last: false,
                },
            ],
        ),
        (
            "not base64",
            vec![ClientMessage::FileChunk {
                file: FILE.into(),
                seq: 0,
                data: "!!!!".into(),
                last: false,
            }],
        ),
        (
            "too big",
            vec![ClientMessage::FileChunk {
                file: FILE.into(),
                seq: 0,
                data: b64(3 * 30_000),
                last: false,
            }],
        ),
    ];
    for (what, msgs) in cases {
        let mut s = three();
        s.msg(1, offer(5, None));
        let mut e = Vec::new();
        for m in msgs {
            e = s.msg(1, m);
        }
        assert_eq!(
            error_code(&e),
            Some(ErrorCode::InvalidFile),
            "{what}: {e:?}"
        );
        for c in [1, 2, 3] {
            assert_eq!(
                cancels(&e, c),
                [(ParticipantId(1), FileEnd::Refused)],
                "{what}: to {c}"
            );
        }
        // gone
        assert_eq!(
            error_code(&s.msg(1, chunk(0, 5, true))),
            Some(ErrorCode::InvalidFile),
            "{what}"
        );
    }
}

#[test]
fn only_the_sender_sends_chunks_and_in_flight_files_are_capped() {
    let mut s = three();
    s.msg(1, offer(5, None));
    let e = s.msg(2, chunk(0, 5, true));
    assert_eq!(error_code(&e), Some(ErrorCode::InvalidFile));
    assert!(chunks(&e, 3).is_empty());
    assert_eq!(
        error_code(&s.msg(2, offer(5, None))),
        Some(ErrorCode::InvalidFile),
        "ID taken"
    );
    let max = Limits::default().max_files_in_flight;
    for i in 1..max {
        let m = ClientMessage::FileOffer {
            file: format!("{FILE}{i}"),
            size: 5,
            text: None,
            ciphertext: Some("aGk=".into()),
            to: None,
        };
        assert_eq!(error_code(&s.msg(1, m)), None);
    }
    let m = ClientMessage::FileOffer {
        file: format!("{FILE}x"),
        size: 5,
        text: None,
        ciphertext: Some("aGk=".into()),
        to: None,
    };
    let e = s.msg(1, m);
    assert_eq!(error_code(&e), Some(ErrorCode::InvalidFile));
    assert!(
        sent_to(&e, 2).is_empty(),
        "a refused offer reaches nobody: {e:?}"
    );
}

#[test]
fn cancels_and_leaving() {
    // the sender cancels: everyone hears it
    let mut s = three();
    s.msg(1, offer(5, None));
    let e = s.msg(1, ClientMessage::FileCancel { file: FILE.into() });
    assert_eq!(cancels(&e, 2), [(ParticipantId(1), FileEnd::Cancelled)]);
    assert_eq!(cancels(&e, 3), [(ParticipantId(1), FileEnd::Cancelled)]);
    assert!(cancels(&e, 1).is_empty());

    // a recipient cancels: only it stops getting chunks; the last one tells the sender
    let mut s = three();
    s.msg(1, offer(5, None));
    let e = s.msg(2, ClientMessage::FileCancel { file: FILE.into() });
    assert!(e.is_empty(), "{e:?}");
    let e = s.msg(1, chunk(0, 2, false));
    assert!(chunks(&e, 2).is_empty());
    assert_eq!(chunks(&e, 3), [(0, false)]);
    let e = s.msg(3, ClientMessage::FileCancel { file: FILE.into() });
    assert_eq!(cancels(&e, 1), [(ParticipantId(3), FileEnd::Cancelled)]);
    assert_eq!(
        error_code(&s.msg(1, chunk(1, 3, true))),
        Some(ErrorCode::InvalidFile)
    );

    // not in it: refused
    let mut s = three();
    s.msg(1, offer(5, Some(2)));
    assert_eq!(
        error_code(&s.msg(3, ClientMessage::FileCancel { file: FILE.into() })),
        Some(ErrorCode::InvalidFile)
    );

    // the sender leaves: the recipients hear it
    let e = s.input(crate::Input::Closed(
        crate::ConnId(1),
        conclave_proto::LeaveReason::Disconnected,
    ));
    assert_eq!(cancels(&e, 2), [(ParticipantId(1), FileEnd::Left)]);

    // the only recipient leaves: the sender hears it
    let mut s = three();
    s.msg(1, offer(5, Some(2)));
    let e = s.input(crate::Input::Closed(
        crate::ConnId(2),
        conclave_proto::LeaveReason::Left,
    ));
    assert_eq!(cancels(&e, 1), [(ParticipantId(2), FileEnd::Cancelled)]);
}

#[test]
fn losing_the_files_permission_ends_the_transfer() {
    let mut s = three();
    s.msg(2, offer(5, None));
    // Ada (the first, a moderator in an open room) takes files away from participants.
    let p = conclave_proto::Permissions {
        files: false,
        ..Default::default()
    };
    s.msg(
        1,
        ClientMessage::SetPermissions {
            role: conclave_proto::Role::Participant,
            permissions: p,
        },
    );
    let e = s.msg(
        2,
        ClientMessage::FileChunk {
            file: FILE.into(),
            seq: 0,
            data: b64(21),
            last: true,
        },
    );
    assert_eq!(error_code(&e), Some(ErrorCode::Forbidden));
    assert_eq!(cancels(&e, 3), [(ParticipantId(2), FileEnd::Refused)]);
    let m = ClientMessage::FileOffer {
        file: format!("{FILE}2"),
        size: 5,
        text: None,
        ciphertext: Some("aGk=".into()),
        to: None,
    };
    assert_eq!(error_code(&s.msg(2, m)), Some(ErrorCode::Forbidden));
}

#[test]
fn chunks_are_limited_by_bytes_not_messages() {
    let chunk_bytes = 3 * 1400; // 4200 bytes decoded, 5600 base64 characters
    let limits = Limits {
        file_bytes_per_second: 20_000,
        messages_per_second: 1.0,
        message_burst: 3.0,
        ..Limits::default()
    };
    let mut s = Sim::new(limits);
    s.join(1, ROOM, "Ada");
    s.join(2, ROOM, "Bob");
    s.msg(1, offer(1_000_000, None));
    // A burst of two seconds' worth (40 000 tokens, 5 600 a chunk) passes at once (Sim
    // advances 100 ms a step), although the message rate is 1 per second.
    let mut sent = 0;
    let mut refused = None;
    for seq in 0..20 {
        let e = s.msg(
            1,
            ClientMessage::FileChunk {
                file: FILE.into(),
                seq,
                data: b64(chunk_bytes),
                last: false,
            },
        );
        if let Some(code) = error_code(&e) {
            refused = Some((code, e));
            break;
        }
        sent += 1;
    }
    assert!(sent >= 7, "only {sent} chunks passed");
    let (code, e) = refused.expect("the byte rate stops a fast sender");
    assert_eq!(code, ErrorCode::RateLimited);
    assert_eq!(cancels(&e, 2), [(ParticipantId(1), FileEnd::Refused)]);
}

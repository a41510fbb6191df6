//! Room core tests on simulated time: every input is fed with an explicit `now`.

use std::time::{Duration, Instant};

use conclave_proto::{
    ClientMessage, E2eeMode, ErrorCode, LeaveReason, MeetingSettings, ParticipantId, ServerMessage,
    Source,
};

use crate::access::ModAction;
use crate::{ConnId, Effect, Input, Limits, LogRecord, MediaCommand, Peer, RoomCore};

pub(crate) const ROOM: &str = "roomroomroomroom01";

pub(crate) struct Sim {
    pub(crate) core: RoomCore,
    now: Instant,
}

impl Sim {
    pub(crate) fn new(limits: Limits) -> Self {
        Sim {
            core: RoomCore::new(limits),
            now: Instant::now(),
        }
    }
    pub(crate) fn without_e2ee(limits: Limits) -> Self {
        Sim {
            core: RoomCore::with_settings(
                limits,
                MeetingSettings {
                    e2ee: E2eeMode::Off,
                    ..MeetingSettings::default()
                },
            ),
            now: Instant::now(),
        }
    }
    pub(crate) fn input(&mut self, i: Input) -> Vec<Effect> {
        self.now += Duration::from_millis(100);
        self.core.handle(self.now, i)
    }
    pub(crate) fn join(&mut self, c: u64, room: &str, name: &str) -> Vec<Effect> {
        self.input(Input::Connected(ConnId(c), Peer::default()));
        self.input(Input::Message(
            ConnId(c),
            ClientMessage::Join {
                v: 1,
                room: room.into(),
                name: name.into(),
                password: None,
                token: None,
            },
        ))
    }
    pub(crate) fn msg(&mut self, c: u64, m: ClientMessage) -> Vec<Effect> {
        self.input(Input::Message(ConnId(c), m))
    }
}

pub(crate) fn error_code(effects: &[Effect]) -> Option<ErrorCode> {
    effects.iter().find_map(|e| match e {
        Effect::Send(_, ServerMessage::Error(err)) => Some(err.code),
        _ => None,
    })
}

fn media(effects: &[Effect]) -> Vec<MediaCommand> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Media(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn sent_to(effects: &[Effect], c: u64) -> Vec<ServerMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(to, m) if *to == ConnId(c) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn join_announces_and_lists_participants() {
    let mut s = Sim::new(Limits::default());
    let e1 = s.join(1, ROOM, "Ada");
    assert!(
        matches!(&sent_to(&e1, 1)[0], ServerMessage::Joined { participants, id, .. }
        if participants.is_empty() && *id == ParticipantId(1))
    );
    assert_eq!(
        media(&e1),
        vec![MediaCommand::AddParticipant {
            participant: ParticipantId(1),
            room: conclave_proto::RoomId::parse(ROOM).unwrap(),
        }]
    );
    let e2 = s.join(2, ROOM, "  Bob  ");
    match &sent_to(&e2, 2)[0] {
        ServerMessage::Joined { participants, .. } => {
            assert_eq!(participants.len(), 1);
            assert_eq!(participants[0].name, "Ada");
        }
        m => panic!("unexpected {m:?}"),
    }
    match &sent_to(&e2, 1)[0] {
        ServerMessage::ParticipantJoined { participant } => assert_eq!(participant.name, "Bob"),
        m => panic!("unexpected {m:?}"),
    }
    assert_eq!(s.core.room_count(), 1);
    assert_eq!(s.core.participant_count(), 2);
}

#[test]
fn publish_subscribes_others_and_late_joiners() {
    let mut s = Sim::new(Limits::default());
    s.join(1, ROOM, "Ada");
    s.join(2, ROOM, "Bob");
    let e = s.msg(
        1,
        ClientMessage::Publish {
            source: Source::Camera,
        },
    );
    assert_eq!(
        media(&e),
        vec![
            MediaCommand::SetPublishing {
                publisher: ParticipantId(1),
                source: Source::Camera,
                allowed: true
            },
            MediaCommand::Subscribe {
                subscriber: ParticipantId(2),
                publisher: ParticipantId(1),
                source: Source::Camera
            }
        ]
    );
    assert!(
        matches!(&sent_to(&e, 2)[0], ServerMessage::ParticipantUpdated { participant }
        if participant.sources == vec![Source::Camera])
    );
    // Publishing twice changes nothing.
    assert!(
        s.msg(
            1,
            ClientMessage::Publish {
                source: Source::Camera
            }
        )
        .is_empty()
    );
    // A late joiner is subscribed to what is already published.
    let e3 = s.join(3, ROOM, "Cy");
    assert!(media(&e3).contains(&MediaCommand::Subscribe {
        subscriber: ParticipantId(3),
        publisher: ParticipantId(1),
        source: Source::Camera
    }));
    let e = s.msg(
        1,
        ClientMessage::Unpublish {
            source: Source::Camera,
        },
    );
    let m = media(&e);
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m.contains(&MediaCommand::Unsubscribe {
        subscriber: ParticipantId(3),
        publisher: ParticipantId(1),
        source: Source::Camera
    }));
}

#[test]
fn leave_unsubscribes_removes_and_closes_empty_rooms() {
    let mut s = Sim::new(Limits::default());
    s.join(1, ROOM, "Ada");
    s.join(2, ROOM, "Bob");
    s.msg(
        2,
        ClientMessage::Publish {
            source: Source::Microphone,
        },
    );
    let e = s.msg(2, ClientMessage::Leave {});
    assert_eq!(
        media(&e),
        vec![
            MediaCommand::Unsubscribe {
                subscriber: ParticipantId(1),
                publisher: ParticipantId(2),
                source: Source::Microphone
            },
            MediaCommand::RemoveParticipant {
                participant: ParticipantId(2)
            }
        ]
    );
    assert!(
        matches!(&sent_to(&e, 1)[0], ServerMessage::ParticipantLeft { id, reason: LeaveReason::Left } if *id == ParticipantId(2))
    );
    assert!(matches!(
        &sent_to(&e, 2)[0],
        ServerMessage::Bye {
            reason: LeaveReason::Left,
            ..
        }
    ));
    assert!(e.contains(&Effect::Close(ConnId(2))));
    // The socket then closes: nothing more happens.
    assert!(
        s.input(Input::Closed(ConnId(2), LeaveReason::Disconnected))
            .is_empty()
    );
    let e = s.input(Input::Closed(ConnId(1), LeaveReason::Timeout));
    assert_eq!(
        media(&e),
        vec![MediaCommand::RemoveParticipant {
            participant: ParticipantId(1)
        }]
    );
    assert_eq!(s.core.room_count(), 0);
    assert_eq!(s.core.participant_count(), 0);
    assert_eq!(s.core.connection_count(), 0);
}

#[test]
fn messages_before_join_and_double_join_are_refused() {
    let mut s = Sim::new(Limits::default());
    s.input(Input::Connected(ConnId(1), Peer::default()));
    for m in [
        ClientMessage::Answer { sdp: "v=0".into() },
        ClientMessage::Publish {
            source: Source::Camera,
        },
        ClientMessage::Leave {},
    ] {
        let e = s.msg(1, m);
        assert_eq!(error_code(&e), Some(ErrorCode::NotJoined));
        assert!(media(&e).is_empty());
    }
    s.msg(
        1,
        ClientMessage::Join {
            v: 1,
            room: ROOM.into(),
            name: "Ada".into(),
            password: None,
            token: None,
        },
    );
    let e = s.msg(
        1,
        ClientMessage::Join {
            v: 1,
            room: ROOM.into(),
            name: "Ada".into(),
            password: None,
            token: None,
        },
    );
    assert_eq!(error_code(&e), Some(ErrorCode::AlreadyJoined));
    assert_eq!(s.core.participant_count(), 1);
}

#[test]
fn join_validation() {
    let mut s = Sim::new(Limits::default());
    let cases: [(u32, &str, String, ErrorCode); 6] = [
        (2, ROOM, "Ada".into(), ErrorCode::UnsupportedVersion),
        (1, "short", "Ada".into(), ErrorCode::InvalidRoom),
        (
            1,
            "has spaces in it!!",
            "Ada".into(),
            ErrorCode::InvalidRoom,
        ),
        (1, ROOM, "   ".into(), ErrorCode::InvalidName),
        (1, ROOM, "x".repeat(65), ErrorCode::InvalidName),
        (1, ROOM, "a\u{7}b".into(), ErrorCode::InvalidName),
    ];
    s.input(Input::Connected(ConnId(9), Peer::default()));
    for (v, room, name, code) in cases {
        let e = s.msg(
            9,
            ClientMessage::Join {
                v,
                room: room.into(),
                name: name.clone(),
                password: None,
                token: None,
            },
        );
        assert_eq!(error_code(&e), Some(code), "{v} {room} {name:?}");
        assert_eq!(s.core.room_count(), 0);
    }
}

#[test]
fn room_and_server_limits() {
    let mut s = Sim::new(Limits {
        max_rooms: 1,
        max_participants_per_room: 2,
        max_participants: 3,
        ..Limits::default()
    });
    s.join(1, ROOM, "a");
    s.join(2, ROOM, "b");
    assert_eq!(error_code(&s.join(3, ROOM, "c")), Some(ErrorCode::RoomFull));
    assert_eq!(
        error_code(&s.join(4, "otherroomotherroom", "d")),
        Some(ErrorCode::ServerFull)
    );
    assert_eq!(s.core.participant_count(), 2);
}

#[test]
fn rate_limit_on_simulated_time() {
    let mut core = RoomCore::new(Limits {
        messages_per_second: 2.0,
        message_burst: 3.0,
        ..Limits::default()
    });
    let t0 = Instant::now();
    core.handle(t0, Input::Connected(ConnId(1), Peer::default()));
    let garbage = || {
        Input::Malformed(
            ConnId(1),
            conclave_proto::ProtocolError::new(ErrorCode::BadJson, "x"),
        )
    };
    // The burst of 3 is answered with its own errors.
    for _ in 0..3 {
        assert_eq!(
            error_code(&core.handle(t0, garbage())),
            Some(ErrorCode::BadJson)
        );
    }
    // The 4th at the same instant is dropped with one rate_limited error, then silence.
    assert_eq!(
        error_code(&core.handle(t0, garbage())),
        Some(ErrorCode::RateLimited)
    );
    assert!(core.handle(t0, garbage()).is_empty());
    // Half a second later one token has refilled.
    let t1 = t0 + Duration::from_millis(500);
    assert_eq!(
        error_code(&core.handle(t1, garbage())),
        Some(ErrorCode::BadJson)
    );
    // Time going backwards does not panic or add tokens.
    assert!(core.handle(t0, garbage()).is_empty());
}

#[test]
fn answers_are_not_rate_limited() {
    let mut core = RoomCore::new(Limits {
        messages_per_second: 1.0,
        message_burst: 1.0,
        ..Limits::default()
    });
    let t0 = Instant::now();
    core.handle(t0, Input::Connected(ConnId(1), Peer::default()));
    core.handle(
        t0,
        Input::Message(
            ConnId(1),
            ClientMessage::Join {
                v: 1,
                room: ROOM.into(),
                name: "Ada".into(),
                password: None,
                token: None,
            },
        ),
    );
    for _ in 0..10 {
        let e = core.handle(
            t0,
            Input::Message(ConnId(1), ClientMessage::Answer { sdp: "v=0".into() }),
        );
        assert!(
            matches!(e[0], Effect::Media(MediaCommand::Answer { .. })),
            "{e:?}"
        );
    }
    // Other messages are limited.
    let e = core.handle(
        t0,
        Input::Message(
            ConnId(1),
            ClientMessage::Publish {
                source: Source::Camera,
            },
        ),
    );
    assert_eq!(error_code(&e), Some(ErrorCode::RateLimited));
}

#[test]
fn chat_reaches_the_room_or_only_the_addressee_and_is_validated() {
    let mut s = Sim::without_e2ee(Limits {
        max_chat_chars: 10,
        ..Limits::default()
    });
    s.join(1, ROOM, "Ada");
    s.join(2, ROOM, "Bob");
    s.join(3, ROOM, "Cy");
    s.join(4, "otherroomotherroom", "Dee");
    let chat = |text: &str, to: Option<u64>| ClientMessage::Chat {
        text: Some(text.into()),
        ciphertext: None,
        to: to.map(ParticipantId),
    };
    // Room-wide: everyone else in the room, not the sender, not other rooms.
    let e = s.msg(1, chat("hello", None));
    let to: Vec<ConnId> = e
        .iter()
        .filter_map(|e| match e {
            Effect::Send(
                c,
                ServerMessage::Chat {
                    from,
                    text: Some(text),
                    ciphertext: None,
                    private: false,
                },
            ) if *from == ParticipantId(1) && text == "hello" => Some(*c),
            _ => None,
        })
        .collect();
    assert_eq!(to, vec![ConnId(2), ConnId(3)]);
    assert_eq!(e.len(), 2);
    // Private: only the addressee.
    let e = s.msg(1, chat("psst", Some(3)));
    assert_eq!(
        e,
        vec![Effect::Send(
            ConnId(3),
            ServerMessage::Chat {
                from: ParticipantId(1),
                text: Some("psst".into()),
                ciphertext: None,
                private: true
            }
        )]
    );
    // To someone in another room, to oneself, to nobody: refused, nothing delivered.
    for target in [4, 1, 99] {
        let e = s.msg(1, chat("x", Some(target)));
        assert_eq!(error_code(&e), Some(ErrorCode::UnknownParticipant));
        assert_eq!(e.len(), 1);
    }
    for bad in ["", "   ", "01234567890"] {
        let e = s.msg(1, chat(bad, None));
        assert_eq!(error_code(&e), Some(ErrorCode::InvalidChat), "{bad:?}");
        assert_eq!(e.len(), 1);
    }
    // Before join: refused.
    s.input(Input::Connected(ConnId(9), Peer::default()));
    assert_eq!(
        error_code(&s.msg(9, chat("hi", None))),
        Some(ErrorCode::NotJoined)
    );
}

#[test]
fn raised_hands_are_shown_to_everyone_and_in_lists() {
    let mut s = Sim::new(Limits::default());
    s.join(1, ROOM, "Ada");
    s.join(2, ROOM, "Bob");
    let e = s.msg(1, ClientMessage::RaiseHand { raised: true });
    assert_eq!(e.len(), 2, "sender and the other see it");
    assert!(e.iter().all(
        |e| matches!(e, Effect::Send(_, ServerMessage::ParticipantUpdated { participant })
        if participant.hand_raised && participant.id == ParticipantId(1))
    ));
    assert!(
        s.msg(1, ClientMessage::RaiseHand { raised: true })
            .is_empty()
    );
    let e3 = s.join(3, ROOM, "Cy");
    match &sent_to(&e3, 3)[0] {
        ServerMessage::Joined { participants, .. } => assert!(participants[0].hand_raised),
        m => panic!("unexpected {m:?}"),
    }
    let e = s.msg(1, ClientMessage::RaiseHand { raised: false });
    assert_eq!(e.len(), 3);
}

#[test]
fn receive_video_is_the_senders_own_switch() {
    let mut s = Sim::new(Limits::default());
    s.join(1, ROOM, "Ada");
    s.join(2, ROOM, "Bob");
    let off = ClientMessage::ReceiveVideo { enabled: false };
    let e = s.msg(1, off.clone());
    assert_eq!(
        media(&e),
        vec![MediaCommand::SetReceiveVideo {
            participant: ParticipantId(1),
            enabled: false
        }]
    );
    // Nobody else is told: it is a local choice.
    assert!(e.iter().all(|x| !matches!(x, Effect::Send(..))), "{e:?}");
    // Repeating it changes nothing.
    assert!(s.msg(1, off).is_empty());
    let e = s.msg(1, ClientMessage::ReceiveVideo { enabled: true });
    assert_eq!(
        media(&e),
        vec![MediaCommand::SetReceiveVideo {
            participant: ParticipantId(1),
            enabled: true
        }]
    );
    // Only after join.
    s.input(Input::Connected(ConnId(3), Peer::default()));
    let e = s.msg(3, ClientMessage::ReceiveVideo { enabled: false });
    assert_eq!(error_code(&e), Some(ErrorCode::NotJoined));
    assert!(media(&e).is_empty());
}

#[test]
fn mls_reset_drops_the_group_and_refuses_messages_for_the_old_generation() {
    let mut s = Sim::new(Limits::default());
    s.join(1, ROOM, "Ada"); // the first in an open room moderates it
    s.join(2, ROOM, "Bob");
    let group = |generation| ClientMessage::MlsGroup {
        group_info: "R0kw".into(),
        generation,
    };
    let commit = |epoch, generation| ClientMessage::MlsCommit {
        epoch,
        commit: "Q0lU".into(),
        group_info: "R0kx".into(),
        generation,
    };
    let room = conclave_proto::RoomId::parse(ROOM).unwrap();
    let state = |s: &Sim| {
        let e = s.core.room_e2ee(&room).unwrap();
        (e.epoch, e.group_info, e.generation)
    };
    s.msg(1, group(0));
    s.msg(2, commit(0, 0));
    assert_eq!(state(&s), (Some(1), Some("R0kx".into()), 0));

    // Bob is no moderator: refused, nothing changes, nobody else hears of it.
    let e = s.msg(2, ClientMessage::MlsReset {});
    assert_eq!(error_code(&e), Some(ErrorCode::Forbidden));
    assert_eq!(e.len(), 1);
    assert_eq!(state(&s), (Some(1), Some("R0kx".into()), 0));

    // Ada resets: no group, generation 1, and both (Ada too) are told, in join order.
    let e = s.msg(1, ClientMessage::MlsReset {});
    assert!(matches!(
        e.last(),
        Some(Effect::Log(LogRecord::Moderated {
            action: ModAction::MlsReset,
            ..
        }))
    ));
    let e: Vec<Effect> = e
        .into_iter()
        .filter(|e| !matches!(e, Effect::Log(_)))
        .collect();
    let reset = ServerMessage::MlsReset {
        by: ParticipantId(1),
        generation: 1,
    };
    assert_eq!(
        e,
        vec![
            Effect::Send(ConnId(1), reset.clone()),
            Effect::Send(ConnId(2), reset)
        ]
    );
    assert_eq!(state(&s), (None, None, 1));

    // A commit for the old group (it was on its way) is refused with nothing to retry from.
    let old = ServerMessage::MlsRejected {
        epoch: None,
        group_info: None,
        generation: 0,
    };
    assert_eq!(sent_to(&s.msg(2, commit(1, 0)), 2), vec![old.clone()]);
    assert_eq!(sent_to(&s.msg(2, group(0)), 2), vec![old.clone()]);
    // A generation that does not exist is bad input.
    assert_eq!(
        error_code(&s.msg(2, group(2))),
        Some(ErrorCode::InvalidE2ee)
    );
    assert_eq!(state(&s), (None, None, 1));

    // The new group: created at epoch 0 of generation 1, advanced by a commit of generation 1.
    assert_eq!(
        sent_to(&s.msg(2, group(1)), 2),
        vec![ServerMessage::MlsAccepted {
            epoch: 0,
            generation: 1
        }]
    );
    // Epoch 0 is the new group's epoch now; the old group's commit from its epoch 0 must not
    // win it.
    let e = s.msg(1, commit(0, 0));
    assert_eq!(sent_to(&e, 1), vec![old]);
    assert!(sent_to(&e, 2).is_empty());
    let e = s.msg(1, commit(0, 1));
    assert_eq!(
        sent_to(&e, 1),
        vec![ServerMessage::MlsAccepted {
            epoch: 1,
            generation: 1
        }]
    );
    assert_eq!(sent_to(&e, 2).len(), 1, "Bob gets the commit relayed");
    assert_eq!(state(&s), (Some(1), Some("R0kx".into()), 1));

    // A newcomer learns the generation.
    let e = s.join(3, ROOM, "Cy");
    match &sent_to(&e, 3)[0] {
        ServerMessage::Joined { e2ee, .. } => {
            assert_eq!((e2ee.epoch, e2ee.generation), (Some(1), 1))
        }
        m => panic!("unexpected {m:?}"),
    }
}

#[test]
fn mls_reset_without_e2ee_is_refused() {
    let mut s = Sim::without_e2ee(Limits::default());
    s.join(1, ROOM, "Ada");
    let e = s.msg(1, ClientMessage::MlsReset {});
    assert_eq!(error_code(&e), Some(ErrorCode::E2eeOff));
    assert_eq!(e.len(), 1);
}

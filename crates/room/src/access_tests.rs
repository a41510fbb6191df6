//! Access control through the room core: the permission matrix (role x action x room state,
//! every cell), lobby, passwords and their throttle, bans, hard mute, access modes.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use conclave_proto::{
    ClientMessage, ErrorCode, LeaveReason, ParticipantId, Permissions, Role, RoomId, ServerMessage,
    Source,
};

use crate::access::{AccessMode, Action, Identity, authorize};
use crate::{
    AccessPolicy, ConnId, Effect, Input, Limits, MediaCommand, MeetingSettings, Peer, RoomCore,
};

const ROOM: &str = "accessroomaccess01";

struct World {
    core: RoomCore,
    now: Instant,
}

fn addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

fn account(user: &str) -> Identity {
    Identity::Account {
        username: user.into(),
        name: format!("{user} (account)"),
        moderator: true,
    }
}

fn guest(key: &str) -> Identity {
    Identity::Anonymous {
        guest_key: Some(key.into()),
    }
}

impl World {
    fn new(mode: AccessMode) -> World {
        World {
            core: RoomCore::with_access(
                Limits::default(),
                MeetingSettings::default(),
                AccessPolicy {
                    mode,
                    ..AccessPolicy::default()
                },
            ),
            now: Instant::now(),
        }
    }
    fn input(&mut self, i: Input) -> Vec<Effect> {
        self.now += Duration::from_millis(10);
        self.core.handle(self.now, i)
    }
    fn connect(&mut self, c: u64, identity: Identity) {
        self.connect_from(c, identity, addr(c as u8));
    }
    fn connect_from(&mut self, c: u64, identity: Identity, a: IpAddr) {
        self.input(Input::Connected(ConnId(c), Peer { addr: a, identity }));
    }
    fn join(&mut self, c: u64, password: Option<&str>) -> Vec<Effect> {
        self.send(
            c,
            ClientMessage::Join {
                v: 1,
                room: ROOM.into(),
                name: format!("person {c}"),
                password: password.map(str::to_owned),
                token: None,
            },
        )
    }
    fn enter(&mut self, c: u64, identity: Identity) -> Vec<Effect> {
        self.connect(c, identity);
        self.join(c, None)
    }
    fn send(&mut self, c: u64, m: ClientMessage) -> Vec<Effect> {
        self.input(Input::Message(ConnId(c), m))
    }
    fn room(&self) -> RoomId {
        RoomId::parse(ROOM).unwrap()
    }
    /// Everything observable about the room, to show a refused request changed nothing.
    fn snapshot(&self) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {}",
            self.core.room_participants(&self.room()),
            self.core.room_state(&self.room()),
            self.core.room_lobby(&self.room()),
            self.core.room_e2ee(&self.room()),
            self.core.participant_count()
        )
    }
}

fn to(effects: &[Effect], c: u64) -> Vec<ServerMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(t, m) if *t == ConnId(c) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn error_of(effects: &[Effect], c: u64) -> Option<(ErrorCode, String)> {
    to(effects, c).into_iter().find_map(|m| match m {
        ServerMessage::Error(e) => Some((e.code, e.message)),
        _ => None,
    })
}

fn joined_role(effects: &[Effect], c: u64) -> Option<Role> {
    to(effects, c).into_iter().find_map(|m| match m {
        ServerMessage::Joined { role, .. } => Some(role),
        _ => None,
    })
}

fn waits(effects: &[Effect], c: u64) -> Option<String> {
    to(effects, c).into_iter().find_map(|m| match m {
        ServerMessage::Lobby { message } => Some(message),
        _ => None,
    })
}

fn bye(effects: &[Effect], c: u64) -> Option<LeaveReason> {
    to(effects, c).into_iter().find_map(|m| match m {
        ServerMessage::Bye { reason, .. } => Some(reason),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------
// The permission matrix.

const MOD: u64 = 1;
const TARGET: u64 = 2;
const WAITER: u64 = 3;
const ACTOR: u64 = 10;

#[derive(Debug, Clone, Copy)]
enum State {
    /// The room's default permissions.
    Default,
    /// Participants and guests may do nothing.
    LockedDown,
    /// Default permissions, but a moderator stopped the actor's microphone and camera.
    ActorMuted,
}

const ROLES: [Role; 3] = [Role::Moderator, Role::Participant, Role::Guest];
const STATES: [State; 3] = [State::Default, State::LockedDown, State::ActorMuted];

/// A room in `open` mode: MOD (moderator), TARGET (publishing its microphone, camera stopped
/// by MOD), ACTOR with `role`, the room in `state`, an E2EE group (created by MOD), the lobby
/// on and WAITER knocking.
fn scene(role: Role, state: State) -> World {
    let mut w = World::new(AccessMode::Open);
    assert_eq!(
        joined_role(&w.enter(MOD, guest("m")), MOD),
        Some(Role::Moderator)
    );
    w.enter(TARGET, guest("t"));
    w.send(
        TARGET,
        ClientMessage::Publish {
            source: Source::Microphone,
        },
    );
    w.send(
        MOD,
        ClientMessage::Mute {
            participant: ParticipantId(TARGET),
            source: Source::Camera,
        },
    );
    assert_eq!(
        joined_role(&w.enter(ACTOR, guest("a")), ACTOR),
        Some(Role::Participant)
    );
    if role != Role::Participant {
        w.send(
            MOD,
            ClientMessage::SetRole {
                participant: ParticipantId(ACTOR),
                role,
            },
        );
    }
    let nothing = Permissions {
        unmute: false,
        camera: false,
        screen: false,
        chat: false,
        files: false,
        record: false,
    };
    match state {
        State::Default => {}
        State::LockedDown => {
            for role in [Role::Participant, Role::Guest] {
                w.send(
                    MOD,
                    ClientMessage::SetPermissions {
                        role,
                        permissions: nothing,
                    },
                );
            }
        }
        State::ActorMuted => {
            for source in [Source::Microphone, Source::Camera] {
                w.send(
                    MOD,
                    ClientMessage::Mute {
                        participant: ParticipantId(ACTOR),
                        source,
                    },
                );
            }
        }
    }
    // The room has an E2EE group, so that a refused `mls_reset` has something to keep.
    w.send(
        MOD,
        ClientMessage::MlsGroup {
            group_info: "R0kw".into(),
            generation: 0,
        },
    );
    w.send(MOD, ClientMessage::SetLobby { enabled: true });
    w.connect(WAITER, guest("w"));
    assert!(waits(&w.join(WAITER, None), WAITER).is_some());
    w
}

/// Every action a client can ask for, as the message the actor sends.
fn actions() -> Vec<(&'static str, Option<ClientMessage>, Action)> {
    use crate::access::ModAction as M;
    let t = ParticipantId(TARGET);
    let waiter = ParticipantId(WAITER);
    vec![
        (
            "publish microphone",
            Some(ClientMessage::Publish {
                source: Source::Microphone,
            }),
            Action::Publish(Source::Microphone),
        ),
        (
            "publish camera",
            Some(ClientMessage::Publish {
                source: Source::Camera,
            }),
            Action::Publish(Source::Camera),
        ),
        (
            "publish screen",
            Some(ClientMessage::Publish {
                source: Source::Screen,
            }),
            Action::Publish(Source::Screen),
        ),
        (
            "chat",
            Some(ClientMessage::Chat {
                text: None,
                ciphertext: Some("aGk=".into()),
                to: None,
            }),
            Action::Chat,
        ),
        (
            "raise hand",
            Some(ClientMessage::RaiseHand { raised: true }),
            Action::RaiseHand,
        ),
        (
            "share file",
            Some(ClientMessage::FileOffer {
                file: "matrixfilematrix".into(),
                size: 10,
                text: None,
                ciphertext: Some("aGk=".into()),
                to: None,
            }),
            Action::ShareFile,
        ),
        ("record", None, Action::Record),
        (
            "mute",
            Some(ClientMessage::Mute {
                participant: t,
                source: Source::Microphone,
            }),
            Action::Moderate(M::Mute),
        ),
        (
            "mute all",
            Some(ClientMessage::MuteAll {
                source: Source::Microphone,
            }),
            Action::Moderate(M::MuteAll),
        ),
        (
            "allow",
            Some(ClientMessage::Allow {
                participant: t,
                source: Source::Camera,
            }),
            Action::Moderate(M::Allow),
        ),
        (
            "remove",
            Some(ClientMessage::Remove {
                participant: t,
                message: None,
            }),
            Action::Moderate(M::Remove),
        ),
        (
            "ban",
            Some(ClientMessage::Ban {
                participant: t,
                message: None,
            }),
            Action::Moderate(M::Ban),
        ),
        (
            "lock",
            Some(ClientMessage::Lock { locked: true }),
            Action::Moderate(M::Lock),
        ),
        (
            "end meeting",
            Some(ClientMessage::EndMeeting {}),
            Action::Moderate(M::EndMeeting),
        ),
        (
            "grant moderator",
            Some(ClientMessage::SetRole {
                participant: t,
                role: Role::Moderator,
            }),
            Action::Moderate(M::SetRole),
        ),
        (
            "set password",
            Some(ClientMessage::SetPassword {
                password: Some("correct horse".into()),
            }),
            Action::Moderate(M::SetPassword),
        ),
        (
            "lobby off",
            Some(ClientMessage::SetLobby { enabled: false }),
            Action::Moderate(M::SetLobby),
        ),
        (
            "set permissions",
            Some(ClientMessage::SetPermissions {
                role: Role::Guest,
                permissions: Permissions::ALL,
            }),
            Action::Moderate(M::SetPermissions),
        ),
        (
            "admit",
            Some(ClientMessage::Admit {
                participant: waiter,
            }),
            Action::Moderate(M::Admit),
        ),
        (
            "deny",
            Some(ClientMessage::Deny {
                participant: waiter,
                message: None,
            }),
            Action::Moderate(M::Deny),
        ),
        (
            "reset encryption",
            Some(ClientMessage::MlsReset {}),
            Action::Moderate(M::MlsReset),
        ),
    ]
}

/// The expected answers, written out: for each action, three groups (Default, LockedDown,
/// ActorMuted) of three roles (moderator, participant, guest); 1 = allowed.
const EXPECTED: &[(&str, &str)] = &[
    ("publish microphone", "111 100 100"),
    ("publish camera", "111 100 100"),
    ("publish screen", "111 100 111"),
    ("chat", "111 100 111"),
    ("raise hand", "111 111 111"),
    ("share file", "111 100 111"),
    ("record", "100 100 100"),
    ("mute", "100 100 100"),
    ("mute all", "100 100 100"),
    ("allow", "100 100 100"),
    ("remove", "100 100 100"),
    ("ban", "100 100 100"),
    ("lock", "100 100 100"),
    ("end meeting", "100 100 100"),
    ("grant moderator", "100 100 100"),
    ("set password", "100 100 100"),
    ("lobby off", "100 100 100"),
    ("set permissions", "100 100 100"),
    ("admit", "100 100 100"),
    ("deny", "100 100 100"),
    ("reset encryption", "100 100 100"),
];

#[test]
fn permission_matrix_every_cell() {
    let actions = actions();
    assert_eq!(actions.len(), EXPECTED.len());
    let mut cells = 0;
    for ((name, msg, action), (ename, row)) in actions.into_iter().zip(EXPECTED) {
        assert_eq!(name, *ename);
        let row: Vec<bool> = row
            .chars()
            .filter(|c| *c != ' ')
            .map(|c| c == '1')
            .collect();
        assert_eq!(row.len(), 9, "{name}");
        for (si, state) in STATES.iter().enumerate() {
            for (ri, role) in ROLES.iter().enumerate() {
                let expect = row[si * 3 + ri];
                let cell = format!("{name} as {role:?} in {state:?}");
                let mut w = scene(*role, *state);
                // The pure decision...
                let denied: BTreeSet<Source> = match state {
                    State::ActorMuted => [Source::Microphone, Source::Camera].into(),
                    _ => BTreeSet::new(),
                };
                let room_state = w.core.room_state(&w.room()).unwrap();
                assert_eq!(
                    authorize(*role, &denied, &room_state, action).is_ok(),
                    expect,
                    "authorize: {cell}"
                );
                // ...and the core acting on the real message.
                if let Some(msg) = msg.clone() {
                    let before = w.snapshot();
                    let effects = w.send(ACTOR, msg);
                    let forbidden =
                        error_of(&effects, ACTOR).filter(|(c, _)| *c == ErrorCode::Forbidden);
                    if expect {
                        assert!(forbidden.is_none(), "{cell}: refused with {forbidden:?}");
                        assert!(!effects.is_empty(), "{cell}: allowed but nothing happened");
                    } else {
                        assert!(forbidden.is_some(), "{cell}: not refused: {effects:?}");
                        assert_eq!(
                            effects.len(),
                            1,
                            "{cell}: a refusal must change nothing: {effects:?}"
                        );
                        assert_eq!(w.snapshot(), before, "{cell}: state changed");
                    }
                }
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 21 * 9);
}

// ---------------------------------------------------------------------------------------
// Moderation.

#[test]
fn hard_mute_stops_the_source_at_the_packet_level_until_allowed() {
    let mut w = World::new(AccessMode::Open);
    w.enter(MOD, guest("m"));
    w.enter(TARGET, guest("t"));
    w.send(
        TARGET,
        ClientMessage::Publish {
            source: Source::Microphone,
        },
    );
    let e = w.send(
        MOD,
        ClientMessage::Mute {
            participant: ParticipantId(TARGET),
            source: Source::Microphone,
        },
    );
    assert!(e.contains(&Effect::Media(MediaCommand::SetPublishing {
        publisher: ParticipantId(TARGET),
        source: Source::Microphone,
        allowed: false
    })));
    assert!(e.contains(&Effect::Media(MediaCommand::Unsubscribe {
        subscriber: ParticipantId(MOD),
        publisher: ParticipantId(TARGET),
        source: Source::Microphone
    })));
    assert!(to(&e, TARGET).iter().any(|m| matches!(m,
        ServerMessage::SelfUpdated { permissions, .. } if !permissions.unmute)));
    // A modified client publishes again: refused, and nothing reaches the media plane.
    let e = w.send(
        TARGET,
        ClientMessage::Publish {
            source: Source::Microphone,
        },
    );
    assert_eq!(
        error_of(&e, TARGET).map(|e| e.0),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(e.len(), 1);
    w.send(
        MOD,
        ClientMessage::Allow {
            participant: ParticipantId(TARGET),
            source: Source::Microphone,
        },
    );
    let e = w.send(
        TARGET,
        ClientMessage::Publish {
            source: Source::Microphone,
        },
    );
    assert!(e.contains(&Effect::Media(MediaCommand::SetPublishing {
        publisher: ParticipantId(TARGET),
        source: Source::Microphone,
        allowed: true
    })));
}

#[test]
fn mute_all_spares_moderators_and_permissions_stop_running_sources() {
    let mut w = World::new(AccessMode::Open);
    w.enter(MOD, guest("m"));
    w.enter(2, guest("b"));
    w.enter(3, guest("c"));
    for c in [MOD, 2, 3] {
        w.send(
            c,
            ClientMessage::Publish {
                source: Source::Camera,
            },
        );
        w.send(
            c,
            ClientMessage::Publish {
                source: Source::Microphone,
            },
        );
    }
    w.send(
        MOD,
        ClientMessage::MuteAll {
            source: Source::Microphone,
        },
    );
    let ps = w.core.room_participants(&w.room()).unwrap();
    for p in &ps {
        let has_mic = p.sources.contains(&Source::Microphone);
        assert_eq!(has_mic, p.id == ParticipantId(MOD), "{p:?}");
    }
    // Cameras off for participants: running cameras stop.
    let e = w.send(
        MOD,
        ClientMessage::SetPermissions {
            role: Role::Participant,
            permissions: Permissions {
                camera: false,
                ..Permissions::default()
            },
        },
    );
    assert!(to(&e, 2).iter().any(
        |m| matches!(m, ServerMessage::RoomUpdated { room_state } if !room_state.participant.camera)
    ));
    let ps = w.core.room_participants(&w.room()).unwrap();
    for p in &ps {
        assert_eq!(
            p.sources.contains(&Source::Camera),
            p.id == ParticipantId(MOD),
            "{p:?}"
        );
    }
}

#[test]
fn remove_ban_and_end_meeting() {
    let mut w = World::new(AccessMode::Open);
    w.enter(MOD, guest("m"));
    w.enter(2, guest("removed"));
    w.enter(3, guest("banned"));
    w.enter(4, account("bob"));
    w.enter(5, guest("stays"));
    let e = w.send(
        MOD,
        ClientMessage::Remove {
            participant: ParticipantId(2),
            message: Some("bye".into()),
        },
    );
    assert_eq!(bye(&e, 2), Some(LeaveReason::Removed));
    assert!(e.contains(&Effect::Close(ConnId(2))));
    assert!(to(&e, 5).iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantLeft {
            reason: LeaveReason::Removed,
            ..
        }
    )));
    // Removed (not banned): may come back.
    w.input(Input::Closed(ConnId(2), LeaveReason::Disconnected));
    assert!(joined_role(&w.enter(12, guest("removed")), 12).is_some());

    let e = w.send(
        MOD,
        ClientMessage::Ban {
            participant: ParticipantId(3),
            message: None,
        },
    );
    assert_eq!(bye(&e, 3), Some(LeaveReason::Banned));
    w.send(
        MOD,
        ClientMessage::Ban {
            participant: ParticipantId(4),
            message: None,
        },
    );
    // Same guest key, same account: refused while the room lives, with a clear message.
    for (c, id) in [(13, guest("banned")), (14, account("bob"))] {
        let (code, message) = error_of(&w.enter(c, id), c).expect("refused");
        assert_eq!(code, ErrorCode::Banned);
        assert!(message.contains("cannot rejoin"), "{message}");
    }
    assert!(joined_role(&w.enter(15, guest("someone-else")), 15).is_some());

    let e = w.send(MOD, ClientMessage::EndMeeting {});
    for c in [MOD, 5, 12, 15] {
        assert_eq!(bye(&e, c), Some(LeaveReason::Ended), "{c}");
    }
    assert_eq!(w.core.room_count(), 0);
    // The room is gone, and so are its bans.
    assert!(joined_role(&w.enter(16, guest("banned")), 16).is_some());
}

#[test]
fn moderator_actions_on_oneself_or_strangers_are_refused() {
    let mut w = World::new(AccessMode::Open);
    w.enter(MOD, guest("m"));
    for m in [
        ClientMessage::Remove {
            participant: ParticipantId(MOD),
            message: None,
        },
        ClientMessage::Ban {
            participant: ParticipantId(99),
            message: None,
        },
        ClientMessage::Admit {
            participant: ParticipantId(99),
        },
        ClientMessage::SetRole {
            participant: ParticipantId(MOD),
            role: Role::Guest,
        },
    ] {
        let e = w.send(MOD, m.clone());
        assert_eq!(
            error_of(&e, MOD).map(|e| e.0),
            Some(ErrorCode::UnknownParticipant),
            "{m:?}"
        );
    }
    let e = w.send(
        MOD,
        ClientMessage::SetPermissions {
            role: Role::Moderator,
            permissions: Permissions::default(),
        },
    );
    assert_eq!(error_of(&e, MOD).map(|e| e.0), Some(ErrorCode::BadMessage));
    let e = w.send(
        MOD,
        ClientMessage::SetPassword {
            password: Some("short".into()),
        },
    );
    assert_eq!(
        error_of(&e, MOD).map(|e| e.0),
        Some(ErrorCode::InvalidPassword)
    );
    assert!(!w.core.room_state(&w.room()).unwrap().password_set);
}

#[test]
fn a_new_moderator_sees_the_lobby_queue() {
    let mut w = World::new(AccessMode::Open);
    w.enter(MOD, guest("m"));
    w.enter(2, guest("b"));
    w.send(MOD, ClientMessage::SetLobby { enabled: true });
    w.connect(3, guest("c"));
    let e = w.join(3, None);
    assert!(waits(&e, 3).is_some());
    assert!(to(&e, MOD).iter().any(
        |m| matches!(m, ServerMessage::Knock { knock } if knock.participant == ParticipantId(3))
    ));
    assert!(to(&e, 2).is_empty(), "participants do not see knocks");
    let e = w.send(
        MOD,
        ClientMessage::SetRole {
            participant: ParticipantId(2),
            role: Role::Moderator,
        },
    );
    assert!(
        to(&e, 2)
            .iter()
            .any(|m| matches!(m, ServerMessage::Knock { .. }))
    );
    let e = w.send(
        2,
        ClientMessage::Deny {
            participant: ParticipantId(3),
            message: Some("not today".into()),
        },
    );
    assert_eq!(bye(&e, 3), Some(LeaveReason::Denied));
    assert!(
        to(&e, MOD)
            .iter()
            .any(|m| matches!(m, ServerMessage::KnockWithdrawn { .. }))
    );
}

// ---------------------------------------------------------------------------------------
// Access modes, lobby, passwords.

#[test]
fn hosts_mode_guests_wait_for_a_host_and_knock() {
    let mut w = World::new(AccessMode::Hosts);
    // A guest arrives first: waits (no room is opened by a guest).
    w.connect(2, guest("g"));
    assert!(waits(&w.join(2, None), 2).is_some());
    // The host signs in and opens the room: Moderator, sees the knock.
    w.connect(MOD, account("host"));
    let e = w.join(MOD, None);
    assert_eq!(joined_role(&e, MOD), Some(Role::Moderator));
    let lobby = to(&e, MOD).into_iter().find_map(|m| match m {
        ServerMessage::Joined {
            lobby,
            participants,
            name,
            signed_in,
            ..
        } => Some((lobby, participants, name, signed_in)),
        _ => None,
    });
    let (lobby, participants, name, signed_in) = lobby.unwrap();
    // `joined` tells the joiner the name the others see (the account's) and its badge.
    assert_eq!(name, "host (account)");
    assert!(signed_in);
    assert_eq!(lobby.len(), 1);
    assert_eq!(lobby[0].participant, ParticipantId(2));
    assert!(participants.is_empty());
    // The account's name is used, not the one the client sent.
    let me = w.core.room_participants(&w.room()).unwrap();
    assert_eq!(me[0].name, "host (account)");
    assert!(me[0].signed_in);
    // Admitted: a guest, with the "guest" badge.
    let e = w.send(
        MOD,
        ClientMessage::Admit {
            participant: ParticipantId(2),
        },
    );
    assert_eq!(joined_role(&e, 2), Some(Role::Guest));
    let ps = w.core.room_participants(&w.room()).unwrap();
    assert!(!ps[1].signed_in);
    // Another account walks straight in, and token holders with lobby_bypass too.
    assert_eq!(
        joined_role(&w.enter(4, account("colleague")), 4),
        Some(Role::Moderator)
    );
    let token = Identity::Token {
        subject: "u-5".into(),
        name: Some("Tess".into()),
        room: None,
        moderator: false,
        lobby_bypass: true,
    };
    assert_eq!(joined_role(&w.enter(5, token), 5), Some(Role::Participant));
    // A member account (role "member") walks in with its name, without moderating.
    let member = Identity::Account {
        username: "pupil".into(),
        name: "Pupil".into(),
        moderator: false,
    };
    assert_eq!(joined_role(&w.enter(7, member), 7), Some(Role::Participant));
    // A guest without bypass knocks.
    w.connect(6, guest("g6"));
    assert!(waits(&w.join(6, None), 6).is_some());
}

#[test]
fn hosts_mode_unknown_and_protected_rooms_answer_the_same() {
    let mut w = World::new(AccessMode::Hosts);
    let other = "someotherroomid000";
    // A protected room with its host present.
    w.enter(MOD, account("host"));
    w.send(
        MOD,
        ClientMessage::SetPassword {
            password: Some("correct horse".into()),
        },
    );
    w.send(MOD, ClientMessage::SetLobby { enabled: false });
    let mut answers = Vec::new();
    for (c, room) in [(20u64, ROOM), (21, other)] {
        w.connect(c, guest(&format!("p{c}")));
        let e = w.send(
            c,
            ClientMessage::Join {
                v: 1,
                room: room.into(),
                name: "Probe".into(),
                password: None,
                token: None,
            },
        );
        let plain = to(&e, c);
        let e = w.send(
            c,
            ClientMessage::Join {
                v: 1,
                room: room.into(),
                name: "Probe".into(),
                password: Some("guess".into()),
                token: None,
            },
        );
        let guessed = to(&e, c);
        answers.push((plain, guessed));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(matches!(answers[0].0[..], [ServerMessage::Lobby { .. }]));
    assert!(
        matches!(&answers[0].1[..], [ServerMessage::Error(e)] if e.code == ErrorCode::WrongPassword)
    );
    // The right password lets a guest in (lobby off, host present).
    w.connect(22, guest("p22"));
    assert_eq!(
        joined_role(&w.join(22, Some("correct horse")), 22),
        Some(Role::Guest)
    );
}

#[test]
fn open_mode_password_and_lock() {
    let mut w = World::new(AccessMode::Open);
    w.enter(MOD, guest("m"));
    w.send(
        MOD,
        ClientMessage::SetPassword {
            password: Some("correct horse".into()),
        },
    );
    w.connect(2, guest("b"));
    assert_eq!(
        error_of(&w.join(2, None), 2).map(|e| e.0),
        Some(ErrorCode::PasswordRequired)
    );
    assert_eq!(
        error_of(&w.join(2, Some("nope")), 2).map(|e| e.0),
        Some(ErrorCode::WrongPassword)
    );
    assert_eq!(
        joined_role(&w.join(2, Some("correct horse")), 2),
        Some(Role::Participant)
    );
    w.send(MOD, ClientMessage::Lock { locked: true });
    w.connect(3, guest("c"));
    assert_eq!(
        error_of(&w.join(3, Some("correct horse")), 3).map(|e| e.0),
        Some(ErrorCode::RoomLocked)
    );
    // Clearing the password: no password needed any more.
    w.send(MOD, ClientMessage::Lock { locked: false });
    w.send(MOD, ClientMessage::SetPassword { password: None });
    assert!(joined_role(&w.join(3, None), 3).is_some());
}

#[test]
fn closed_mode_and_token_scope() {
    let mut w = World::new(AccessMode::Closed);
    w.connect(2, guest("g"));
    assert_eq!(
        error_of(&w.join(2, None), 2).map(|e| e.0),
        Some(ErrorCode::SignInRequired)
    );
    let elsewhere = Identity::Token {
        subject: "s".into(),
        name: Some("Tess".into()),
        room: Some(RoomId::parse("anotherroomanother").unwrap()),
        moderator: true,
        lobby_bypass: true,
    };
    w.connect(3, elsewhere);
    assert_eq!(
        error_of(&w.join(3, None), 3).map(|e| e.0),
        Some(ErrorCode::InvalidToken)
    );
    let here = Identity::Token {
        subject: "s".into(),
        name: Some("Tess".into()),
        room: Some(w.room()),
        moderator: true,
        lobby_bypass: false,
    };
    w.connect(4, here);
    assert_eq!(joined_role(&w.join(4, None), 4), Some(Role::Moderator));
    assert_eq!(w.core.room_participants(&w.room()).unwrap()[0].name, "Tess");
}

/// Brute force from one address against a room password: how many guesses get evaluated in
/// ten simulated minutes when the attacker retries the moment it is allowed.
#[test]
fn password_guessing_is_throttled_per_address_and_per_room() {
    let mut w = World::new(AccessMode::Open);
    w.enter(MOD, guest("m"));
    w.send(
        MOD,
        ClientMessage::SetPassword {
            password: Some("correct horse".into()),
        },
    );
    w.connect(50, guest("attacker"));
    let start = w.now;
    let (mut evaluated, mut throttled) = (0, 0);
    let mut attempt = 0u32;
    while w.now < start + Duration::from_secs(600) {
        attempt += 1;
        let e = w.join(50, Some(&format!("guess {attempt}")));
        match error_of(&e, 50).map(|e| e.0) {
            Some(ErrorCode::WrongPassword) => evaluated += 1,
            Some(ErrorCode::TooManyAttempts) => throttled += 1,
            // The per-address join limit (30 per minute) also applies.
            other => panic!("unexpected answer {other:?}"),
        }
        // Retry twice a second.
        w.now += Duration::from_millis(490);
    }
    eprintln!("brute force: {evaluated} guesses evaluated, {throttled} refused in 600 simulated s");
    // 5 free, then backoff 1,2,4,...,60 s, lockout (15 min) after 20 failures.
    assert_eq!(evaluated, 20);
    assert!(throttled > 0);
    // The right password is refused too while locked out (the attacker cannot tell).
    let e = w.join(50, Some("correct horse"));
    assert_eq!(
        error_of(&e, 50).map(|e| e.0),
        Some(ErrorCode::TooManyAttempts)
    );
    // Another address is still limited by the per-room count: the room is locked out too.
    w.connect_from(51, guest("other"), addr(51));
    let e = w.join(51, Some("wrong again"));
    assert_eq!(
        error_of(&e, 51).map(|e| e.0),
        Some(ErrorCode::TooManyAttempts)
    );
}

#[test]
fn opening_rooms_from_one_address_is_limited_but_joining_an_open_room_is_not() {
    let mut w = World::new(AccessMode::Open);
    // A prober opens room after room from one address.
    let mut refused = 0;
    for c in 100..160u64 {
        w.connect_from(c, guest(&format!("k{c}")), addr(7));
        let room = format!("probedroomprobed{c:04}");
        let e = w.send(
            c,
            ClientMessage::Join {
                v: 1,
                room,
                name: "p".into(),
                password: None,
                token: None,
            },
        );
        if let Some((ErrorCode::TooManyAttempts, _)) = error_of(&e, c) {
            refused += 1;
        }
    }
    // A burst of 20, then 30 per minute (one per 2 s; the loop spends 10 ms per join).
    assert!(refused >= 35, "{refused}");
    // A whole class behind one address joins the teacher's open room at once.
    w.enter(MOD, guest("teacher"));
    for c in 200..240u64 {
        w.connect_from(c, guest(&format!("pupil{c}")), addr(9));
        assert!(
            joined_role(&w.join(c, None), c).is_some(),
            "pupil {c} refused"
        );
    }
    // The prober's address is still limited, another address is not.
    w.connect_from(300, guest("x"), addr(8));
    let e = w.send(
        300,
        ClientMessage::Join {
            v: 1,
            room: "anothernewroom0001".into(),
            name: "x".into(),
            password: None,
            token: None,
        },
    );
    assert!(error_of(&e, 300).is_none());
}

#[test]
fn a_reserved_room_opens_in_its_window_with_its_settings_and_closes_itself() {
    let mut w = World::new(AccessMode::Open);
    let t0 = w.now;
    w.input(Input::Reserve(
        w.room(),
        crate::Reservation {
            opens: t0 + Duration::from_secs(60),
            closes: t0 + Duration::from_secs(120),
            password: Some("reserved password".into()),
            lobby: true,
        },
    ));
    w.connect(MOD, account("owner"));
    let e = w.join(MOD, None);
    let (code, message) = error_of(&e, MOD).unwrap();
    assert_eq!(code, ErrorCode::NotOpenYet);
    assert!(message.contains("opens in"), "{message}");
    w.now = t0 + Duration::from_secs(61);
    assert_eq!(joined_role(&w.join(MOD, None), MOD), Some(Role::Moderator));
    let state = w.core.room_state(&w.room()).unwrap();
    assert!(state.password_set && state.lobby);
    w.connect(2, guest("g"));
    assert_eq!(
        error_of(&w.join(2, None), 2).map(|e| e.0),
        Some(ErrorCode::PasswordRequired)
    );
    assert_eq!(
        joined_role(&w.join(2, Some("reserved password")), 2),
        Some(Role::Participant)
    );
    // Before the end nothing happens; at the end everyone is told and the room is gone.
    assert!(w.input(Input::Tick).is_empty());
    w.now = t0 + Duration::from_secs(121);
    let e = w.input(Input::Tick);
    assert_eq!(bye(&e, MOD), Some(LeaveReason::Ended));
    assert_eq!(bye(&e, 2), Some(LeaveReason::Ended));
    assert_eq!(w.core.room_count(), 0);
    assert_eq!(w.core.reservation_count(), 0);
}

use super::*;

#[test]
fn join_round_trips() {
    let m = parse_client_message(r#"{"type":"join","v":1,"room":"abcdefghijklmnop","name":"Ada"}"#)
        .unwrap();
    assert_eq!(
        m,
        ClientMessage::Join {
            v: 1,
            room: "abcdefghijklmnop".into(),
            name: "Ada".into(),
            password: None,
            token: None,
        }
    );
    let back = serde_json::to_string(&m).unwrap();
    assert_eq!(parse_client_message(&back).unwrap(), m);
}

#[test]
fn each_bad_input_has_its_own_code() {
    let cases = [
        ("{not json", ErrorCode::BadJson),
        ("[1,2]", ErrorCode::BadJson),
        (r#"{"no_type":1}"#, ErrorCode::BadMessage),
        (r#"{"type":"teleport"}"#, ErrorCode::UnknownType),
        (r#"{"type":"join","v":1}"#, ErrorCode::BadMessage),
        (
            r#"{"type":"publish","source":"hologram"}"#,
            ErrorCode::BadMessage,
        ),
        (r#"{"type":"leave","extra":true}"#, ErrorCode::BadMessage),
        (r#"{"type":"receive_video"}"#, ErrorCode::BadMessage),
        (
            r#"{"type":"receive_video","enabled":"no"}"#,
            ErrorCode::BadMessage,
        ),
    ];
    for (text, code) in cases {
        let err = parse_client_message(text).unwrap_err();
        assert_eq!(err.code, code, "{text}: {}", err.message);
        assert!(!err.message.is_empty());
    }
}

#[test]
fn unknown_type_is_truncated_in_the_message() {
    let long = "x".repeat(10_000);
    let err = parse_client_message(&format!(r#"{{"type":"{long}"}}"#)).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownType);
    assert!(err.message.len() < 100);
}

#[test]
fn error_serializes_flat() {
    let m = ServerMessage::error(ErrorCode::NotJoined, "join first");
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"type":"error","code":"not_joined","message":"join first"}"#
    );
}

#[test]
fn room_ids() {
    assert!(RoomId::parse("abcdefghijklmnop").is_ok());
    assert!(RoomId::parse("Ab3_-xYz01234567890").is_ok());
    assert_eq!(RoomId::parse("short"), Err(RoomIdError::Length(5)));
    assert_eq!(
        RoomId::parse("abcdefghijklmnop/"),
        Err(RoomIdError::Character)
    );
    assert_eq!(RoomId::parse(&"a".repeat(65)), Err(RoomIdError::Length(65)));
}

#[test]
fn participant_id_is_hex() {
    let id = ParticipantId(0xdead_beef);
    let s = serde_json::to_string(&id).unwrap();
    assert_eq!(s, "\"00000000deadbeef\"");
    assert_eq!(serde_json::from_str::<ParticipantId>(&s).unwrap(), id);
    assert!(serde_json::from_str::<ParticipantId>("\"xyz\"").is_err());
}

#[test]
fn offer_serializes_slots_by_source_name() {
    let mut slots = BTreeMap::new();
    slots.insert(Source::Microphone, "0".to_string());
    let m = ServerMessage::Offer {
        sdp: "v=0".into(),
        slots,
        tracks: BTreeMap::new(),
    };
    let s = serde_json::to_string(&m).unwrap();
    assert!(s.contains(r#""slots":{"microphone":"0"}"#), "{s}");
}

#[test]
fn chat_and_raise_hand_parse() {
    let m = parse_client_message(r#"{"type":"chat","text":"hi"}"#).unwrap();
    assert_eq!(
        m,
        ClientMessage::Chat {
            text: Some("hi".into()),
            ciphertext: None,
            to: None
        }
    );
    let m =
        parse_client_message(r#"{"type":"chat","text":"psst","to":"00000000000000ff"}"#).unwrap();
    assert_eq!(
        m,
        ClientMessage::Chat {
            text: Some("psst".into()),
            ciphertext: None,
            to: Some(ParticipantId(255))
        }
    );
    let e = parse_client_message(r#"{"type":"chat","text":"x","to":"nobody"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    let m = parse_client_message(r#"{"type":"raise_hand","raised":true}"#).unwrap();
    assert_eq!(m, ClientMessage::RaiseHand { raised: true });
    // Older clients without hand_raised still parse participant info.
    let p: ParticipantInfo =
        serde_json::from_str(r#"{"id":"0000000000000001","name":"A","sources":[]}"#).unwrap();
    assert!(!p.hand_raised);
}

#[test]
fn receive_video_round_trips() {
    let m = parse_client_message(r#"{"type":"receive_video","enabled":false}"#).unwrap();
    assert_eq!(m, ClientMessage::ReceiveVideo { enabled: false });
    assert_eq!(m.kind(), "receive_video");
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"type":"receive_video","enabled":false}"#
    );
}

#[test]
fn settings_carry_last_n_and_older_senders_default_it() {
    let s = MeetingSettings {
        last_n: 4,
        ..MeetingSettings::default()
    };
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["last_n"], 4);
    let old: MeetingSettings =
        serde_json::from_str(r#"{"max_video_height":720,"screen_share_fps":5,"audio_only":false}"#)
            .unwrap();
    assert_eq!(old.last_n, 0);
}

#[test]
fn mls_messages_name_their_generation() {
    assert_eq!(
        parse_client_message(r#"{"type":"mls_reset"}"#).unwrap(),
        ClientMessage::MlsReset {}
    );
    assert_eq!(
        parse_client_message(r#"{"type":"mls_group","group_info":"R0kw","generation":2}"#).unwrap(),
        ClientMessage::MlsGroup {
            group_info: "R0kw".into(),
            generation: 2
        }
    );
    for text in [
        r#"{"type":"mls_group","group_info":"R0kw"}"#,
        r#"{"type":"mls_commit","epoch":0,"commit":"AAAA","group_info":"AAAA"}"#,
        r#"{"type":"mls_reset","generation":1}"#,
    ] {
        let err = parse_client_message(text).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMessage, "{text}: {}", err.message);
    }
    let reset = ServerMessage::MlsReset {
        by: ParticipantId(7),
        generation: 1,
    };
    assert_eq!(
        serde_json::to_string(&reset).unwrap(),
        r#"{"type":"mls_reset","by":"0000000000000007","generation":1}"#
    );
}

//! File sharing over raw WebSockets: the server relays an offer and its chunks to the
//! recipients only, refuses a participant without the `files` permission (and ends a
//! transfer under way), and refuses oversized offers, with nothing relayed.

use crate::common;

use std::time::Duration;

use common::{join_raw, start};
use conclave_load::RawSocket;
use conclave_proto::{ClientMessage, ErrorCode, FileEnd, Permissions, Role, ServerMessage};

const T: Duration = Duration::from_secs(10);

fn offer(file: &str, size: u64) -> ClientMessage {
    ClientMessage::FileOffer {
        file: file.into(),
        size,
        text: None,
        ciphertext: Some("b2ZmZXI=".into()),
        to: None,
    }
}

fn is_file(m: &ServerMessage) -> bool {
    matches!(
        m,
        ServerMessage::FileOffer { .. }
            | ServerMessage::FileChunk { .. }
            | ServerMessage::FileCancel { .. }
    )
}

async fn error(s: &mut RawSocket) -> (ErrorCode, String) {
    match s
        .recv_until(T, |m| matches!(m, ServerMessage::Error(_)))
        .await
        .unwrap()
    {
        ServerMessage::Error(e) => (e.code, e.message),
        _ => unreachable!(),
    }
}

async fn nothing_about_files(s: &mut RawSocket) {
    let r = s.recv_until(Duration::from_millis(500), is_file).await;
    assert!(r.is_err(), "unexpected: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_files_permission_the_server_refuses_and_relays_nothing() {
    let srv = start(|c| c.limits.max_file_bytes = 1000).await;
    let (mut host, _) = join_raw(&srv.url, "Host").await;
    let (mut ada, ada_id) = join_raw(&srv.url, "Ada").await;
    let (mut bob, _) = join_raw(&srv.url, "Bob").await;

    // Allowed: the offer and a chunk reach the others.
    ada.send(&offer("transfer-0000000001", 20)).await.unwrap();
    ada.send(&ClientMessage::FileChunk {
        file: "transfer-0000000001".into(),
        seq: 0,
        data: "AAAAAAAAAAAAAAAAAAAAAAAA".into(), // 18 bytes: 2 of content, 16 of tag
        last: false,
    })
    .await
    .unwrap();
    for s in [&mut host, &mut bob] {
        let m = s.recv_until(T, is_file).await.unwrap();
        assert!(
            matches!(&m, ServerMessage::FileOffer { from, size: 20, private: false, .. } if *from == ada_id),
            "{m:?}"
        );
        let m = s.recv_until(T, is_file).await.unwrap();
        assert!(
            matches!(&m, ServerMessage::FileChunk { seq: 0, .. }),
            "{m:?}"
        );
    }

    // Too big for this server: refused before anyone hears of it.
    ada.send(&offer("transfer-0000000002", 1001)).await.unwrap();
    let (code, message) = error(&mut ada).await;
    assert_eq!(code, ErrorCode::InvalidFile);
    assert!(message.contains("1 to 1000 bytes"), "{message}");

    // The host takes files away from participants.
    let permissions = Permissions {
        files: false,
        ..Permissions::default()
    };
    host.send(&ClientMessage::SetPermissions {
        role: Role::Participant,
        permissions,
    })
    .await
    .unwrap();
    ada.recv_until(
        T,
        |m| matches!(m, ServerMessage::SelfUpdated { permissions, .. } if !permissions.files),
    )
    .await
    .unwrap();

    // A new offer is forbidden...
    ada.send(&offer("transfer-0000000003", 20)).await.unwrap();
    let (code, message) = error(&mut ada).await;
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(
        message.contains("sharing files is not allowed"),
        "{message}"
    );
    // ...and the next chunk of the transfer under way ends it for everyone.
    ada.send(&ClientMessage::FileChunk {
        file: "transfer-0000000001".into(),
        seq: 1,
        data: "AAAAAAAAAAAAAAAAAAAAAAAA".into(),
        last: false,
    })
    .await
    .unwrap();
    assert_eq!(error(&mut ada).await.0, ErrorCode::Forbidden);
    for s in [&mut ada, &mut host, &mut bob] {
        let m = s.recv_until(T, is_file).await.unwrap();
        assert!(
            matches!(&m, ServerMessage::FileCancel { by, reason: FileEnd::Refused, .. } if *by == ada_id),
            "{m:?}"
        );
    }
    for s in [&mut host, &mut bob] {
        nothing_about_files(s).await;
    }
}

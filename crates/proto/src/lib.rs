//! Conclave signalling protocol, version 1.
//!
//! One WebSocket per participant carries JSON text frames. Every message is an object with a
//! `type` field. The server is the only SDP offerer (see `docs/architecture.md`); the client
//! only ever answers. Every message here is documented with an example in `docs/protocol.md`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod error;
mod ids;

pub use error::{ErrorCode, ProtocolError};
pub use ids::{ParticipantId, RoomId, RoomIdError};

/// The protocol version this crate speaks. `join` carries it; a mismatch is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// A media source a participant can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Audio from the microphone.
    Microphone,
    /// Video from the camera.
    Camera,
    /// A shared screen or window (video, at most `settings.screen_share_fps` frames/s).
    Screen,
}

impl Source {
    /// Every source, in the order their upstream slots appear in the first offer.
    pub const ALL: [Source; 3] = [Source::Microphone, Source::Camera, Source::Screen];

    /// Whether this source carries audio (otherwise video).
    pub fn is_audio(self) -> bool {
        matches!(self, Source::Microphone)
    }
}

/// Meeting settings from the server's configuration that every client applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSettings {
    /// Highest camera video the client sends, in pixels (e.g. 240, 360, 720).
    pub max_video_height: u32,
    /// Frame-rate cap for screen sharing.
    pub screen_share_fps: u32,
    /// Join in audio-only mode (no camera offered) by default.
    pub audio_only: bool,
    /// Camera video reaches each participant from at most this many others: those who spoke
    /// most recently (join order until someone speaks). 0 means no limit. Screen shares and
    /// audio are always forwarded.
    #[serde(default)]
    pub last_n: u32,
    /// End-to-end encryption of media and chat: `required` (the default) or `off`.
    #[serde(default)]
    pub e2ee: E2eeMode,
}

/// One STUN/TURN server for the browser's `RTCPeerConnection` (`RTCIceServer`). The server
/// names only itself: never a third party's server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username (short-lived, `<expiry>:<grant>`); absent for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password; absent for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `joined.ice`: what the browser's `RTCPeerConnection` is configured with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceSettings {
    /// This server's STUN/TURN servers (`RTCConfiguration.iceServers`). The credential stops
    /// working when the session ends.
    pub servers: Vec<IceServer>,
    /// `RTCConfiguration.iceTransportPolicy`.
    pub transport_policy: IceTransportPolicy,
}

/// Which ICE candidates the browser may use (`RTCIceTransportPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IceTransportPolicy {
    /// Any: direct UDP to the media port first, the relay when that fails.
    #[default]
    All,
    /// Only relayed candidates (`[network] relay_only`); the server also refuses media from
    /// anything but its own relays.
    Relay,
}

/// Whether media and chat are end-to-end encrypted (docs/security.md, "End-to-end
/// encryption").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum E2eeMode {
    /// Every client encrypts media and chat with keys agreed by MLS; browsers without
    /// encoded transforms are refused by the client with an explanation, and the server
    /// refuses plain-text chat.
    #[default]
    Required,
    /// No end-to-end encryption (media is still encrypted hop by hop with DTLS-SRTP).
    Off,
}

/// The room's MLS delivery-service state, as a newcomer needs it (`joined.e2ee`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct E2eeState {
    /// The server's E2EE policy.
    pub mode: E2eeMode,
    /// The group's current epoch; `None` while no group exists.
    pub epoch: Option<u64>,
    /// The latest GroupInfo (base64 MLSMessage), for joining by external commit.
    pub group_info: Option<String>,
    /// How many times a moderator reset the room's group (`mls_reset`): 0 for the first
    /// group. `mls_group` and `mls_commit` name the generation they are for, so that a
    /// message for a group that was reset since cannot win an epoch of the new one.
    #[serde(default)]
    pub generation: u64,
}

impl Default for MeetingSettings {
    fn default() -> Self {
        MeetingSettings {
            max_video_height: 720,
            screen_share_fps: 5,
            audio_only: false,
            last_n: 0,
            e2ee: E2eeMode::Required,
        }
    }
}

/// Messages from the client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Enter a room. Must be the first message; exactly once per connection.
    Join {
        /// Protocol version the client speaks; must equal [`PROTOCOL_VERSION`].
        v: u32,
        /// Room to join (created on first join).
        room: String,
        /// Display name shown to the others. Ignored when the name comes from the account or
        /// the token (it is read-only then).
        name: String,
        /// The room password, when the room has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// An invite/identity token (JWT) from the `jwt` query parameter of the link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// The client's SDP answer to the server's latest `offer`.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// The client now sends media on the upstream slot of `source`.
    Publish {
        /// Which source starts.
        source: Source,
    },
    /// The client stopped sending media on `source`.
    Unpublish {
        /// Which source stops.
        source: Source,
    },
    /// Leave the room; the server closes the connection afterwards.
    Leave {},
    /// A chat message to the room, or with `to` to one participant only. The server relays
    /// it and never stores it.
    Chat {
        /// The message (1 to `limits.max_chat_chars` characters), when the room is not
        /// end-to-end encrypted. Exactly one of `text` and `ciphertext`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The message as an MLS application message (base64), when it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ciphertext: Option<String>,
        /// Addressee of a private message; absent for the whole room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<ParticipantId>,
    },
    /// Offer a file to the room, or with `to` to one participant only. The recipients are
    /// fixed now: the chunks that follow reach those of them still present.
    FileOffer {
        /// The sender's ID for this transfer: 16 to 64 characters `A-Z a-z 0-9 _ -`, unique
        /// among the room's transfers under way.
        file: String,
        /// The file's size in bytes, at most `limits.max_file_bytes`.
        size: u64,
        /// Name, type, size, SHA-256 and key as JSON, when the room is not end-to-end
        /// encrypted. Exactly one of `text` and `ciphertext`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The same as an MLS application message (base64), when it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ciphertext: Option<String>,
        /// Addressee of a private file; absent for the whole room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<ParticipantId>,
    },
    /// One chunk of a file this connection offered, in order from `seq` 0.
    FileChunk {
        /// The transfer.
        file: String,
        /// The chunk's number: 0 for the first, one more for each next.
        seq: u32,
        /// The chunk encrypted with the file's key (base64), at most
        /// [`FILE_CHUNK_BYTES`] + 16 bytes.
        data: String,
        /// Whether this is the last chunk (then the transfer is complete).
        #[serde(default)]
        last: bool,
    },
    /// Stop a transfer: the sender ends it for everyone, a recipient only for itself.
    FileCancel {
        /// The transfer.
        file: String,
    },
    /// E2EE: create the room's MLS group (epoch 0). Accepted only while the room has none.
    MlsGroup {
        /// The group's GroupInfo (base64 MLSMessage) for newcomers' external commits.
        group_info: String,
        /// The generation the group is for (`joined.e2ee.generation`, or the latest
        /// `mls_reset`); an older one is refused.
        generation: u64,
    },
    /// E2EE: an MLS commit made from `epoch`, with the GroupInfo of the epoch it creates.
    /// Accepted only when `epoch` is the room's current epoch (one commit per epoch) of the
    /// current generation.
    MlsCommit {
        /// The epoch the commit was made from.
        epoch: u64,
        /// The commit (base64 MLSMessage).
        commit: String,
        /// The GroupInfo of the new epoch (base64 MLSMessage).
        group_info: String,
        /// The generation of the group the commit is for.
        generation: u64,
    },
    /// Moderator, E2EE: drop the room's MLS group (e.g. one that a garbage commit made
    /// unusable). Everyone gets `mls_reset`; the next `mls_group` creates a new group.
    MlsReset {},
    /// Raise or lower one's hand.
    RaiseHand {
        /// Whether the hand is up.
        raised: bool,
    },
    /// Moderator: stop a participant's source and keep it stopped (hard mute for the
    /// microphone, "stop camera" for the camera) until `allow`.
    Mute {
        /// Whom.
        participant: ParticipantId,
        /// Which source.
        source: Source,
    },
    /// Moderator: `mute` every participant who is not a moderator.
    MuteAll {
        /// Which source.
        source: Source,
    },
    /// Moderator: lift a `mute` of one participant's source.
    Allow {
        /// Whom.
        participant: ParticipantId,
        /// Which source.
        source: Source,
    },
    /// Moderator: remove a participant (they may come back).
    Remove {
        /// Whom.
        participant: ParticipantId,
        /// Shown to them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Moderator: remove a participant and refuse them for as long as the room lives.
    Ban {
        /// Whom.
        participant: ParticipantId,
        /// Shown to them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Moderator: lock or unlock the room (a locked room lets no one new in but moderators).
    Lock {
        /// Locked or not.
        locked: bool,
    },
    /// Moderator: end the meeting for everyone.
    EndMeeting {},
    /// Moderator: grant or revoke the moderator role.
    SetRole {
        /// Whom.
        participant: ParticipantId,
        /// The new role.
        role: Role,
    },
    /// Moderator: set (or with `null` clear) the room password.
    SetPassword {
        /// The new password, or `null` for none.
        password: Option<String>,
    },
    /// Moderator: turn the lobby on or off. Turning it off admits everyone waiting.
    SetLobby {
        /// On or off.
        enabled: bool,
    },
    /// Moderator: what participants or guests may do in this room.
    SetPermissions {
        /// `participant` or `guest` (moderators may always do everything).
        role: Role,
        /// The new permissions.
        permissions: Permissions,
    },
    /// Moderator: let someone waiting in the lobby in.
    Admit {
        /// Who (from `knock`).
        participant: ParticipantId,
    },
    /// Moderator: turn someone in the lobby away.
    Deny {
        /// Who (from `knock`).
        participant: ParticipantId,
        /// Shown to them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Stop (`false`) or resume (`true`) receiving all video, camera and screen, e.g. for an
    /// audio-only mode. Audio keeps flowing. Initially `true`.
    ReceiveVideo {
        /// Whether video is forwarded to this participant.
        enabled: bool,
    },
}

/// A participant's role in a room.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May do everything, including moderator actions.
    Moderator,
    /// Signed in, holds a token, or joined an `open` room: the room's participant permissions.
    #[default]
    Participant,
    /// Joined without signing in where that makes a difference: the room's guest permissions.
    Guest,
}

/// What a role may do in a room (moderators may always do everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Publish the microphone.
    pub unmute: bool,
    /// Publish the camera.
    pub camera: bool,
    /// Share the screen.
    pub screen: bool,
    /// Send chat messages.
    pub chat: bool,
    /// Share files.
    pub files: bool,
    /// Record the meeting.
    pub record: bool,
}

impl Permissions {
    /// Everything allowed.
    pub const ALL: Permissions = Permissions {
        unmute: true,
        camera: true,
        screen: true,
        chat: true,
        files: true,
        record: true,
    };

    /// Whether publishing `source` is allowed.
    pub fn source(&self, source: Source) -> bool {
        match source {
            Source::Microphone => self.unmute,
            Source::Camera => self.camera,
            Source::Screen => self.screen,
        }
    }
}

impl Default for Permissions {
    /// Talk, show, share and chat; no recording.
    fn default() -> Self {
        Permissions {
            record: false,
            ..Permissions::ALL
        }
    }
}

/// A room's moderation state, as everyone in it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    /// No one new but moderators may enter.
    pub locked: bool,
    /// Guests wait in the lobby until a moderator admits them.
    pub lobby: bool,
    /// The room has a password.
    pub password_set: bool,
    /// What participants may do.
    pub participant: Permissions,
    /// What guests may do.
    pub guest: Permissions,
}

/// Someone waiting in the lobby, as moderators see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knock {
    /// Their ID (the one they will have once admitted).
    pub participant: ParticipantId,
    /// The name they gave.
    pub name: String,
    /// Whether they are signed in (account or token).
    pub signed_in: bool,
}

/// Limits the client should apply before sending (the server enforces them anyway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientLimits {
    /// Longest display name, in characters.
    pub max_name_chars: usize,
    /// Longest chat message, in characters.
    pub max_chat_chars: usize,
    /// Largest file, in bytes.
    #[serde(default)]
    pub max_file_bytes: u64,
    /// File bytes a connection may send per second (the sender paces its chunks to it).
    #[serde(default)]
    pub file_bytes_per_second: u64,
    /// Files one participant may send at the same time.
    #[serde(default)]
    pub max_files_in_flight: usize,
}

impl ClientMessage {
    /// The `type` string of this message, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Publish { .. } => "publish",
            ClientMessage::Unpublish { .. } => "unpublish",
            ClientMessage::Leave {} => "leave",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::FileOffer { .. } => "file_offer",
            ClientMessage::FileChunk { .. } => "file_chunk",
            ClientMessage::FileCancel { .. } => "file_cancel",
            ClientMessage::MlsGroup { .. } => "mls_group",
            ClientMessage::MlsCommit { .. } => "mls_commit",
            ClientMessage::MlsReset {} => "mls_reset",
            ClientMessage::RaiseHand { .. } => "raise_hand",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::MuteAll { .. } => "mute_all",
            ClientMessage::Allow { .. } => "allow",
            ClientMessage::Remove { .. } => "remove",
            ClientMessage::Ban { .. } => "ban",
            ClientMessage::Lock { .. } => "lock",
            ClientMessage::EndMeeting {} => "end_meeting",
            ClientMessage::SetRole { .. } => "set_role",
            ClientMessage::SetPassword { .. } => "set_password",
            ClientMessage::SetLobby { .. } => "set_lobby",
            ClientMessage::SetPermissions { .. } => "set_permissions",
            ClientMessage::Admit { .. } => "admit",
            ClientMessage::Deny { .. } => "deny",
            ClientMessage::ReceiveVideo { .. } => "receive_video",
        }
    }
}

/// A participant as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Server-assigned identifier, unique within the server's lifetime.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Sources this participant currently publishes.
    pub sources: Vec<Source>,
    /// Whether their hand is raised.
    #[serde(default)]
    pub hand_raised: bool,
    /// Their role in the room (absent in messages from before roles: `participant`).
    #[serde(default)]
    pub role: Role,
    /// Signed in with an account or a token (the "signed in" badge); otherwise a guest
    /// whose name nobody vouches for.
    #[serde(default)]
    pub signed_in: bool,
    /// Sources a moderator stopped (`mute`) and has not allowed again: every moderator's
    /// page offers "allow" for them, whoever stopped them. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<Source>,
}

/// What one downstream m-line (by `mid`) carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// The publishing participant.
    pub participant: ParticipantId,
    /// Which of their sources.
    pub source: Source,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They said `leave`.
    Left,
    /// Their WebSocket closed without `leave`.
    Disconnected,
    /// Nothing was heard from them (signalling or media) for the configured timeout.
    Timeout,
    /// The server removed them after a protocol error it cannot recover from.
    Error,
    /// A moderator removed them.
    Removed,
    /// A moderator removed them and they may not come back while the room lives.
    Banned,
    /// A moderator ended the meeting (or its reservation ended).
    Ended,
    /// A moderator turned them away from the lobby.
    Denied,
}

/// Messages from the server to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `join`: you are in.
    Joined {
        /// Protocol version of the server.
        v: u32,
        /// The room joined.
        room: RoomId,
        /// Your participant ID.
        id: ParticipantId,
        /// Your display name as the others see it: the one you sent, or the name from your
        /// account or token (read-only then).
        name: String,
        /// Whether you are signed in (account or token), as the others see it.
        signed_in: bool,
        /// Everyone else already in the room.
        participants: Vec<ParticipantInfo>,
        /// Settings the client applies (bandwidth, screen sharing).
        settings: MeetingSettings,
        /// Your role.
        role: Role,
        /// What you may do now (the room's permissions for your role, minus what a moderator
        /// stopped for you).
        permissions: Permissions,
        /// The room's moderation state.
        room_state: RoomState,
        /// Who waits in the lobby (moderators only; empty for the others).
        lobby: Vec<Knock>,
        /// Limits to apply before sending.
        limits: ClientLimits,
        /// The room's E2EE policy and MLS group state.
        e2ee: E2eeState,
        /// This server's STUN/TURN servers with a credential for this session, and which
        /// candidates to use; absent when TURN is off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ice: Option<Box<IceSettings>>,
    },
    /// Answer to `join` when you have to wait: a moderator must admit you (or no host has
    /// opened the room yet). You may send `join` again, e.g. with a password.
    Lobby {
        /// Why you wait, for humans.
        message: String,
    },
    /// Moderators: someone waits in the lobby.
    Knock {
        /// Who.
        knock: Knock,
    },
    /// Moderators: someone no longer waits (admitted, denied, or gone).
    KnockWithdrawn {
        /// Who.
        participant: ParticipantId,
    },
    /// The room's moderation state changed.
    RoomUpdated {
        /// The new state.
        room_state: RoomState,
    },
    /// Your role or permissions changed (e.g. a moderator muted you: stop sending that
    /// source; the server drops it anyway).
    SelfUpdated {
        /// Your role.
        role: Role,
        /// What you may do now.
        permissions: Permissions,
    },
    /// Someone entered the room.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone's published sources changed.
    ParticipantUpdated {
        /// Their new state.
        participant: ParticipantInfo,
    },
    /// Someone left the room.
    ParticipantLeft {
        /// Who.
        id: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// A new SDP offer; the client must answer with `answer` before anything else changes.
    Offer {
        /// SDP text.
        sdp: String,
        /// Upstream m-lines: attach the local track of each source to the transceiver with
        /// this mid and set it to `sendonly`.
        slots: BTreeMap<Source, String>,
        /// Downstream m-lines: what each receiving mid carries. Mids not listed are unused.
        tracks: BTreeMap<String, TrackInfo>,
    },
    /// A chat message relayed from another participant.
    Chat {
        /// The sender.
        from: ParticipantId,
        /// The message, in a room without E2EE.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The MLS application message (base64), in an end-to-end encrypted room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ciphertext: Option<String>,
        /// Whether it was sent to you alone.
        private: bool,
    },
    /// A file offered by another participant; its chunks follow as `file_chunk`.
    FileOffer {
        /// The sender.
        from: ParticipantId,
        /// The transfer.
        file: String,
        /// Its size in bytes.
        size: u64,
        /// The offer, in a room without E2EE.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The offer as an MLS application message (base64), in an end-to-end encrypted room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ciphertext: Option<String>,
        /// Whether it was offered to you alone.
        private: bool,
    },
    /// One chunk of a file offered to you, relayed as the sender sent it.
    FileChunk {
        /// The sender.
        from: ParticipantId,
        /// The transfer.
        file: String,
        /// The chunk's number.
        seq: u32,
        /// The encrypted chunk (base64).
        data: String,
        /// Whether it is the last.
        last: bool,
    },
    /// A transfer ended before its last chunk (for you).
    FileCancel {
        /// The transfer.
        file: String,
        /// Whose doing: the sender, a recipient (to the sender: the last one who wanted it),
        /// or the server (`refused`).
        by: ParticipantId,
        /// Why.
        reason: FileEnd,
    },
    /// E2EE: your `mls_group` or `mls_commit` was accepted; apply it. `epoch` is the new one.
    MlsAccepted {
        /// The group's epoch now.
        epoch: u64,
        /// The generation of the request (the room's current one).
        generation: u64,
    },
    /// E2EE: your `mls_group` or `mls_commit` lost (another commit was first, or the group
    /// does not or already exists). The current state, to retry from.
    MlsRejected {
        /// The group's epoch now (`None`: no group).
        epoch: Option<u64>,
        /// The latest GroupInfo (base64), for an external commit.
        group_info: Option<String>,
        /// The generation of the refused request. When it is older than the room's (the group
        /// it was for was reset; `mls_reset` came before this answer), `epoch` and
        /// `group_info` are `None` and the answer is only to be ignored.
        generation: u64,
    },
    /// E2EE: a moderator reset the room's MLS group. Drop the group state and any pending
    /// commit and start again as at join: the room has no group now.
    MlsReset {
        /// The moderator who reset it.
        by: ParticipantId,
        /// The new generation; requests for older ones are refused.
        generation: u64,
    },
    /// E2EE: an accepted commit of another member, in the server's order.
    MlsCommit {
        /// The epoch it was made from.
        epoch: u64,
        /// The commit (base64 MLSMessage).
        commit: String,
        /// Who committed.
        from: ParticipantId,
    },
    /// A request failed. Fatal errors are followed by the server closing the socket.
    Error(ProtocolError),
    /// The server ends this participant's session (the socket closes next).
    Bye {
        /// Why.
        reason: LeaveReason,
        /// A moderator's message, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// Why a file transfer ended early (`file_cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileEnd {
    /// The sender stopped it, or (told to the sender) every recipient did.
    Cancelled,
    /// The sender left the room.
    Left,
    /// The server refused a chunk (the `error` before says why) and ended the transfer.
    Refused,
}

/// Bytes of plaintext in a full file chunk; the last may be shorter. The AES-GCM tag adds 16.
pub const FILE_CHUNK_BYTES: usize = 64 * 1024;

impl ServerMessage {
    /// Build an `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error(ProtocolError::new(code, message))
    }
}

/// Parse one client text frame. Distinguishes malformed JSON from a well-formed message of
/// an unknown type and from a known type with bad fields, so each gets its own error code.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new(ErrorCode::BadJson, format!("not valid JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(ProtocolError::new(
            ErrorCode::BadJson,
            "a message must be a JSON object",
        ));
    };
    let Some(kind) = obj.get("type").and_then(|t| t.as_str()) else {
        return Err(ProtocolError::new(
            ErrorCode::BadMessage,
            "a message needs a string field \"type\"",
        ));
    };
    const KNOWN: [&str; 27] = [
        "join",
        "answer",
        "publish",
        "unpublish",
        "leave",
        "chat",
        "raise_hand",
        "mute",
        "mute_all",
        "allow",
        "remove",
        "ban",
        "lock",
        "end_meeting",
        "set_role",
        "set_password",
        "set_lobby",
        "set_permissions",
        "admit",
        "deny",
        "receive_video",
        "mls_group",
        "mls_commit",
        "mls_reset",
        "file_offer",
        "file_chunk",
        "file_cancel",
    ];
    let Some(kind) = KNOWN.iter().copied().find(|k| *k == kind) else {
        let mut shown: String = kind.chars().take(40).collect();
        if shown.len() < kind.len() {
            shown.push('…');
        }
        return Err(ProtocolError::new(
            ErrorCode::UnknownType,
            format!("unknown message type \"{shown}\""),
        ));
    };
    serde_json::from_value(value).map_err(|e| {
        ProtocolError::new(
            ErrorCode::BadMessage,
            format!("bad \"{kind}\" message: {e}"),
        )
    })
}

#[cfg(test)]
mod tests;

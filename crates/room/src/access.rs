//! Who may do what: the one place where Conclave's access rules are decided.
//!
//! The edges establish identity ([`Identity`]); the room core derives a [`Role`] at join and
//! asks [`authorize`] before it acts on any request. The permission-matrix test in
//! `tests.rs` asserts every cell of role x action x room state.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use conclave_proto::{ErrorCode, Permissions, ProtocolError, Role, RoomId, RoomState, Source};

/// How a server lets people in (`[access] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessMode {
    /// Anyone opens rooms; the first in a room moderates it.
    #[default]
    Open,
    /// Only signed-in users (accounts, moderator tokens) open rooms and moderate; anyone
    /// else joins as a guest and waits for a host.
    Hosts,
    /// Everyone signs in (account or token); anonymous joins are refused.
    Closed,
}

impl FromStr for AccessMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(AccessMode::Open),
            "hosts" => Ok(AccessMode::Hosts),
            "closed" => Ok(AccessMode::Closed),
            other => Err(format!(
                "access mode is \"open\", \"hosts\" or \"closed\", not \"{other}\""
            )),
        }
    }
}

impl fmt::Display for AccessMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessMode::Open => "open",
            AccessMode::Hosts => "hosts",
            AccessMode::Closed => "closed",
        })
    }
}

/// Who a connection is, as established by the edge before `join` reaches the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Not signed in. `guest_key` is the browser's random guest cookie, if it sent one; bans
    /// of anonymous guests hold on to it.
    Anonymous {
        /// The guest cookie.
        guest_key: Option<String>,
    },
    /// Signed in with a local account (session cookie).
    Account {
        /// Account name.
        username: String,
        /// Display name from the account (read-only in meetings).
        name: String,
        /// The account's role is moderator (it opens rooms and moderates); a member account
        /// joins as a participant.
        moderator: bool,
    },
    /// Holds a verified token (signature, expiry, audience and issuer checked at the edge).
    Token {
        /// `sub` (or the user id) of the token.
        subject: String,
        /// Display name from the token, if it has one (read-only then).
        name: Option<String>,
        /// The room the token is for; `None` for any room (`"*"`).
        room: Option<RoomId>,
        /// Moderator claim.
        moderator: bool,
        /// Skips the lobby.
        lobby_bypass: bool,
    },
}

impl Identity {
    /// An anonymous identity without a guest cookie.
    pub fn anonymous() -> Identity {
        Identity::Anonymous { guest_key: None }
    }

    /// Signed in (account or token): shown with the "signed in" badge.
    pub fn signed_in(&self) -> bool {
        !matches!(self, Identity::Anonymous { .. })
    }

    /// The name that comes with the identity; the client's name is ignored then.
    pub fn fixed_name(&self) -> Option<&str> {
        match self {
            Identity::Anonymous { .. } => None,
            Identity::Account { name, .. } => Some(name),
            Identity::Token { name, .. } => name.as_deref(),
        }
    }

    /// How the operator's logs name this identity: `account:<username>`, `token:<subject>`,
    /// or `guest:<participant id>` (never a display name).
    pub fn log_label(&self, participant: conclave_proto::ParticipantId) -> String {
        match self {
            Identity::Anonymous { .. } => format!("guest:{participant}"),
            Identity::Account { username, .. } => format!("account:{username}"),
            Identity::Token { subject, .. } => format!("token:{subject}"),
        }
    }

    /// What a ban of this identity holds on to.
    pub fn ban_key(&self) -> Option<BanKey> {
        match self {
            Identity::Anonymous { guest_key } => guest_key.clone().map(BanKey::Guest),
            Identity::Account { username, .. } => Some(BanKey::Account(username.clone())),
            Identity::Token { subject, .. } => Some(BanKey::Subject(subject.clone())),
        }
    }

    /// Whether this identity skips the lobby (accounts and tokens with `lobby_bypass`).
    pub fn bypasses_lobby(&self) -> bool {
        match self {
            Identity::Anonymous { .. } => false,
            Identity::Account { .. } => true,
            Identity::Token { lobby_bypass, .. } => *lobby_bypass,
        }
    }

    /// Whether this identity needs no room password (accounts and token holders: the token
    /// is the invitation).
    pub fn bypasses_password(&self) -> bool {
        self.signed_in()
    }
}

/// What a ban refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanKey {
    /// A local account.
    Account(String),
    /// A token subject.
    Subject(String),
    /// An anonymous browser's guest cookie.
    Guest(String),
}

/// The role a joiner gets. `first_in_room`: the room has no participant yet.
pub fn role_at_join(mode: AccessMode, identity: &Identity, first_in_room: bool) -> Role {
    match identity {
        Identity::Account {
            moderator: true, ..
        } => Role::Moderator,
        Identity::Account { .. } => Role::Participant,
        Identity::Token {
            moderator: true, ..
        } => Role::Moderator,
        Identity::Token { .. } => Role::Participant,
        Identity::Anonymous { .. } => match mode {
            AccessMode::Open if first_in_room => Role::Moderator,
            AccessMode::Open => Role::Participant,
            // Closed mode refuses anonymous joins before a role matters.
            AccessMode::Hosts | AccessMode::Closed => Role::Guest,
        },
    }
}

/// A moderator action (each a client message of the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModAction {
    /// `mute` (one participant's source).
    Mute,
    /// `mute_all`.
    MuteAll,
    /// `allow`.
    Allow,
    /// `remove`.
    Remove,
    /// `ban`.
    Ban,
    /// `lock`.
    Lock,
    /// `end_meeting`.
    EndMeeting,
    /// `set_role`.
    SetRole,
    /// `set_password`.
    SetPassword,
    /// `set_lobby`.
    SetLobby,
    /// `set_permissions`.
    SetPermissions,
    /// `admit`.
    Admit,
    /// `deny`.
    Deny,
    /// `mls_reset` (drop the room's E2EE group).
    MlsReset,
}

impl ModAction {
    /// The name of the client message, as in the protocol (`mute`, `set_role`, ...).
    pub fn wire_name(self) -> &'static str {
        match self {
            ModAction::Mute => "mute",
            ModAction::MuteAll => "mute_all",
            ModAction::Allow => "allow",
            ModAction::Remove => "remove",
            ModAction::Ban => "ban",
            ModAction::Lock => "lock",
            ModAction::EndMeeting => "end_meeting",
            ModAction::SetRole => "set_role",
            ModAction::SetPassword => "set_password",
            ModAction::SetLobby => "set_lobby",
            ModAction::SetPermissions => "set_permissions",
            ModAction::Admit => "admit",
            ModAction::Deny => "deny",
            ModAction::MlsReset => "mls_reset",
        }
    }

    /// Every moderator action.
    pub const ALL: [ModAction; 14] = [
        ModAction::Mute,
        ModAction::MuteAll,
        ModAction::Allow,
        ModAction::Remove,
        ModAction::Ban,
        ModAction::Lock,
        ModAction::EndMeeting,
        ModAction::SetRole,
        ModAction::SetPassword,
        ModAction::SetLobby,
        ModAction::SetPermissions,
        ModAction::Admit,
        ModAction::Deny,
        ModAction::MlsReset,
    ];
}

/// Something a participant asks to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Start sending a source.
    Publish(Source),
    /// Send a chat message.
    Chat,
    /// Share a file.
    ShareFile,
    /// Record the meeting.
    Record,
    /// Raise or lower one's hand.
    RaiseHand,
    /// A moderator action.
    Moderate(ModAction),
}

/// What a participant may do right now: the room's permissions for their role, minus the
/// sources a moderator stopped for them. Moderators may do everything.
pub fn effective_permissions(
    role: Role,
    denied: &BTreeSet<Source>,
    state: &RoomState,
) -> Permissions {
    let mut p = match role {
        Role::Moderator => return Permissions::ALL,
        Role::Participant => state.participant,
        Role::Guest => state.guest,
    };
    for s in denied {
        match s {
            Source::Microphone => p.unmute = false,
            Source::Camera => p.camera = false,
            Source::Screen => p.screen = false,
        }
    }
    p
}

/// The decision: may someone with `role` (and moderator-stopped sources `denied`) do
/// `action` in a room in `state`? A refusal carries the `forbidden` error to send.
pub fn authorize(
    role: Role,
    denied: &BTreeSet<Source>,
    state: &RoomState,
    action: Action,
) -> Result<(), ProtocolError> {
    let p = effective_permissions(role, denied, state);
    let allowed = match action {
        Action::Publish(source) => p.source(source),
        Action::Chat => p.chat,
        Action::ShareFile => p.files,
        Action::Record => p.record,
        Action::RaiseHand => true,
        Action::Moderate(_) => role == Role::Moderator,
    };
    if allowed {
        return Ok(());
    }
    let what = match action {
        Action::Publish(Source::Microphone) if denied.contains(&Source::Microphone) => {
            "a moderator muted your microphone; raise your hand to ask to speak".to_owned()
        }
        Action::Publish(Source::Camera) if denied.contains(&Source::Camera) => {
            "a moderator stopped your camera".to_owned()
        }
        Action::Publish(Source::Screen) if denied.contains(&Source::Screen) => {
            "a moderator stopped your screen sharing".to_owned()
        }
        Action::Publish(Source::Microphone) => "unmuting is not allowed in this room".to_owned(),
        Action::Publish(Source::Camera) => "cameras are not allowed in this room".to_owned(),
        Action::Publish(Source::Screen) => "screen sharing is not allowed in this room".to_owned(),
        Action::Chat => "chat is not allowed in this room".to_owned(),
        Action::ShareFile => "sharing files is not allowed in this room".to_owned(),
        Action::Record => "recording is not allowed in this room".to_owned(),
        Action::RaiseHand => unreachable!("always allowed"),
        Action::Moderate(a) => format!("{a:?} is for moderators only"),
    };
    Err(ProtocolError::new(ErrorCode::Forbidden, what))
}

/// Check a new room password against the policy: `min..=128` characters, no control
/// characters, not only whitespace.
pub fn check_room_password(password: &str, min_chars: usize) -> Result<(), String> {
    let n = password.chars().count();
    if n < min_chars {
        return Err(format!(
            "a room password has at least {min_chars} characters, this one has {n}"
        ));
    }
    if n > MAX_ROOM_PASSWORD_CHARS {
        return Err(format!(
            "a room password has at most {MAX_ROOM_PASSWORD_CHARS} characters, this one has {n}"
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("a room password must not contain control characters".into());
    }
    if password.trim().is_empty() {
        return Err("a room password must not be only spaces".into());
    }
    Ok(())
}

/// Longest room password.
pub const MAX_ROOM_PASSWORD_CHARS: usize = 128;

/// Compare two secrets without an early exit on the first differing byte.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    diff == 0
}

//! Published sources, which video a participant receives, raised hands.

use super::*;

impl RoomCore {
    pub(super) fn set_source(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        source: Source,
        on: bool,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(p) = room.participants.get_mut(&me) else {
            return;
        };
        let changed = if on {
            p.sources.insert(source)
        } else {
            p.sources.remove(&source)
        };
        if !changed {
            // Idempotent: publishing twice is not an error.
            return;
        }
        out.push(Effect::Media(MediaCommand::SetPublishing {
            publisher: me,
            source,
            allowed: on,
        }));
        let info = room.info(me).expect("present");
        for &other in room.join_order.iter().filter(|id| **id != me) {
            out.push(Effect::Media(if on {
                MediaCommand::Subscribe {
                    subscriber: other,
                    publisher: me,
                    source,
                }
            } else {
                MediaCommand::Unsubscribe {
                    subscriber: other,
                    publisher: me,
                    source,
                }
            }));
            out.push(Effect::Send(
                ConnId(other.0),
                ServerMessage::ParticipantUpdated {
                    participant: info.clone(),
                },
            ));
        }
    }

    /// Start or stop forwarding video to the sender. Only the sender's own state changes;
    /// repeating the current state changes nothing.
    pub(super) fn receive_video(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        enabled: bool,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let Some(p) = self
            .rooms
            .get_mut(room_id)
            .and_then(|r| r.participants.get_mut(&me))
        else {
            return;
        };
        if p.receive_video == enabled {
            return;
        }
        p.receive_video = enabled;
        out.push(Effect::Media(MediaCommand::SetReceiveVideo {
            participant: me,
            enabled,
        }));
    }

    pub(super) fn raise_hand(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        raised: bool,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(p) = room.participants.get_mut(&me) else {
            return;
        };
        if p.hand_raised == raised {
            return;
        }
        p.hand_raised = raised;
        let info = room.info(me).expect("present");
        // Everyone, including the sender, sees the new state.
        for &id in &room.join_order {
            out.push(Effect::Send(
                ConnId(id.0),
                ServerMessage::ParticipantUpdated {
                    participant: info.clone(),
                },
            ));
        }
    }
}

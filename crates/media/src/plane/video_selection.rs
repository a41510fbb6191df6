//! Which video a subscriber gets: last-N by most recent speaker, and `receive_video`. The
//! per-packet check is `Client::wants` (no lock: all of this is the shard's own state); here
//! the sets are recomputed when something changes, and key frames are asked for whenever a
//! subscriber starts getting a publisher's video.

use std::collections::BTreeSet;

use conclave_proto::{ParticipantId, RoomId, Source};
use str0m::media::KeyframeRequestKind;

use super::Plane;
use crate::client::SubState;

impl Plane {
    /// A publisher started speaking: it moves to the front of its room's order.
    pub(super) fn on_speech(&mut self, publisher: ParticipantId) {
        let Some(room) = self.clients.get(&publisher).map(|c| c.room.clone()) else {
            return;
        };
        if self
            .rooms
            .get_mut(&room)
            .is_some_and(|o| o.spoke(publisher))
        {
            tracing::debug!(participant = %publisher, "speaker moves to the front");
            self.refresh_last_n(&room);
        }
    }

    /// With last-N: recompute whose camera video each member of `room` gets, and ask every
    /// publisher that entered someone's set for a key frame, so that subscriber can decode
    /// at once.
    pub(super) fn refresh_last_n(&mut self, room: &RoomId) {
        let n = self.config.last_n;
        if n == 0 {
            return;
        }
        let Some(order) = self.rooms.get(room) else {
            return;
        };
        let mut entering = BTreeSet::new();
        for &member in order.members() {
            let set = order.video_set(member, n, |p| {
                self.clients
                    .get(&p)
                    .is_some_and(|c| c.allowed.contains(&Source::Camera))
            });
            let Some(c) = self.clients.get_mut(&member) else {
                continue;
            };
            if c.receive_video {
                let old = c.camera_from.as_ref();
                entering.extend(set.iter().filter(|p| !old.is_some_and(|o| o.contains(p))));
            }
            c.camera_from = Some(set);
        }
        for publisher in entering {
            self.request_keyframe(publisher, Source::Camera, KeyframeRequestKind::Pli);
        }
    }

    /// Start or stop forwarding video to `participant`; on resume ask the publishers of what
    /// it now gets for key frames.
    pub(super) fn set_receive_video(&mut self, participant: ParticipantId, enabled: bool) {
        let Some(c) = self.clients.get_mut(&participant) else {
            return;
        };
        c.receive_video = enabled;
        if !enabled {
            return;
        }
        let resumed: Vec<(ParticipantId, Source)> = c
            .subs
            .iter()
            .filter(|s| !s.source.is_audio() && matches!(s.state, SubState::Open(_)))
            .map(|s| (s.publisher, s.source))
            .filter(|(p, s)| c.wants(*p, *s))
            .collect();
        for (publisher, source) in resumed {
            self.request_keyframe(publisher, source, KeyframeRequestKind::Pli);
        }
    }
}

//! Last-N: who spoke most recently in a room, and whose camera video each subscriber gets.
//!
//! Speech is read from the RFC 6464 audio level that browsers put in a header extension of
//! every audio packet (the extension is outside the SRTP payload, so this works with
//! end-to-end encrypted media). A publisher *starts speaking* when at least
//! [`START_LOUD`] of its last [`START_WINDOW`] audio packets were at least [`LOUD_DBOV`]
//! loud, and stops after [`STOP_WINDOW`] packets without a loud one. Each start moves the
//! publisher to the front of the room's order; until anyone speaks the order is join order.
//! Only starts reorder, so two people talking at once do not make the sets flicker.

use std::collections::BTreeSet;

use conclave_proto::ParticipantId;

/// Audio at least this loud (in dBov; 0 is the loudest, -127 silence) counts as voice.
pub const LOUD_DBOV: i8 = -40;
/// Packets looked at to decide that speech started (300 ms of 20 ms packets).
pub const START_WINDOW: u32 = 15;
/// Loud packets among them that make a start.
pub const START_LOUD: u32 = 8;
/// Packets without a loud one after which speech has stopped (1 s of 20 ms packets).
pub const STOP_WINDOW: u32 = 50;

/// Per publisher: recent loud/quiet packets and whether it is speaking.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpeechDetector {
    /// Bit 0 is the latest packet; 1 means loud.
    history: u64,
    speaking: bool,
}

impl SpeechDetector {
    /// Feed one audio packet's level. Returns `true` when speech starts with this packet.
    pub fn on_level(&mut self, level_dbov: i8) -> bool {
        let loud = level_dbov >= LOUD_DBOV;
        self.history = (self.history << 1) | u64::from(loud);
        if self.speaking {
            if self.history & ((1u64 << STOP_WINDOW) - 1) == 0 {
                self.speaking = false;
            }
            false
        } else if (self.history & ((1u64 << START_WINDOW) - 1)).count_ones() >= START_LOUD {
            self.speaking = true;
            true
        } else {
            false
        }
    }
}

/// A room's participants, most recent speaker first; join order until they speak.
#[derive(Debug, Default, Clone)]
pub struct SpeakerOrder {
    order: Vec<ParticipantId>,
}

impl SpeakerOrder {
    /// A participant arrives: last in the order.
    pub fn join(&mut self, id: ParticipantId) {
        if !self.order.contains(&id) {
            self.order.push(id);
        }
    }

    /// A participant leaves.
    pub fn leave(&mut self, id: ParticipantId) {
        self.order.retain(|p| *p != id);
    }

    /// Whether nobody is left.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Everyone, in order.
    pub fn members(&self) -> &[ParticipantId] {
        &self.order
    }

    /// `id` started speaking: move it to the front. Returns whether the order changed.
    pub fn spoke(&mut self, id: ParticipantId) -> bool {
        match self.order.iter().position(|p| *p == id) {
            Some(0) | None => false,
            Some(i) => {
                let p = self.order.remove(i);
                self.order.insert(0, p);
                true
            }
        }
    }

    /// The camera publishers whose video `subscriber` gets with last-N `n`: the first `n`
    /// others in the order that publish a camera.
    pub fn video_set(
        &self,
        subscriber: ParticipantId,
        n: usize,
        publishes_camera: impl Fn(ParticipantId) -> bool,
    ) -> BTreeSet<ParticipantId> {
        self.order
            .iter()
            .copied()
            .filter(|p| *p != subscriber && publishes_camera(*p))
            .take(n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u64) -> ParticipantId {
        ParticipantId(n)
    }

    #[test]
    fn speech_starts_after_enough_loud_packets_and_stops_after_a_quiet_second() {
        let mut d = SpeechDetector::default();
        // Silence and background noise never start speech.
        for _ in 0..100 {
            assert!(!d.on_level(-127));
            assert!(!d.on_level(-60));
        }
        // A single click does not either.
        assert!(!d.on_level(-10));
        for _ in 0..20 {
            assert!(!d.on_level(-127));
        }
        // Speech: the START_LOUD-th loud packet in the window starts it, once.
        let starts: Vec<bool> = (0..30).map(|_| d.on_level(-25)).collect();
        assert_eq!(starts.iter().filter(|s| **s).count(), 1);
        assert!(starts[START_LOUD as usize - 1]);
        // Pauses between words keep it going; no second start.
        for _ in 0..5 {
            for _ in 0..20 {
                assert!(!d.on_level(-127));
            }
            assert!(!d.on_level(-30));
        }
        // A quiet second ends it; the next speech is a new start.
        for _ in 0..STOP_WINDOW {
            assert!(!d.on_level(-127));
        }
        assert_eq!((0..START_LOUD).filter(|_| d.on_level(-20)).count(), 1);
    }

    #[test]
    fn the_order_is_join_order_until_someone_speaks() {
        let mut o = SpeakerOrder::default();
        for i in 1..=4 {
            o.join(p(i));
        }
        let all = |_| true;
        assert_eq!(o.video_set(p(4), 2, all), [p(1), p(2)].into());
        assert_eq!(o.video_set(p(1), 2, all), [p(2), p(3)].into());
        assert!(o.spoke(p(3)));
        assert!(!o.spoke(p(3)), "already first");
        assert_eq!(o.members(), &[p(3), p(1), p(2), p(4)]);
        assert_eq!(o.video_set(p(4), 2, all), [p(3), p(1)].into());
        assert_eq!(o.video_set(p(3), 2, all), [p(1), p(2)].into());
        // Only camera publishers count.
        assert_eq!(o.video_set(p(4), 2, |x| x != p(1)), [p(3), p(2)].into());
        // More room than people: everyone else.
        assert_eq!(o.video_set(p(4), 10, all), [p(1), p(2), p(3)].into());
        o.leave(p(3));
        assert_eq!(o.video_set(p(4), 2, all), [p(1), p(2)].into());
        assert!(!o.spoke(p(9)), "unknown participant");
    }
}

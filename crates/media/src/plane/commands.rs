//! The room core's commands to a shard: participants come and go, subscriptions open and
//! close, publishing is allowed or stopped, answers arrive.

use std::time::{Duration, Instant};

use conclave_proto::{ParticipantId, Source};
use conclave_room::MediaCommand;
use str0m::media::KeyframeRequestKind;

use super::{NACK_HISTORY_MAX_PACKETS, Plane, RTX_RATIO_CAP};
use crate::MediaEvent;
use crate::client::{Client, OfferOut};

impl Plane {
    pub(super) fn on_command(&mut self, cmd: MediaCommand) {
        let now = Instant::now();
        match cmd {
            MediaCommand::AddParticipant { participant, room } => {
                let c = Client::new(
                    participant,
                    room.clone(),
                    self.shard,
                    self.announce,
                    self.config.h264,
                    now,
                );
                self.clients.insert(participant, c);
                self.rooms
                    .entry(room.clone())
                    .or_default()
                    .join(participant);
                self.refresh_last_n(&room);
                self.offer_if_needed(participant);
            }
            MediaCommand::SetReceiveVideo {
                participant,
                enabled,
            } => self.set_receive_video(participant, enabled),
            MediaCommand::RemoveParticipant { participant } => self.remove(participant),
            MediaCommand::Subscribe {
                subscriber,
                publisher,
                source,
            } => {
                let Some(c) = self.clients.get_mut(&subscriber) else {
                    return;
                };
                c.subscribe(publisher, source);
                self.forwarding
                    .entry((publisher, source))
                    .or_default()
                    .insert(subscriber);
                self.offer_if_needed(subscriber);
            }
            MediaCommand::Unsubscribe {
                subscriber,
                publisher,
                source,
            } => {
                if let Some(set) = self.forwarding.get_mut(&(publisher, source)) {
                    set.remove(&subscriber);
                    if set.is_empty() {
                        self.forwarding.remove(&(publisher, source));
                    }
                }
                if let Some(c) = self.clients.get_mut(&subscriber) {
                    c.unsubscribe(publisher, source);
                    self.offer_if_needed(subscriber);
                }
            }
            MediaCommand::SetPublishing {
                publisher,
                source,
                allowed,
            } => {
                let mut room = None;
                if let Some(c) = self.clients.get_mut(&publisher) {
                    if allowed {
                        c.allowed.insert(source);
                    } else {
                        c.allowed.remove(&source);
                    }
                    room = Some(c.room.clone());
                }
                if allowed {
                    self.request_keyframe(publisher, source, KeyframeRequestKind::Pli);
                }
                if let Some(room) = room.filter(|_| source == Source::Camera) {
                    self.refresh_last_n(&room);
                }
            }
            MediaCommand::Answer { participant, sdp } => {
                let Some(c) = self.clients.get_mut(&participant) else {
                    return;
                };
                match c.accept_answer(&sdp) {
                    Ok(opened) => {
                        // Bound the resend buffer of each new downstream stream: video keeps
                        // `nack_history` for NACKs, audio (not NACK-able) keeps nothing.
                        let history = self.config.nack_history;
                        for (publisher, source) in &opened {
                            let Some(mid) = c.open_mid(*publisher, *source) else {
                                continue;
                            };
                            if let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None) {
                                let (packets, age) = if source.is_audio() {
                                    (1, Duration::ZERO)
                                } else {
                                    (NACK_HISTORY_MAX_PACKETS, history)
                                };
                                tx.set_rtx_cache(packets, age, Some(RTX_RATIO_CAP));
                            }
                        }
                        for (publisher, source) in opened {
                            self.request_keyframe(publisher, source, KeyframeRequestKind::Pli);
                        }
                        self.poll(participant);
                        self.offer_if_needed(participant);
                    }
                    Err((error, fatal)) => {
                        if fatal {
                            self.remove(participant);
                        }
                        (self.events)(MediaEvent::Error {
                            participant,
                            error,
                            fatal,
                        });
                    }
                }
            }
        }
    }

    pub(super) fn offer_if_needed(&mut self, id: ParticipantId) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if let Some(OfferOut { sdp, slots, tracks }) = c.next_offer() {
            (self.events)(MediaEvent::Offer {
                participant: id,
                sdp,
                slots,
                tracks,
            });
        }
        self.poll(id);
    }

    /// Release everything a participant holds: its Rtc, addresses, forwarding entries.
    pub(super) fn remove(&mut self, id: ParticipantId) {
        let Some(mut c) = self.clients.remove(&id) else {
            return;
        };
        c.rtc.disconnect();
        for a in &c.addrs {
            self.by_addr.remove(a);
            self.sockets.disconnect(*a);
        }
        self.forwarding.retain(|(publisher, _), subs| {
            subs.remove(&id);
            *publisher != id && !subs.is_empty()
        });
        for other in self.clients.values_mut() {
            for source in Source::ALL {
                other.unsubscribe(id, source);
            }
        }
        if let Some(order) = self.rooms.get_mut(&c.room) {
            order.leave(id);
            if order.is_empty() {
                self.rooms.remove(&c.room);
            } else {
                self.refresh_last_n(&c.room);
            }
        }
        let others: Vec<ParticipantId> = self.clients.keys().copied().collect();
        for o in others {
            self.offer_if_needed(o);
        }
    }
}

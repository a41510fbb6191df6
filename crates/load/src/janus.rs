//! A blocking client for Janus's HTTP REST API and its videoroom plugin, so the load
//! generator can put the same load on Janus as on Conclave.
//!
//! Janus speaks JSON over plain HTTP (`http://127.0.0.1:8088/janus`): `POST {base}` makes a
//! session, `POST {base}/{session}` attaches plugin handles, `POST {base}/{session}/{handle}`
//! talks to a plugin. A plugin answers a quick request (`exists`, `create`) in the POST's
//! response (`"janus":"success"`); for a slow one (`joinandconfigure`, `join`, `start`,
//! `update`) the POST only gets `"janus":"ack"` and the real answer (`"janus":"event"`, with
//! the SDP in `jsep`) arrives later through the session's long poll (`GET {base}/{session}`),
//! carrying the request's `transaction`.
//!
//! Every [`JanusSession`] runs one background thread that long-polls its session and hands
//! each event to the request waiting for that transaction; events nobody waits for (such as
//! `webrtcup`, `media`, `hangup`, new publishers in the room) are kept in a bounded queue
//! ([`JanusSession::take_events`], [`JanusSession::wait_event`]). Each long poll also counts
//! as activity for Janus, so while the poller runs the session never times out and
//! [`JanusSession::keepalive`] is optional.
//!
//! Every call is bounded in time ([`DEFAULT_TIMEOUT`], see [`JanusSession::set_timeout`])
//! and fails with an error that names the request and, for Janus's own errors, carries a
//! [`JanusError`] with Janus's code and reason. The HTTP client is a minimal HTTP/1.1 one on
//! [`TcpStream`] (one connection per request, `Connection: close`): Janus here is plain HTTP
//! on loopback.
//!
//! To run Janus itself for tests and benchmarks, see `bench/janus-netns.sh`.
//!
//! What Janus (1.1.2) insists on, found by trying:
//! - Its ICE agent (libnice) gathers no candidate on a loopback device: Janus on a machine
//!   whose only network is `lo` fails `joinandconfigure` with error 490 "Error setting ICE
//!   locally". Run it, and the clients, in the namespace `bench/janus-netns.sh` makes.
//! - A feed can be subscribed to only once its publisher has finished ICE and DTLS
//!   (`webrtcup` on the publisher's handle); before that `join` fails with 428 "No such
//!   feed". Other publishers in the room learn of a new feed at that moment, by an
//!   unsolicited `event` with `publishers` in its data.
//! - Janus sends its candidates inside its SDP (half trickle, `a=end-of-candidates`), all
//!   m-lines bundled on one port with rtcp-mux. Ours must be in our SDP too (str0m puts the
//!   host candidates added with `add_local_candidate` there); the trickle `completed` that
//!   [`JanusSession::publish`] and [`JanusSession::start`] send only closes the list.
//! - One handle carries one PeerConnection: a participant needs one handle to publish and
//!   another to subscribe (all its subscriptions can share that one, through
//!   [`JanusSession::update_subscription`]).
//!
//! ```no_run
//! # use conclave_load::janus::JanusSession;
//! # fn offer() -> String { String::new() }
//! # fn answer_to(_offer: &str) -> String { String::new() }
//! # fn main() -> anyhow::Result<()> {
//! let session = JanusSession::create("http://127.0.0.1:8088/janus")?;
//! let publisher = session.attach_videoroom()?;
//! session.ensure_room(publisher, 1234, 100)?;
//! let (feed, answer) = session.publish(publisher, 1234, "load-0", &offer())?;
//! // ... apply `answer`, connect (ICE + DTLS) ...
//! let subscriber = session.attach_videoroom()?;
//! let (offer, mids) = session.subscribe(subscriber, 1234, &[feed])?;
//! session.start(subscriber, 1234, &answer_to(&offer))?;
//! session.destroy()?;
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

/// The videoroom plugin's package name.
pub const VIDEOROOM: &str = "janus.plugin.videoroom";

/// How long a request (and the wait for its asynchronous answer) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Video bitrate cap of rooms made by [`JanusSession::ensure_room`], in bit/s: Janus sends
/// it to publishers as REMB. Well above the 500 kbit/s a load participant sends.
pub const ROOM_BITRATE: u64 = 2_000_000;

/// Videoroom error code: no such room.
pub const ERROR_NO_SUCH_ROOM: i64 = 426;
/// Videoroom error code: the room already exists.
pub const ERROR_ROOM_EXISTS: i64 = 427;
/// Videoroom error code: no such feed.
pub const ERROR_NO_SUCH_FEED: i64 = 428;
/// Janus core error code: no such session.
pub const ERROR_SESSION_NOT_FOUND: i64 = 458;

/// Janus answers an idle long poll after 30 s; allow some slack on top.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(40);
/// Events per long-poll answer.
const LONG_POLL_MAX_EVENTS: u32 = 20;
/// Consecutive failed long polls after which the session counts as lost.
const LONG_POLL_MAX_FAILURES: u32 = 5;
/// Unsolicited events kept per session; the oldest go first.
const MAX_UNSOLICITED: usize = 1024;
/// Largest HTTP response accepted.
const MAX_RESPONSE: usize = 16 << 20;

/// An error reported by Janus itself: a core error (`"janus":"error"`) or a plugin error
/// (`error_code` in the plugin's data). Reachable from an [`anyhow::Error`] with
/// `err.downcast_ref::<JanusError>()`.
#[derive(Debug, Clone, PartialEq)]
pub struct JanusError {
    /// The request that failed (e.g. `"videoroom joinandconfigure"`).
    pub request: String,
    /// Janus's numeric error code (e.g. 426 no such room, 458 no such session).
    pub code: i64,
    /// Janus's text.
    pub reason: String,
}

impl std::fmt::Display for JanusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Janus {}: error {}: {}",
            self.request, self.code, self.reason
        )
    }
}

impl std::error::Error for JanusError {}

/// The Janus error code inside an error returned by this module, if it is one.
pub fn error_code(err: &anyhow::Error) -> Option<i64> {
    err.downcast_ref::<JanusError>().map(|e| e.code)
}

/// A message Janus pushed that no request was waiting for (`webrtcup`, `media`, `hangup`,
/// `slowlink`, `detached`, or a plugin `event` such as new publishers in a room).
#[derive(Debug, Clone)]
pub struct JanusEvent {
    /// The handle it concerns (Janus's `sender`), if any.
    pub handle: Option<u64>,
    /// The message as Janus sent it.
    pub message: Value,
}

impl JanusEvent {
    /// The message's kind (`"webrtcup"`, `"media"`, `"event"`, ...).
    pub fn kind(&self) -> &str {
        self.message["janus"].as_str().unwrap_or("")
    }

    /// The plugin's data of an `event`, if any.
    pub fn plugin_data(&self) -> Option<&Value> {
        self.message.get("plugindata").and_then(|p| p.get("data"))
    }

    /// The SDP an `event` carries, as (`"offer"` or `"answer"`, SDP), if any.
    pub fn jsep(&self) -> Option<(&str, &str)> {
        let jsep = self.message.get("jsep")?;
        Some((jsep["type"].as_str()?, jsep["sdp"].as_str()?))
    }

    /// For a subscription's handle: Janus re-offered by itself (a subscribed publisher left,
    /// `"videoroom":"updated"` with an offer). Returns the offer and the mid → feed map of
    /// the streams still active; answer with [`JanusSession::start`].
    pub fn subscription_update(&self) -> Option<Subscription> {
        let data = self.plugin_data()?;
        if data["videoroom"] != "updated" {
            return None;
        }
        match self.jsep()? {
            ("offer", sdp) => Some((sdp.to_string(), stream_feeds(data))),
            _ => None,
        }
    }
}

/// One Janus session over the HTTP API, with its long-poll thread. Methods take `&self` and
/// may be called from several threads at once. Dropping it destroys the session (best
/// effort); [`JanusSession::destroy`] does the same and reports errors.
pub struct JanusSession {
    endpoint: Arc<Endpoint>,
    id: u64,
    shared: Arc<Shared>,
    timeout: Duration,
    destroyed: bool,
}

/// What the caller of [`JanusSession::subscribe`] gets: Janus's SDP offer and, per m-line
/// mid, the publisher feed it carries.
pub type Subscription = (String, Vec<(String, u64)>);

impl JanusSession {
    /// Create a session: `POST {"janus":"create"}` to `base` (e.g.
    /// `"http://127.0.0.1:8088/janus"`; plain `http://` only), and start the long-poll
    /// thread.
    pub fn create(base: &str) -> Result<JanusSession> {
        let endpoint = Arc::new(Endpoint::parse(base)?);
        let reply = post(
            &endpoint,
            &endpoint.path,
            json!({"janus": "create"}),
            DEFAULT_TIMEOUT,
            "create",
        )?;
        expect_kind(&reply, "success", "create")?;
        let id = reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("Janus create: no session id in {reply}"))?;
        let shared = Arc::new(Shared::default());
        let (ep, sh) = (endpoint.clone(), shared.clone());
        std::thread::Builder::new()
            .name(format!("janus-poll-{id}"))
            .spawn(move || poll_loop(&ep, id, &sh))
            .context("cannot start the Janus long-poll thread")?;
        Ok(JanusSession {
            endpoint,
            id,
            shared,
            timeout: DEFAULT_TIMEOUT,
            destroyed: false,
        })
    }

    /// Janus's id of this session.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Change the bound on every later request and wait (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Attach a handle to `janus.plugin.videoroom`; returns the handle id. A publisher and
    /// each subscription need a handle of their own (one PeerConnection per handle).
    pub fn attach_videoroom(&self) -> Result<u64> {
        let reply = self.core(
            None,
            json!({"janus": "attach", "plugin": VIDEOROOM}),
            "attach",
        )?;
        expect_kind(&reply, "success", "attach")?;
        reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("Janus attach: no handle id in {reply}"))
    }

    /// Detach a handle (closes its PeerConnection and leaves the room).
    pub fn detach(&self, handle: u64) -> Result<()> {
        let reply = self.core(Some(handle), json!({"janus": "detach"}), "detach")?;
        expect_kind(&reply, "success", "detach")
    }

    /// Hang up a handle's PeerConnection but keep the handle.
    pub fn hangup(&self, handle: u64) -> Result<()> {
        let reply = self.core(Some(handle), json!({"janus": "hangup"}), "hangup")?;
        expect_kind(&reply, "success", "hangup")
    }

    /// Create room `room` unless it exists: `publishers` = `max_publishers`, video bitrate
    /// cap [`ROOM_BITRATE`], Opus and VP8 only, no recording, not permanent. A room made at
    /// the same moment by someone else counts as success.
    pub fn ensure_room(&self, handle: u64, room: u64, max_publishers: u32) -> Result<()> {
        let (data, _) = self.plugin(
            handle,
            json!({"request": "exists", "room": room}),
            None,
            "videoroom exists",
        )?;
        if data["exists"].as_bool() == Some(true) {
            return Ok(());
        }
        let create = json!({
            "request": "create",
            "room": room,
            "description": format!("conclave-bench {room}"),
            "publishers": max_publishers,
            "bitrate": ROOM_BITRATE,
            "record": false,
            "audiocodec": "opus",
            "videocodec": "vp8",
            "permanent": false,
            "is_private": false,
        });
        match self.plugin(handle, create, None, "videoroom create") {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some(ERROR_ROOM_EXISTS) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Destroy room `room` (its participants are kicked out).
    pub fn destroy_room(&self, handle: u64, room: u64) -> Result<()> {
        self.plugin(
            handle,
            json!({"request": "destroy", "room": room}),
            None,
            "videoroom destroy",
        )?;
        Ok(())
    }

    /// Join room `room` as a publisher named `display` with `offer_sdp` (our offer: audio and
    /// video send-only, our candidates in it): `joinandconfigure`, then a trickle
    /// `{"completed":true}`. Returns our feed id and Janus's SDP answer (with Janus's
    /// candidates in it).
    pub fn publish(
        &self,
        handle: u64,
        room: u64,
        display: &str,
        offer_sdp: &str,
    ) -> Result<(u64, String)> {
        let body = json!({
            "request": "joinandconfigure",
            "room": room,
            "ptype": "publisher",
            "display": display,
        });
        let jsep = json!({"type": "offer", "sdp": offer_sdp});
        let what = "videoroom joinandconfigure";
        let (data, jsep) = self.plugin(handle, body, Some(jsep), what)?;
        if data["videoroom"] != "joined" {
            bail!("Janus {what}: expected \"joined\", got {data}");
        }
        let feed = data["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("Janus {what}: no feed id in {data}"))?;
        let answer = jsep_sdp(jsep.as_ref(), "answer", what)?;
        self.trickle_completed(handle)?;
        Ok((feed, answer))
    }

    /// Join room `room` as a subscriber to `feeds` (all streams of each) on `handle` (a handle
    /// of its own, not the publisher's). Returns Janus's SDP offer and, for each m-line mid
    /// in it, the feed it carries. Answer it with [`JanusSession::start`].
    ///
    /// Janus refuses (error 428, "No such feed") a feed whose publisher has not finished ICE
    /// and DTLS yet (its handle has not had `webrtcup`); see
    /// [`JanusSession::subscribe_when_ready`] and [`JanusSession::list_participants`].
    pub fn subscribe(&self, handle: u64, room: u64, feeds: &[u64]) -> Result<Subscription> {
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let body = json!({
            "request": "join",
            "room": room,
            "ptype": "subscriber",
            "streams": streams,
        });
        let what = "videoroom join (subscriber)";
        let (data, jsep) = self.plugin(handle, body, None, what)?;
        if data["videoroom"] != "attached" {
            bail!("Janus {what}: expected \"attached\", got {data}");
        }
        let offer = jsep_sdp(jsep.as_ref(), "offer", what)?;
        Ok((offer, stream_feeds(&data)))
    }

    /// [`JanusSession::subscribe`], retrying while Janus answers "No such feed" (428) for up
    /// to `wait`: for feeds that were just published and may not have connected yet.
    pub fn subscribe_when_ready(
        &self,
        handle: u64,
        room: u64,
        feeds: &[u64],
        wait: Duration,
    ) -> Result<Subscription> {
        let deadline = Instant::now() + wait;
        loop {
            match self.subscribe(handle, room, feeds) {
                Err(e)
                    if error_code(&e) == Some(ERROR_NO_SUCH_FEED) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Everyone in room `room` (`listparticipants`): (feed id, display name, whether they
    /// publish media now, i.e. can be subscribed to).
    pub fn list_participants(&self, handle: u64, room: u64) -> Result<Vec<(u64, String, bool)>> {
        let (data, _) = self.plugin(
            handle,
            json!({"request": "listparticipants", "room": room}),
            None,
            "videoroom listparticipants",
        )?;
        Ok(data["participants"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|p| {
                        Some((
                            p["id"].as_u64()?,
                            p["display"].as_str().unwrap_or("").to_string(),
                            p["publisher"].as_bool().unwrap_or(false),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Change a subscription made by [`JanusSession::subscribe`]: add every stream of
    /// `add`, drop every stream of `remove` (`update`). Returns Janus's new SDP offer and
    /// the mid → feed map of all its active streams when Janus renegotiates (answer with
    /// [`JanusSession::start`]), or `None` when nothing changed. Janus keeps the m-lines of
    /// dropped streams (`a=inactive`) and may reuse them later.
    ///
    /// When a subscribed publisher leaves, Janus re-offers by itself: see
    /// [`JanusEvent::subscription_update`].
    pub fn update_subscription(
        &self,
        handle: u64,
        add: &[u64],
        remove: &[u64],
    ) -> Result<Option<Subscription>> {
        let mut body = json!({"request": "update"});
        if !add.is_empty() {
            body["subscribe"] = add.iter().map(|f| json!({"feed": f})).collect();
        }
        if !remove.is_empty() {
            body["unsubscribe"] = remove.iter().map(|f| json!({"feed": f})).collect();
        }
        let what = "videoroom update";
        let (data, jsep) = self.plugin(handle, body, None, what)?;
        match jsep {
            Some(j) => Ok(Some((
                jsep_sdp(Some(&j), "offer", what)?,
                stream_feeds(&data),
            ))),
            None => Ok(None),
        }
    }

    /// Send our SDP answer to a subscription's offer (`start`), then a trickle
    /// `{"completed":true}`. `room` is accepted for symmetry and sent along.
    pub fn start(&self, handle: u64, room: u64, answer_sdp: &str) -> Result<()> {
        let body = json!({"request": "start", "room": room});
        let jsep = json!({"type": "answer", "sdp": answer_sdp});
        let what = "videoroom start";
        let (data, _) = self.plugin(handle, body, Some(jsep), what)?;
        if data["started"] != "ok" && data["videoroom"] != "updated" {
            bail!("Janus {what}: expected \"started\":\"ok\", got {data}");
        }
        self.trickle_completed(handle)
    }

    /// Tell Janus that all our ICE candidates are known (they are in our SDP).
    pub fn trickle_completed(&self, handle: u64) -> Result<()> {
        let msg = json!({"janus": "trickle", "candidate": {"completed": true}});
        let reply = self.core(Some(handle), msg, "trickle")?;
        expect_kind(&reply, "ack", "trickle")
    }

    /// Refresh the session (Janus drops a session after 60 s without requests). Optional:
    /// the long-poll thread's requests refresh it too.
    pub fn keepalive(&self) -> Result<()> {
        let reply = self.core(None, json!({"janus": "keepalive"}), "keepalive")?;
        expect_kind(&reply, "ack", "keepalive")
    }

    /// Take every unsolicited event received so far, oldest first.
    pub fn take_events(&self) -> Vec<JanusEvent> {
        self.shared.lock().unsolicited.drain(..).collect()
    }

    /// Wait up to `timeout` for an unsolicited event of kind `kind` (e.g. `"webrtcup"`)
    /// from `handle` (or from anything when `None`), and take it out of the queue; other
    /// events stay queued.
    pub fn wait_event(
        &self,
        handle: Option<u64>,
        kind: &str,
        timeout: Duration,
    ) -> Result<JanusEvent> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            let hit = state
                .unsolicited
                .iter()
                .position(|e| e.kind() == kind && (handle.is_none() || e.handle == handle));
            if let Some(i) = hit {
                return Ok(state.unsolicited.remove(i).expect("index just found"));
            }
            if let Some(why) = &state.dead {
                bail!("Janus session {}: {why}", self.id);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("Janus: no \"{kind}\" event within {timeout:?}");
            }
            state = self
                .shared
                .cond
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Destroy the session (its handles are detached) and stop the long-poll thread.
    pub fn destroy(mut self) -> Result<()> {
        self.destroy_inner()
    }

    fn destroy_inner(&mut self) -> Result<()> {
        if self.destroyed {
            return Ok(());
        }
        self.destroyed = true;
        let reply = self.core(None, json!({"janus": "destroy"}), "destroy");
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(stream) = self
            .shared
            .polling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        self.shared.cond.notify_all();
        expect_kind(&reply?, "success", "destroy")
    }

    /// A core request (no plugin body) to the session or one of its handles; returns the
    /// POST's answer, with Janus errors turned into [`JanusError`].
    fn core(&self, handle: Option<u64>, msg: Value, what: &str) -> Result<Value> {
        let path = self.path(handle);
        let reply = post(&self.endpoint, &path, msg, self.timeout, what)?;
        check_error(&reply, what)?;
        Ok(reply)
    }

    /// A request to the plugin on `handle`. Returns the plugin's data and Janus's jsep, from
    /// the POST's answer (`success`) or from the asynchronous `event` after an `ack`.
    fn plugin(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
        what: &str,
    ) -> Result<(Value, Option<Value>)> {
        let transaction = new_transaction();
        let mut msg = json!({"janus": "message", "transaction": transaction, "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        // Registered before the POST: the event can arrive before the POST's answer is read.
        let _expect = self.shared.expect(&transaction);
        let reply = post(
            &self.endpoint,
            &self.path(Some(handle)),
            msg,
            self.timeout,
            what,
        )?;
        check_error(&reply, what)?;
        let reply = match reply["janus"].as_str() {
            Some("success") => reply,
            Some("ack") => self.wait_reply(&transaction, what)?,
            _ => bail!("Janus {what}: unexpected answer {reply}"),
        };
        check_error(&reply, what)?;
        let data = reply
            .get("plugindata")
            .and_then(|p| p.get("data"))
            .cloned()
            .ok_or_else(|| anyhow!("Janus {what}: no plugin data in {reply}"))?;
        if let Some(code) = data.get("error_code") {
            return Err(JanusError {
                request: what.to_string(),
                code: code.as_i64().unwrap_or(-1),
                reason: data["error"]
                    .as_str()
                    .unwrap_or("(no reason given)")
                    .to_string(),
            }
            .into());
        }
        let jsep = reply.get("jsep").filter(|j| j.is_object()).cloned();
        Ok((data, jsep))
    }

    /// Wait for the long-poll thread to deliver the event of `transaction`.
    fn wait_reply(&self, transaction: &str, what: &str) -> Result<Value> {
        let deadline = Instant::now() + self.timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(v) = state.replies.remove(transaction) {
                return Ok(v);
            }
            if let Some(why) = &state.dead {
                bail!("Janus {what}: session {} lost: {why}", self.id);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "Janus {what}: no answer within {:?} (request acknowledged)",
                    self.timeout
                );
            }
            state = self
                .shared
                .cond
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn path(&self, handle: Option<u64>) -> String {
        match handle {
            Some(h) => format!("{}/{}/{}", self.endpoint.path, self.id, h),
            None => format!("{}/{}", self.endpoint.path, self.id),
        }
    }
}

impl Drop for JanusSession {
    fn drop(&mut self) {
        let _ = self.destroy_inner();
    }
}

impl std::fmt::Debug for JanusSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JanusSession")
            .field("base", &self.endpoint.path)
            .field("addr", &self.endpoint.addr)
            .field("id", &self.id)
            .finish()
    }
}

/// State shared between a session's callers and its long-poll thread.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    stop: AtomicBool,
    /// The connection of the long poll under way, so that destroying the session can end
    /// it at once (Janus itself would hold it open for up to 30 s).
    polling: Mutex<Option<TcpStream>>,
}

#[derive(Default)]
struct State {
    /// Transactions a caller waits for.
    expected: HashSet<String>,
    /// Their events, until taken.
    replies: HashMap<String, Value>,
    unsolicited: VecDeque<JanusEvent>,
    /// Why the long poll stopped, once it has.
    dead: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expect<'a>(&'a self, transaction: &str) -> Expectation<'a> {
        self.lock().expected.insert(transaction.to_string());
        Expectation {
            shared: self,
            transaction: transaction.to_string(),
        }
    }

    fn deliver(&self, message: Value) {
        if message["janus"] == "keepalive" {
            return;
        }
        tracing::trace!("janus event: {message}");
        let mut state = self.lock();
        let txn = message["transaction"].as_str().map(str::to_string);
        match txn {
            Some(t) if state.expected.contains(&t) => {
                state.replies.insert(t, message);
            }
            _ => {
                if state.unsolicited.len() >= MAX_UNSOLICITED {
                    state.unsolicited.pop_front();
                }
                let handle = message["sender"].as_u64();
                state.unsolicited.push_back(JanusEvent { handle, message });
            }
        }
        drop(state);
        self.cond.notify_all();
    }

    fn die(&self, why: String) {
        let mut state = self.lock();
        if state.dead.is_none() {
            state.dead = Some(why);
        }
        drop(state);
        self.cond.notify_all();
    }
}

/// Unregisters a transaction (and drops a late reply) when the waiting request ends.
struct Expectation<'a> {
    shared: &'a Shared,
    transaction: String,
}

impl Drop for Expectation<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.expected.remove(&self.transaction);
        state.replies.remove(&self.transaction);
    }
}

/// The session's long poll: `GET {base}/{session}?maxev=N` until the session is destroyed
/// or lost. Janus answers with up to N events, or a `keepalive` after 30 s idle.
fn poll_loop(endpoint: &Endpoint, session: u64, shared: &Shared) {
    let mut failures = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        let path = format!(
            "{}/{}?maxev={}&rid={}",
            endpoint.path,
            session,
            LONG_POLL_MAX_EVENTS,
            unix_millis()
        );
        let answer = http_with(
            endpoint,
            "GET",
            &path,
            None,
            LONG_POLL_TIMEOUT,
            Some(&shared.polling),
            &shared.stop,
        );
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        match answer {
            Ok(v) => {
                failures = 0;
                let items = match v {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for item in items {
                    if item["janus"] == "error"
                        && item.get("transaction").is_none_or(|t| t.is_null())
                    {
                        let code = item["error"]["code"].as_i64().unwrap_or(-1);
                        let reason = item["error"]["reason"].as_str().unwrap_or("");
                        shared.die(format!("long poll: error {code}: {reason}"));
                        return;
                    }
                    shared.deliver(item);
                }
            }
            Err(e) => {
                failures += 1;
                if failures >= LONG_POLL_MAX_FAILURES {
                    shared.die(format!("long poll failed {failures} times: {e:#}"));
                    return;
                }
                std::thread::sleep(Duration::from_millis(200 * u64::from(failures)));
            }
        }
    }
    shared.die("session destroyed".to_string());
}

/// POST `msg` (with a fresh transaction unless it has one) to `path`; returns Janus's JSON.
fn post(
    endpoint: &Endpoint,
    path: &str,
    mut msg: Value,
    timeout: Duration,
    what: &str,
) -> Result<Value> {
    if msg.get("transaction").is_none() {
        msg["transaction"] = Value::String(new_transaction());
    }
    let body = msg.to_string();
    tracing::trace!("janus POST {path}: {body}");
    let reply = http(endpoint, "POST", path, Some(&body), timeout)
        .with_context(|| format!("Janus {what}"))?;
    tracing::trace!("janus reply: {reply}");
    Ok(reply)
}

/// Turn a Janus core error (`"janus":"error"`) into a [`JanusError`].
fn check_error(reply: &Value, what: &str) -> Result<()> {
    if reply["janus"] == "error" {
        return Err(JanusError {
            request: what.to_string(),
            code: reply["error"]["code"].as_i64().unwrap_or(-1),
            reason: reply["error"]["reason"]
                .as_str()
                .unwrap_or("(no reason given)")
                .to_string(),
        }
        .into());
    }
    Ok(())
}

fn expect_kind(reply: &Value, kind: &str, what: &str) -> Result<()> {
    check_error(reply, what)?;
    if reply["janus"] != kind {
        bail!("Janus {what}: expected \"{kind}\", got {reply}");
    }
    Ok(())
}

fn jsep_sdp(jsep: Option<&Value>, kind: &str, what: &str) -> Result<String> {
    let jsep = jsep.ok_or_else(|| anyhow!("Janus {what}: no jsep ({kind}) in the answer"))?;
    if jsep["type"] != kind {
        bail!("Janus {what}: expected a jsep of type {kind}, got {jsep}");
    }
    jsep["sdp"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("Janus {what}: jsep without sdp"))
}

/// The mid → feed map from a subscriber's `attached`/`updated` data (`streams`); streams no
/// longer active (their feed left or was unsubscribed) have no feed and are left out.
fn stream_feeds(data: &Value) -> Vec<(String, u64)> {
    data["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|s| Some((s["mid"].as_str()?.to_string(), s["feed_id"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A transaction id unique in this process and very likely across processes.
fn new_transaction() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("c{:x}{:08x}", std::process::id(), nanos)
    });
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Where Janus's API is: a socket address and the base path (e.g. `/janus`).
struct Endpoint {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl Endpoint {
    fn parse(base: &str) -> Result<Endpoint> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("Janus URL {base:?}: only plain http:// is supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("Janus URL {base:?}: no host");
        }
        let with_port = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("Janus URL {base:?}: cannot resolve {authority}"))?
            .next()
            .ok_or_else(|| anyhow!("Janus URL {base:?}: {authority} has no address"))?;
        Ok(Endpoint {
            addr,
            host: authority.to_string(),
            path: path.trim_end_matches('/').to_string(),
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`, bounded by `timeout` as a whole; the
/// answer must be 200 with a JSON body.
fn http(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Value> {
    http_with(
        endpoint,
        method,
        path,
        body,
        timeout,
        None,
        &AtomicBool::new(false),
    )
}

/// [`http`], with the connection left in `slot` while the request is under way, so that
/// another thread can shut it down after setting `stop`.
fn http_with(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
    slot: Option<&Mutex<Option<TcpStream>>>,
    stop: &AtomicBool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    let target = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect_timeout(&endpoint.addr, timeout)
        .with_context(|| format!("cannot connect to {}", endpoint.addr))?;
    let _registered = match slot {
        Some(slot) => {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = stream.try_clone().ok();
            if stop.load(Ordering::SeqCst) {
                bail!("{method} {target}: stopped");
            }
            Some(SlotGuard(slot))
        }
        None => None,
    };
    stream.set_nodelay(true).ok();
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
        endpoint.host
    );
    if let Some(b) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    request.push_str("\r\n");
    if let Some(b) = body {
        request.push_str(b);
    }
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("{method} {target}: cannot send"))?;

    let mut buf = Vec::with_capacity(4096);
    let mut head: Option<(usize, u16, BodyLength)> = None;
    let mut chunk = [0u8; 16384];
    loop {
        if let Some((start, _, BodyLength::Fixed(n))) = &head
            && buf.len() >= start + n
        {
            break;
        }
        if let Some((start, _, BodyLength::Chunked)) = &head
            && decode_chunked(&buf[*start..])?.is_some()
        {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{method} {target}: no complete answer within {timeout:?}");
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!("{method} {target}: no complete answer within {timeout:?}")
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("{method} {target}: cannot read")),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE {
            bail!("{method} {target}: answer larger than {MAX_RESPONSE} bytes");
        }
        if head.is_none() {
            head = parse_head(&buf).with_context(|| format!("{method} {target}"))?;
        }
    }
    let (start, status, length) =
        head.ok_or_else(|| anyhow!("{method} {target}: connection closed before an answer"))?;
    let payload = match length {
        BodyLength::Fixed(n) => {
            if buf.len() < start + n {
                bail!("{method} {target}: connection closed in the middle of the answer");
            }
            buf[start..start + n].to_vec()
        }
        BodyLength::Chunked => decode_chunked(&buf[start..])?
            .ok_or_else(|| anyhow!("{method} {target}: truncated chunked answer"))?,
        BodyLength::UntilClose => buf[start..].to_vec(),
    };
    let text = String::from_utf8_lossy(&payload);
    if status != 200 {
        let snippet: String = text.chars().take(300).collect();
        bail!("{method} {target}: HTTP {status}: {snippet}");
    }
    serde_json::from_str(&text).with_context(|| {
        let snippet: String = text.chars().take(300).collect();
        format!("{method} {target}: answer is not JSON: {snippet}")
    })
}

/// Empties a connection slot when its request ends.
struct SlotGuard<'a>(&'a Mutex<Option<TcpStream>>);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[derive(Debug, Clone, Copy)]
enum BodyLength {
    Fixed(usize),
    Chunked,
    UntilClose,
}

/// Status line and headers, once complete: (body offset, status, body length).
fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, BodyLength)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            bail!("HTTP header larger than 64 KiB");
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x answer: {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP status line {status_line:?}"))?;
    let mut length = BodyLength::UntilClose;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| anyhow!("bad Content-Length {value:?}"))?;
            length = BodyLength::Fixed(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            length = BodyLength::Chunked;
            break;
        }
    }
    Ok(Some((end + 4, status, length)))
}

/// Decode a complete chunked body; `None` while incomplete.
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| anyhow!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    use str0m::change::{SdpAnswer, SdpOffer};
    use str0m::format::Codec;
    use str0m::media::{Direction, MediaKind, Mid};
    use str0m::net::{Protocol, Receive};
    use str0m::rtp::{RtpWrite, SeqNo};
    use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

    #[test]
    fn janus_session_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<JanusSession>();
    }

    #[test]
    fn janus_parses_http_answers() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let (start, status, len) = parse_head(head).unwrap().unwrap();
        assert_eq!((start, status), (head.len() - 2, 200));
        assert!(matches!(len, BodyLength::Fixed(2)));
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-")
                .unwrap()
                .is_none()
        );
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        let body = b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(decode_chunked(body).unwrap().unwrap(), b"{\"a\":1}");
        assert!(decode_chunked(b"4\r\n{\"a").unwrap().is_none());
        let ep = Endpoint::parse("http://127.0.0.1:8088/janus/").unwrap();
        assert_eq!(ep.path, "/janus");
        assert_eq!(ep.addr, "127.0.0.1:8088".parse().unwrap());
        assert!(Endpoint::parse("https://127.0.0.1/janus").is_err());
        let data = json!({"streams": [
            {"mid": "0", "feed_id": 7, "type": "audio"},
            {"mid": "1", "feed_id": 7, "type": "video"},
            {"mid": "2", "type": "data"},
        ]});
        assert_eq!(
            stream_feeds(&data),
            vec![("0".to_string(), 7), ("1".to_string(), 7)]
        );
        let err: anyhow::Error = JanusError {
            request: "x".into(),
            code: 426,
            reason: "No such room".into(),
        }
        .into();
        assert_eq!(error_code(&err.context("outer")), Some(426));
    }

    /// A str0m client on its own UDP socket on 127.0.0.1.
    struct Peer {
        name: &'static str,
        rtc: Rtc,
        socket: UdpSocket,
        addr: SocketAddr,
        connected: bool,
        /// RTP packets received, by mid.
        received: HashMap<Mid, u64>,
    }

    impl Peer {
        fn new(name: &'static str) -> Peer {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            let addr = socket.local_addr().unwrap();
            let mut rtc = RtcConfig::new()
                .set_rtp_mode(true)
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(true)
                .build(Instant::now());
            rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
            Peer {
                name,
                rtc,
                socket,
                addr,
                connected: false,
                received: HashMap::new(),
            }
        }

        /// Feed due timeouts and received datagrams, send what str0m wants sent.
        fn pump(&mut self) {
            let mut buf = vec![0u8; 2000];
            loop {
                match self.socket.recv_from(&mut buf) {
                    Ok((n, source)) => {
                        let Ok(contents) = buf[..n].try_into() else {
                            continue;
                        };
                        let input = Input::Receive(
                            Instant::now(),
                            Receive {
                                proto: Protocol::Udp,
                                source,
                                destination: self.addr,
                                contents,
                            },
                        );
                        if self.rtc.accepts(&input) {
                            self.rtc.handle_input(input).unwrap();
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{}: recv: {e}", self.name),
                }
                self.drain();
            }
            self.rtc
                .handle_input(Input::Timeout(Instant::now()))
                .unwrap();
            self.drain();
        }

        fn drain(&mut self) {
            loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(_) => return,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    Output::Event(Event::Connected) => {
                        println!("{}: ICE + DTLS connected", self.name);
                        self.connected = true;
                    }
                    Output::Event(Event::RtpPacket(pkt)) => {
                        let mid = self
                            .rtc
                            .direct_api()
                            .stream_rx(&pkt.header.ssrc)
                            .map(|s| s.mid());
                        if let Some(mid) = mid {
                            *self.received.entry(mid).or_default() += 1;
                        }
                    }
                    Output::Event(Event::IceConnectionStateChange(s)) => {
                        println!("{}: ICE {s:?}", self.name);
                    }
                    Output::Event(_) => {}
                }
            }
        }

        fn pt(&self, mid: Mid, codec: Codec) -> str0m::media::Pt {
            let media = self.rtc.media(mid).expect("negotiated mid");
            media
                .remote_pts()
                .iter()
                .copied()
                .find(|pt| {
                    self.rtc
                        .codec_config()
                        .find(|p| p.pt() == *pt && p.spec().codec == codec)
                        .is_some()
                })
                .expect("negotiated codec")
        }
    }

    fn drive(peers: &mut [&mut Peer], timeout: Duration, done: impl Fn(&[&mut Peer]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(peers) {
            assert!(Instant::now() < deadline, "timed out after {timeout:?}");
            for p in peers.iter_mut() {
                p.pump();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn candidate_lines(sdp: &str) -> Vec<&str> {
        sdp.lines()
            .filter(|l| l.starts_with("a=candidate"))
            .collect()
    }

    /// Synthetic media of one publisher: an Opus-sized packet every 20 ms and a 3-packet VP8
    /// "key frame" every 33 ms.
    struct Sender {
        audio: Mid,
        video: Mid,
        seq: (u64, u64),
        ts: (u32, u32),
        next: (Instant, Instant),
    }

    impl Sender {
        fn new(audio: Mid, video: Mid) -> Sender {
            let now = Instant::now();
            Sender {
                audio,
                video,
                seq: (1, 1),
                ts: (0, 0),
                next: (now, now),
            }
        }

        fn tick(&mut self, peer: &mut Peer) {
            let now = Instant::now();
            if now >= self.next.0 {
                let pt = peer.pt(self.audio, Codec::Opus);
                let mut api = peer.rtc.direct_api();
                let tx = api.stream_tx_by_mid(self.audio, None).expect("audio");
                let rtp =
                    RtpWrite::new(pt, SeqNo::from(self.seq.0), self.ts.0, now, vec![0xfc; 100]);
                tx.write_rtp(rtp.marker(true));
                self.seq.0 += 1;
                self.ts.0 = self.ts.0.wrapping_add(960);
                self.next.0 += Duration::from_millis(20);
            }
            if now >= self.next.1 {
                let pt = peer.pt(self.video, Codec::Vp8);
                let mut api = peer.rtc.direct_api();
                let tx = api.stream_tx_by_mid(self.video, None).expect("video");
                for i in 0..3u8 {
                    // VP8 payload descriptor (S bit on the first packet) and, on the first, a
                    // key frame header for 640x360.
                    let mut payload = if i == 0 {
                        vec![
                            0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
                        ]
                    } else {
                        vec![0x00]
                    };
                    payload.resize(1000, 0);
                    let rtp = RtpWrite::new(pt, SeqNo::from(self.seq.1), self.ts.1, now, payload);
                    tx.write_rtp(rtp.marker(i == 2));
                    self.seq.1 += 1;
                }
                self.ts.1 = self.ts.1.wrapping_add(3000);
                self.next.1 += Duration::from_millis(33);
            }
        }
    }

    /// Publish a new str0m client in `room` on a new handle of `session`, and connect it.
    fn publish_peer(
        session: &JanusSession,
        room: u64,
        name: &'static str,
    ) -> (Peer, u64, u64, Sender) {
        let handle = session.attach_videoroom().unwrap();
        session.ensure_room(handle, room, 16).unwrap();
        let mut peer = Peer::new(name);
        let mut ch = peer.rtc.sdp_api();
        let audio = ch.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = ch.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = ch.apply().unwrap();
        let (feed, answer) = session
            .publish(handle, room, name, &offer.to_sdp_string())
            .unwrap();
        println!(
            "{name}: feed {feed}; Janus's candidates: {:?}",
            candidate_lines(&answer)
        );
        assert!(
            !candidate_lines(&answer).is_empty(),
            "Janus's answer has no candidate (is 127.0.0.1 on a non-loopback device?)"
        );
        peer.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        // Janus lets nobody subscribe before the publisher is connected (ICE + DTLS).
        drive(&mut [&mut peer], DEFAULT_TIMEOUT, |p| p[0].connected);
        session
            .wait_event(Some(handle), "webrtcup", DEFAULT_TIMEOUT)
            .unwrap();
        (peer, handle, feed, Sender::new(audio, video))
    }

    /// Answer Janus's (re)offer with the subscriber's str0m and send it with `start`.
    fn answer_subscription(
        session: &JanusSession,
        handle: u64,
        room: u64,
        subscriber: &mut Peer,
        offer: &str,
    ) {
        let answer = subscriber
            .rtc
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(offer).unwrap())
            .unwrap();
        session
            .start(handle, room, &answer.to_sdp_string())
            .unwrap();
    }

    /// The mid of `kind` that carries `feed`.
    fn mid_of(subscriber: &Peer, mids: &[(String, u64)], feed: u64, kind: MediaKind) -> Mid {
        mids.iter()
            .filter(|(_, f)| *f == feed)
            .map(|(m, _)| Mid::from(m.as_str()))
            .find(|m| subscriber.rtc.media(*m).is_some_and(|x| x.kind() == kind))
            .expect("mid of that kind in Janus's offer")
    }

    /// Send media from `publishers` until the subscriber has received at least 20 packets
    /// on each of `mids`.
    fn flow(publishers: &mut [(&mut Peer, &mut Sender)], subscriber: &mut Peer, mids: &[Mid]) {
        let start: HashMap<Mid, u64> = subscriber.received.clone();
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        loop {
            let got = |s: &Peer, m: &Mid| {
                s.received.get(m).copied().unwrap_or(0) - start.get(m).copied().unwrap_or(0)
            };
            if mids.iter().all(|m| got(subscriber, m) >= 20) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no media through Janus on {mids:?}: {:?}",
                subscriber.received
            );
            for (peer, sender) in publishers.iter_mut() {
                sender.tick(peer);
                peer.pump();
            }
            subscriber.pump();
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Publish to a real Janus and subscribe to that feed from a second session, connect
    /// both str0m clients (ICE + DTLS) and forward RTP through Janus; then add a second
    /// publisher to the same subscription (renegotiation) and drop the first. Runs only when
    /// `JANUS_URL` is set (e.g. `http://127.0.0.1:8088/janus`, inside the namespace that
    /// `bench/janus-netns.sh` made).
    #[test]
    fn janus_publish_subscribe_connect_and_forward() {
        let Ok(base) = std::env::var("JANUS_URL") else {
            println!("skipped: JANUS_URL is not set (see bench/janus-netns.sh)");
            return;
        };
        let t0 = Instant::now();
        let room = 1_000_000 + u64::from(std::process::id()) % 1_000_000;

        // Publisher.
        let pub_session = JanusSession::create(&base).unwrap();
        let (mut p1, ph1, feed1, mut s1) = publish_peer(&pub_session, room, "load-1");
        println!("publisher connected after {:?}", t0.elapsed());
        let listed = pub_session.list_participants(ph1, room).unwrap();
        println!("participants: {listed:?}");
        assert!(listed.contains(&(feed1, "load-1".to_string(), true)));

        // Subscriber, in a session of its own.
        let sub_session = JanusSession::create(&base).unwrap();
        let sh = sub_session.attach_videoroom().unwrap();
        let (offer, mids) = sub_session.subscribe(sh, room, &[feed1]).unwrap();
        println!("subscription offer mids: {mids:?}");
        assert_eq!(mids.len(), 2, "one audio and one video stream: {mids:?}");
        assert!(mids.iter().all(|(_, f)| *f == feed1));
        let mut sub = Peer::new("subscriber");
        answer_subscription(&sub_session, sh, room, &mut sub, &offer);
        println!("signalling done after {:?}", t0.elapsed());
        drive(&mut [&mut p1, &mut sub], DEFAULT_TIMEOUT, |p| {
            p.iter().all(|p| p.connected)
        });
        println!("both connected after {:?}", t0.elapsed());
        sub_session
            .wait_event(Some(sh), "webrtcup", DEFAULT_TIMEOUT)
            .unwrap();
        let first = [
            mid_of(&sub, &mids, feed1, MediaKind::Audio),
            mid_of(&sub, &mids, feed1, MediaKind::Video),
        ];
        flow(&mut [(&mut p1, &mut s1)], &mut sub, &first);
        println!(
            "media through Janus after {:?}: {:?}",
            t0.elapsed(),
            sub.received
        );

        // A second publisher; the existing subscription adds it (Janus re-offers).
        let (mut p2, ph2, feed2, mut s2) = publish_peer(&pub_session, room, "load-2");
        let (offer, mids) = sub_session
            .update_subscription(sh, &[feed2], &[])
            .unwrap()
            .expect("Janus re-offers");
        println!("updated subscription mids: {mids:?}");
        assert_eq!(mids.len(), 4, "{mids:?}");
        answer_subscription(&sub_session, sh, room, &mut sub, &offer);
        let second = [
            mid_of(&sub, &mids, feed2, MediaKind::Audio),
            mid_of(&sub, &mids, feed2, MediaKind::Video),
        ];
        let all = [first[0], first[1], second[0], second[1]];
        flow(
            &mut [(&mut p1, &mut s1), (&mut p2, &mut s2)],
            &mut sub,
            &all,
        );
        println!(
            "two publishers through Janus after {:?}: {:?}",
            t0.elapsed(),
            sub.received
        );

        // Drop the first publisher from the subscription.
        let (offer, mids) = sub_session
            .update_subscription(sh, &[], &[feed1])
            .unwrap()
            .expect("Janus re-offers");
        println!("after unsubscribe: {mids:?}");
        assert!(mids.iter().all(|(_, f)| *f == feed2), "{mids:?}");
        answer_subscription(&sub_session, sh, room, &mut sub, &offer);
        flow(
            &mut [(&mut p1, &mut s1), (&mut p2, &mut s2)],
            &mut sub,
            &second,
        );

        // The second publisher leaves: Janus re-offers the subscription by itself.
        pub_session.detach(ph2).unwrap();
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        let (offer, mids) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = sub_session.wait_event(Some(sh), "event", left).unwrap();
            println!("subscriber event: {:?}", e.plugin_data());
            if let Some(update) = e.subscription_update() {
                break update;
            }
        };
        println!("after the publisher left: {mids:?}");
        assert!(mids.is_empty(), "{mids:?}");
        answer_subscription(&sub_session, sh, room, &mut sub, &offer);

        let events: Vec<String> = pub_session
            .take_events()
            .iter()
            .chain(sub_session.take_events().iter())
            .map(|e| e.message.to_string())
            .collect();
        println!("other events: {events:#?}");

        // Janus's errors come back with their codes.
        let h = sub_session.attach_videoroom().unwrap();
        let err = sub_session.subscribe(h, room, &[feed2 + 1]).unwrap_err();
        println!("expected error: {err:#}");
        assert_eq!(error_code(&err), Some(ERROR_NO_SUCH_FEED));
        let err = sub_session.subscribe(h, room + 1, &[feed2]).unwrap_err();
        println!("expected error: {err:#}");
        assert_eq!(error_code(&err), Some(ERROR_NO_SUCH_ROOM));

        sub_session.detach(sh).unwrap();
        pub_session.destroy_room(ph1, room).unwrap();
        sub_session.destroy().unwrap();
        let shared = pub_session.shared.clone();
        let stopping = Instant::now();
        pub_session.destroy().unwrap();
        while shared.lock().dead.is_none() {
            assert!(
                stopping.elapsed() < LONG_POLL_TIMEOUT,
                "long poll did not stop"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        println!(
            "long poll stopped {:?} after destroy ({:?})",
            stopping.elapsed(),
            shared.lock().dead
        );
        println!("done after {:?}", t0.elapsed());
    }
}

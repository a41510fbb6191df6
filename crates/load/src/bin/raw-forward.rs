//! `raw-forward`: the machine's ceiling for an SFU's inner loop. One thread receives
//! 1200-byte UDP packets, seals each with AES-128-GCM (as SRTP would) and sends it on with a
//! plain `sendto`; another thread feeds it as fast as it can. Prints packets forwarded per CPU
//! second of the forwarding thread. Loopback only, bounded duration.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

fn thread_cpu() -> Option<Duration> {
    // utime + stime of the calling thread, in clock ticks (USER_HZ = 100).
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn main() -> Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().context("duration in seconds"))
        .transpose()?
        .unwrap_or(5)
        .clamp(1, 60);
    let json = std::env::args().any(|a| a == "--json");
    let forwarder = UdpSocket::bind("127.0.0.1:0")?;
    let sink = UdpSocket::bind("127.0.0.1:0")?; // never read: the kernel drops when full
    let to_forwarder = forwarder.local_addr()?;
    let to_sink = sink.local_addr()?;
    forwarder.set_read_timeout(Some(Duration::from_millis(100)))?;

    let stop = Arc::new(AtomicBool::new(false));
    let feeder_stop = stop.clone();
    let feeder = std::thread::spawn(move || -> Result<()> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let pkt = [0x80u8; 1200];
        while !feeder_stop.load(Ordering::Relaxed) {
            let _ = s.send_to(&pkt, to_forwarder);
        }
        Ok(())
    });

    let key = LessSafeKey::new(
        UnboundKey::new(&AES_128_GCM, &[7u8; 16]).map_err(|_| anyhow::anyhow!("AES key"))?,
    );
    let mut buf = vec![0u8; 1200 + 16];
    let mut forwarded: u64 = 0;
    let cpu0 = thread_cpu().context("/proc/thread-self/stat")?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        let Ok((n, _)) = forwarder.recv_from(&mut buf[..1200]) else {
            continue;
        };
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&forwarded.to_be_bytes());
        let (header, body) = buf.split_at_mut(12);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header[..]),
                &mut body[..n - 12],
            )
            .map_err(|_| anyhow::anyhow!("seal"))?;
        buf[n..n + 16].copy_from_slice(tag.as_ref());
        let _ = forwarder.send_to(&buf[..n + 16], to_sink);
        forwarded += 1;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (thread_cpu().context("/proc/thread-self/stat")? - cpu0).as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();
    let per_cpu = forwarded as f64 / cpu.max(1e-9);
    if json {
        println!(
            "{{\"forwarded\":{forwarded},\"wall_secs\":{wall:.3},\"cpu_secs\":{cpu:.3},\"per_cpu_sec\":{per_cpu:.0}}}"
        );
    } else {
        println!(
            "raw forward (recv, AES-128-GCM seal, sendto; 1200 bytes): {forwarded} packets in \
             {wall:.2} s, {cpu:.2} CPU s: {per_cpu:.0} packets per CPU second"
        );
    }
    Ok(())
}

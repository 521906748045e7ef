//! Loopback TCP round trip: a ping-pong of 100-byte messages over 127.0.0.1, one in flight.
//!
//! Measures the floor for the "one in flight p50 ≤ loopback round trip + 20 µs" target.
//! Both modes use the same two-thread arrangement as the Diameter benchmark (client and server
//! in separate threads of one process, sharing the machine's cores):
//!
//! - `std`: blocking sockets, one OS thread per side (the kernel floor).
//! - `tokio`: one current-thread tokio runtime per side (the floor with a reactor wake-up).
//!
//! ```text
//! cargo run --release -p diameter-node --example loopback_rtt -- [count] [std|tokio|both]
//! ```
//!
//! Prints p50/p90/p99/p99.9/max in µs for each mode.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

const MSG: usize = 100;

fn percentiles(name: &str, mut v: Vec<u64>) {
    v.sort_unstable();
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    println!(
        "{name:5} n {}  p50 {:.1} µs  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        v.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(1.0)
    );
}

fn run_std(count: usize, warmup: usize) -> Vec<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let mut buf = [0u8; MSG];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let msg = [0x5au8; MSG];
    let mut buf = [0u8; MSG];
    let mut out = Vec::with_capacity(count);
    for i in 0..count + warmup {
        let t0 = Instant::now();
        c.write_all(&msg).expect("write");
        c.read_exact(&mut buf).expect("read");
        if i >= warmup {
            out.push(t0.elapsed().as_nanos() as u64);
        }
    }
    drop(c);
    server.join().expect("server thread");
    out
}

fn run_tokio(count: usize, warmup: usize) -> Vec<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        rt().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let (mut s, _) = listener.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            let mut buf = [0u8; MSG];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
    });
    let out = rt().block_on(async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.set_nodelay(true).expect("nodelay");
        let msg = [0x5au8; MSG];
        let mut buf = [0u8; MSG];
        let mut out = Vec::with_capacity(count);
        for i in 0..count + warmup {
            let t0 = Instant::now();
            c.write_all(&msg).await.expect("write");
            c.read_exact(&mut buf).await.expect("read");
            if i >= warmup {
                out.push(t0.elapsed().as_nanos() as u64);
            }
        }
        out
    });
    server.join().expect("server thread");
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let mode = args.next().unwrap_or_else(|| "both".into());
    let warmup = (count / 20).max(100);
    if mode == "std" || mode == "both" {
        percentiles("std", run_std(count, warmup));
    }
    if mode == "tokio" || mode == "both" {
        percentiles("tokio", run_tokio(count, warmup));
    }
}

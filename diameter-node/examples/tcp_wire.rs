//! The cheapest possible relay, as a yardstick: a TCP forwarder that copies bytes between one
//! client connection and one server connection on a single thread that never sleeps
//! (non-blocking sockets polled in a loop). It parses nothing, so the client and the server
//! see each other directly (CER/CEA included): it is a relay doing no work at all, polling
//! instead of sleeping, and what it reaches with a given client and server is what a real
//! agent between them can hope to approach. `scripts/bench-node.sh` measures it when
//! `WIRE=1`.
//!
//! ```text
//! cargo run --release -p diameter-node --example tcp_wire -- LISTEN_ADDR SERVER_ADDR
//! ```
//!
//! Serves one client connection at a time, until killed.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Moves what `from` has ready to `to`. Returns false when `from` closed.
fn pump(from: &mut TcpStream, to: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let n = match from.read(buf) {
        Ok(0) => return Ok(false),
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
        Err(e) => return Err(e),
    };
    let mut done = 0;
    while done < n {
        match to.write(&buf[done..n]) {
            Ok(w) => done += w,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn serve(mut client: TcpStream, server_addr: &str) -> std::io::Result<()> {
    let mut server = TcpStream::connect(server_addr)?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
    }
    let mut buf = vec![0u8; 256 * 1024];
    while pump(&mut client, &mut server, &mut buf)? && pump(&mut server, &mut client, &mut buf)? {}
    Ok(())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(server)) = (args.next(), args.next()) else {
        eprintln!("usage: tcp_wire LISTEN_ADDR SERVER_ADDR");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(&listen)?;
    eprintln!("tcp_wire: listening on {}", listener.local_addr()?);
    for client in listener.incoming() {
        if let Err(e) = serve(client?, &server) {
            eprintln!("tcp_wire: connection ended: {e}");
        }
    }
    Ok(())
}

//! A stand-in for a transaction-pooling proxy (`PgBouncer` in transaction
//! mode): each client session starts on one server connection and, after
//! its first query, is carried on another, so the backend pid it sees
//! changes between statements, as it does behind such a proxy.
//!
//! It speaks just enough of the protocol: it declines TLS (`N`), replays
//! the client's startup message to two server connections, discards the
//! second one's greeting, and switches after the first server's third
//! `ReadyForQuery` (the first ends the startup; the driver's first query
//! is a prepare and an execute, each ending in one).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The TLS request code of the startup packet.
const SSL_REQUEST: u32 = 80_877_103;

/// A running proxy in front of a server on 127.0.0.1.
pub struct SwitchingProxy {
    port: u16,
}

impl SwitchingProxy {
    /// Listens on a free loopback port, relaying to `upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                std::thread::spawn(move || relay(client, upstream_port));
            }
        });
        Self { port }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Reads a startup-phase packet (length first, no type byte).
fn read_startup(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0; 4];
    stream.read_exact(&mut length)?;
    let mut packet = length.to_vec();
    packet.resize(u32::from_be_bytes(length) as usize, 0);
    stream.read_exact(&mut packet[4..])?;
    Ok(packet)
}

/// Reads one server message (type byte, then length).
fn read_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = [0; 5];
    stream.read_exact(&mut head)?;
    let mut message = head.to_vec();
    message.resize(1 + u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize, 0);
    stream.read_exact(&mut message[5..])?;
    Ok(message)
}

fn relay(mut client: TcpStream, upstream_port: u16) -> std::io::Result<()> {
    let mut startup = read_startup(&mut client)?;
    if startup.len() == 8 && u32::from_be_bytes([startup[4], startup[5], startup[6], startup[7]]) == SSL_REQUEST {
        client.write_all(b"N")?;
        startup = read_startup(&mut client)?;
    }
    let mut first = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let mut second = TcpStream::connect(("127.0.0.1", upstream_port))?;
    first.write_all(&startup)?;
    second.write_all(&startup)?;
    // The second connection's greeting (trust authentication) is not the
    // client's business.
    while read_message(&mut second)?[0] != b'Z' {}
    let switched = Arc::new(AtomicBool::new(false));

    // Server to client, from the first connection until the switch.
    let (mut to_client, mut first_reader, flag) = (client.try_clone()?, first.try_clone()?, Arc::clone(&switched));
    std::thread::spawn(move || -> std::io::Result<()> {
        let mut ready = 0;
        loop {
            let message = read_message(&mut first_reader)?;
            if message[0] == b'Z' {
                ready += 1;
                if ready == 3 {
                    flag.store(true, Ordering::SeqCst);
                }
            }
            to_client.write_all(&message)?;
        }
    });
    // Server to client, from the second connection after it.
    let (mut to_client, mut second_reader) = (client.try_clone()?, second.try_clone()?);
    std::thread::spawn(move || std::io::copy(&mut second_reader, &mut to_client));
    // Client to server: whichever connection carries the session now.
    let mut buffer = [0; 16 * 1024];
    loop {
        let n = client.read(&mut buffer)?;
        if n == 0 {
            first.shutdown(Shutdown::Both).ok();
            second.shutdown(Shutdown::Both).ok();
            return Ok(());
        }
        let target = if switched.load(Ordering::SeqCst) { &mut second } else { &mut first };
        target.write_all(&buffer[..n])?;
    }
}

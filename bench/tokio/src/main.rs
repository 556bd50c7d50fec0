//! The Tokio peer of bench/echo.cpp: a TCP echo server on Tokio's current_thread
//! runtime, so one thread does all the I/O, as in corio's event loop.
//!
//! Protocol with the benchmark: it prints the port it listens on (127.0.0.1) as the
//! first line of stdout, and exits with status 0 when its stdin reaches end of file.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const NAME: &str = "corio_bench_tokio_echo";

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail("cannot start the runtime", e),
    };
    match runtime.block_on(serve()) {
        Ok(never) => match never {},
        Err((what, e)) => fail(what, e),
    }
}

fn fail(what: &str, e: io::Error) -> ExitCode {
    eprintln!("{NAME}: {what}: {e}");
    ExitCode::FAILURE
}

async fn serve() -> Result<Infallible, (&'static str, io::Error)> {
    let socket = TcpSocket::new_v4().map_err(|e| ("socket", e))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| ("SO_REUSEADDR", e))?;
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| ("bind 127.0.0.1:0", e))?;
    // The backlog of the C++ servers: a wave of 256 connects must not overflow it.
    let listener = socket.listen(4096).map_err(|e| ("listen", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| ("getsockname", e))?
        .port();

    // Watched before the port is out, so the parent can close stdin at any time after
    // reading it. A plain thread, not spawn_blocking: the runtime keeps a single thread.
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(exit_at_stdin_eof)
        .map_err(|e| ("cannot start the stdin thread", e))?;

    let mut out = io::stdout().lock();
    writeln!(out, "{port}")
        .and_then(|()| out.flush())
        .map_err(|e| ("cannot print the port", e))?;
    drop(out);

    loop {
        match listener.accept().await {
            // No TCP_NODELAY, as in the C++ servers (the client sets it). An echo seldom
            // meets Nagle: the next request acknowledges the last reply.
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            // The peer gave up before we took it: that connection only.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) => {}
            // Out of descriptors and the like: retrying would spin, so say it and stop.
            Err(e) => return Err(("accept", e)),
        }
    }
}

/// Echoes until the peer closes or the connection fails; either ends only this task.
async fn echo(mut stream: TcpStream) {
    // On the heap: a 16 KiB array would make the task's future that large, and moved.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The parent's way to stop us: end of file on stdin (it closed the pipe, or died).
fn exit_at_stdin_eof() {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => std::process::exit(0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Nobody could stop us any more: stop now rather than linger.
            Err(e) => {
                eprintln!("{NAME}: reading stdin: {e}");
                std::process::exit(1);
            }
        }
    }
}

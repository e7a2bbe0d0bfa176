//! A loopback TCP proxy that cuts its connections on demand, to lose a source's connection
//! mid-stream whatever protocol the source speaks (PostgreSQL, MySQL, HTTP, gRPC).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy on `127.0.0.1` in front of `upstream` that forwards both directions until it
/// has forwarded `cut_after` bytes from the server to the client (over all its connections),
/// then drops every connection at once and refuses new ones (accepts and closes them), as a
/// server that went away would. Dropping the proxy stops it.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    _stop: watch::Sender<bool>,
}

#[derive(Debug)]
struct State {
    cut_after: u64,
    downstream: AtomicU64,
    cut: AtomicBool,
    cut_tx: watch::Sender<bool>,
}

impl State {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cut_tx.send_replace(true);
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` that cuts after `cut_after` server-to-client bytes
    /// (`u64::MAX`: only when [`FaultProxy::cut`] is called).
    pub async fn start(upstream: SocketAddr, cut_after: u64) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (cut_tx, _) = watch::channel(false);
        let state = Arc::new(State {
            cut_after,
            downstream: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            cut_tx,
        });
        let (stop, mut stopped) = watch::channel(false);
        let accept_state = state.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stopped.changed() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                if accept_state.cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                tokio::spawn(serve(client, upstream, accept_state.clone()));
            }
        });
        Ok(Self {
            addr,
            state,
            _stop: stop,
        })
    }

    /// The address sources should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every connection now and refuses new ones.
    pub fn cut(&self) {
        self.state.cut();
    }

    /// Whether the proxy has cut its connections.
    pub fn was_cut(&self) -> bool {
        self.state.cut.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the server to clients so far.
    pub fn downstream_bytes(&self) -> u64 {
        self.state.downstream.load(Ordering::SeqCst)
    }
}

/// Forwards one client connection until either side closes or the proxy cuts.
async fn serve(mut client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut cut = state.cut_tx.subscribe();
    if *cut.borrow_and_update() {
        return;
    }
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return server_write.shutdown().await;
            }
            server_write.write_all(&buf[..n]).await?;
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return client_write.shutdown().await;
            }
            let before = state.downstream.fetch_add(n as u64, Ordering::SeqCst);
            let allowed = state.cut_after.saturating_sub(before).min(n as u64) as usize;
            client_write.write_all(&buf[..allowed]).await?;
            if allowed < n || before + n as u64 >= state.cut_after {
                state.cut();
                return Ok::<(), io::Error>(());
            }
        }
    };
    tokio::select! {
        _ = cut.wait_for(|cut| *cut) => {}
        _ = async { tokio::join!(up, down) } => {}
    }
    // Both sockets drop here without a clean protocol goodbye: the client sees the
    // connection end in the middle of whatever it was reading.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_then_cuts_after_the_budget() {
        let server = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let upstream = server.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = server.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = s.write_all(&[7u8; 100_000]).await;
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest).await;
                });
            }
        });
        let proxy = FaultProxy::start(upstream, 10_000).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got).await;
        assert!(!got.is_empty() && got.len() <= 10_000, "{}", got.len());
        assert!(proxy.was_cut());

        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut none = Vec::new();
        let _ = again.read_to_end(&mut none).await;
        assert!(none.is_empty());
    }
}

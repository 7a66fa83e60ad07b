//! A side channel beside MLX's ring: one byte to the next rank before each message.
//!
//! Why: a posted MLX ring `recv` polls its non-blocking socket in a loop, a whole core per
//! waiting rank; ranks sharing a machine then starve the rank that computes (3 ranks on 2
//! cores ran 10x slower). A rank first blocks on its doorbell, which costs nothing, and posts
//! the `recv` once the sender rings, just before it sends. The doorbell also bounds the wait
//! (a read timeout) and sees a dead neighbour at once (its connection closes), naming it.
//!
//! Invariant: a rank rings its next neighbour once before each group of sends to it, and
//! waits once on its previous neighbour before each group of receives from it; every rank
//! follows the same sequence of groups, so rings and waits pair up.

use std::{
    io::{ErrorKind, Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use crate::error::{ClusterError, Result};

/// This rank's doorbells: the one it rings (the next rank's) and its own.
pub struct Doorbells {
    to_next: TcpStream,
    from_prev: TcpStream,
    prev_name: String,
    next_name: String,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> ClusterError {
    move |source| ClusterError::Io { what, source }
}

/// Listens for the previous rank's connection on `ip`, at a port the OS picks.
pub fn listen(ip: IpAddr) -> Result<TcpListener> {
    TcpListener::bind((ip, 0)).map_err(io(format!("opening a doorbell port on {ip}")))
}

impl Doorbells {
    /// Connects to the next rank's doorbell at `next` and accepts the previous rank's on
    /// `listener`, within `timeout`. The connector says its rank; a stranger is refused.
    pub fn connect(
        listener: TcpListener,
        rank: usize,
        prev: (usize, String),
        next: (SocketAddr, String),
        timeout: Duration,
    ) -> Result<Doorbells> {
        let deadline = Instant::now() + timeout;
        let mut to_next = loop {
            match TcpStream::connect_timeout(&next.0, Duration::from_secs(1)) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(io(format!("connecting to the doorbell of {}", next.1))(e))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        to_next
            .write_all(&(rank as u32).to_le_bytes())
            .map_err(io(format!("greeting {}", next.1)))?;
        listener
            .set_nonblocking(true)
            .map_err(io("waiting for the previous rank".into()))?;
        let mut from_prev = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(io(format!("waiting for {} to connect", prev.1))(e)),
            }
        };
        from_prev
            .set_nonblocking(false)
            .map_err(io("configuring the doorbell".into()))?;
        from_prev
            .set_read_timeout(Some(timeout))
            .map_err(io("configuring the doorbell".into()))?;
        let mut hello = [0u8; 4];
        from_prev
            .read_exact(&mut hello)
            .map_err(io(format!("waiting for {} to say hello", prev.1)))?;
        if u32::from_le_bytes(hello) as usize != prev.0 {
            return Err(ClusterError::Node(format!(
                "a process other than {} connected to this rank's doorbell",
                prev.1
            )));
        }
        for s in [&to_next, &from_prev] {
            s.set_nodelay(true)
                .map_err(io("configuring the doorbell".into()))?;
        }
        Ok(Doorbells {
            to_next,
            from_prev,
            prev_name: prev.1,
            next_name: next.1,
        })
    }

    /// Tells the next rank that messages follow.
    pub fn ring(&mut self) -> Result<()> {
        self.to_next.write_all(&[1]).map_err(|e| {
            ClusterError::Node(format!(
                "{} is gone (its connection failed: {e}): it stopped or the link broke",
                self.next_name
            ))
        })
    }

    /// The descriptor the previous rank rings, to poll beside another.
    pub fn prev_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.from_prev)
    }

    /// Waits, as long as it takes, for the previous rank to ring (between the jobs of a
    /// cluster that stays up); a neighbour that stops is still seen at once.
    pub fn wait_idle(&mut self, what: &str) -> Result<()> {
        self.read_ring(None, what)
    }

    /// Waits, at most `bound`, for the previous rank to ring.
    pub fn wait(&mut self, bound: Duration, what: &str) -> Result<()> {
        self.read_ring(Some(bound), what)
    }

    fn read_ring(&mut self, bound: Option<Duration>, what: &str) -> Result<()> {
        let _ = self.from_prev.set_read_timeout(bound);
        let mut b = [0u8; 1];
        match self.from_prev.read(&mut b) {
            Ok(1) => Ok(()),
            Ok(_) => Err(ClusterError::Node(format!(
                "{} closed its connection while this rank waited for {what}: it stopped (crashed or was killed)",
                self.prev_name
            ))),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(ClusterError::Node(format!(
                    "{} sent nothing for {} s while this rank waited for {what}: it stalled or the link did",
                    self.prev_name,
                    bound.unwrap_or_default().as_secs_f32()
                )))
            }
            Err(e) => Err(ClusterError::Node(format!(
                "{} is gone ({e}) while this rank waited for {what}",
                self.prev_name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_neighbour_and_a_silent_one_are_named() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let (a, b) = (listen(lo).unwrap(), listen(lo).unwrap());
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let t = Duration::from_secs(5);
        let other = std::thread::spawn(move || {
            Doorbells::connect(b, 1, (0, "rank 0".into()), (pa, "rank 0".into()), t).unwrap()
        });
        let mut zero =
            Doorbells::connect(a, 0, (1, "rank 1".into()), (pb, "rank 1".into()), t).unwrap();
        let mut one = other.join().unwrap();
        one.ring().unwrap();
        zero.wait(t, "a token").unwrap();
        let e = zero
            .wait(Duration::from_millis(100), "a token")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 1 sent nothing for 0.1 s"), "{e}");
        drop(one);
        let e = zero.wait(t, "a token").unwrap_err().to_string();
        assert!(e.contains("rank 1 closed its connection"), "{e}");
    }
}

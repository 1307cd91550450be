//! Receiving many datagrams in one system call.
//!
//! When datagrams queue up on a socket (a burst after a stall, or a sender faster than
//! real time), `recvmmsg(2)` takes up to a batch of them per call instead of one
//! `recvfrom(2)` each. When one datagram is waiting, it costs the same as `recvfrom`.

use std::io;
use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

/// Buffers for a batch of datagrams and what the last call received.
#[derive(Debug)]
pub struct BatchReceiver {
    buffers: Vec<Vec<u8>>,
    received: Vec<(usize, Option<SocketAddr>)>,
}

impl BatchReceiver {
    /// Room for `batch` datagrams of up to `size` bytes; longer ones are truncated.
    pub fn new(batch: usize, size: usize) -> Self {
        BatchReceiver {
            buffers: vec![vec![0; size]; batch.max(1)],
            received: Vec::with_capacity(batch.max(1)),
        }
    }

    /// Receives what is waiting, without blocking: the count received, or
    /// `WouldBlock` when nothing is.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        let received = &mut self.received;
        received.clear();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(self.buffers.len(), None);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        for message in results {
            received.push((
                message.bytes,
                message.address.as_ref().and_then(socket_addr),
            ));
        }
        Ok(received.len())
    }

    /// Datagram `index` of the last call and where it came from.
    pub fn datagram(&self, index: usize) -> Option<(&[u8], Option<SocketAddr>)> {
        let (len, from) = *self.received.get(index)?;
        let buffer = self.buffers.get(index)?;
        Some((buffer.get(..len).unwrap_or(buffer), from))
    }
}

fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    storage.as_sockaddr_in6().map(|v6| {
        SocketAddr::V6(SocketAddrV6::new(
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    #[test]
    fn queued_datagrams_come_in_one_batch_with_their_senders() {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = receiver.local_addr().expect("addr");
        for i in 0..5u8 {
            sender.send_to(&[i; 3], to).expect("send");
        }
        let mut batch = BatchReceiver::new(8, 1500);
        assert_eq!(batch.recv(&receiver).expect("five waiting"), 5);
        for i in 0..5u8 {
            let (datagram, from) = batch.datagram(usize::from(i)).expect("received");
            assert_eq!(datagram, &[i; 3]);
            assert_eq!(from, Some(sender.local_addr().expect("addr")));
        }
        assert_eq!(
            batch.recv(&receiver).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
    }
}

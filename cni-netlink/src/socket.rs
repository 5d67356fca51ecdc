//! A blocking netlink socket (`NETLINK_ROUTE`, or `NETLINK_NETFILTER` for
//! nftables) that runs one request at a time: it sends the request with the
//! next sequence number and reads the kernel's answer to the end (the ACK,
//! the error, or a dump's `NLMSG_DONE`). An nftables batch is one datagram
//! of requests, whose answers the kernel queues before the send returns.

use crate::error::Error;
use netlink_packet_core::{
    Emitable, ErrorBuffer, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_NOOP, NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader,
};
use netlink_sys::{
    Socket as RawSocket, SocketAddr,
    protocols::{NETLINK_NETFILTER, NETLINK_ROUTE},
};
use std::cell::Cell;
use std::io;

/// The netlink message header's size.
const HEADER_LEN: usize = 16;

/// Room for one datagram. The kernel sizes dump datagrams to at most 32 KiB;
/// only the part it writes becomes resident.
const RECV_BUFFER_LEN: usize = 64 * 1024;

/// The flags a request is sent with: always `NLM_F_REQUEST`, and `NLM_F_ACK`
/// unless it is a dump (which ends with `NLMSG_DONE` instead), so that every
/// answer has an end to read up to.
fn request_flags(flags: u16) -> u16 {
    if flags & NLM_F_DUMP == NLM_F_DUMP {
        flags | NLM_F_REQUEST
    } else {
        flags | NLM_F_REQUEST | NLM_F_ACK
    }
}

/// One netlink socket, bound to the network namespace of the thread that
/// opened it for as long as it lives.
#[derive(Debug)]
pub struct Socket {
    socket: RawSocket,
    sequence: Cell<u32>,
}

impl Socket {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot be created or bound.
    pub fn open() -> Result<Socket, Error> {
        Socket::open_protocol(NETLINK_ROUTE)
    }

    /// Opens a `NETLINK_NETFILTER` socket (for [`crate::nftables`]) in the
    /// calling thread's network namespace.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot be created or bound.
    pub fn open_netfilter() -> Result<Socket, Error> {
        Socket::open_protocol(NETLINK_NETFILTER)
    }

    fn open_protocol(protocol: isize) -> Result<Socket, Error> {
        let mut socket = RawSocket::new(protocol).map_err(io_error("open netlink socket"))?;
        socket
            .bind(&SocketAddr::new(0, 0))
            .map_err(io_error("bind netlink socket"))?;
        Ok(Socket {
            socket,
            sequence: Cell::new(0),
        })
    }

    /// Opens a socket with `NETLINK_GET_STRICT_CHK`, so the kernel filters
    /// dumps by the fields set in the request's header (Linux 4.20+) and
    /// rejects requests with fields it cannot filter on.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot be created, configured or bound.
    pub fn open_strict() -> Result<Socket, Error> {
        let socket = Socket::open()?;
        socket
            .socket
            .set_netlink_get_strict_chk(true)
            .map_err(io_error("enable strict netlink checking"))?;
        Ok(socket)
    }

    /// Sends a request of `message_type` with `flags` (`NLM_F_CREATE`,
    /// `NLM_F_DUMP`, ...; `NLM_F_REQUEST` is added, and `NLM_F_ACK` unless
    /// it is a dump) and `payload`, then calls `on_reply` with the type and
    /// payload of every message the kernel answers with, until its ACK, its
    /// error, or the end of the dump.
    ///
    /// Messages with another sequence number (what is left of an answer cut
    /// short by an error) and datagrams not from the kernel are skipped.
    /// When `on_reply` fails, the rest of the answer is still read, so the
    /// next request starts clean, and its first error is returned.
    ///
    /// # Errors
    /// [`Error::Kernel`] when the kernel refuses, [`Error::Io`] when the
    /// socket fails, [`Error::Malformed`] when a reply cannot be read, or
    /// what `on_reply` returned.
    pub fn request<F>(
        &self,
        message_type: u16,
        flags: u16,
        payload: &impl Emitable,
        mut on_reply: F,
    ) -> Result<(), Error>
    where
        F: FnMut(u16, &[u8]) -> Result<(), Error>,
    {
        let sequence = self.sequence.get().wrapping_add(1);
        self.sequence.set(sequence);
        let request = encode(message_type, request_flags(flags), sequence, payload)?;
        self.socket
            .send(&request, 0)
            .map_err(io_error("send netlink request"))?;

        let mut buffer = Vec::with_capacity(RECV_BUFFER_LEN);
        let mut failure: Option<Error> = None;
        loop {
            buffer.clear();
            let (length, from) = loop {
                match self.socket.recv_from(&mut buffer, libc::MSG_TRUNC) {
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    other => break other.map_err(io_error("read netlink reply"))?,
                }
            };
            if from.port_number() != 0 {
                continue;
            }
            if length > buffer.len() {
                return Err(Error::Malformed(format!(
                    "a reply of {length} bytes exceeds the {RECV_BUFFER_LEN}-byte buffer"
                )));
            }
            match read_datagram(&buffer, sequence, &mut on_reply, &mut failure)? {
                Step::More => {}
                Step::Done => return failure.map_or(Ok(()), Err),
            }
        }
    }
}

/// `NLM_F_DUMP_INTR`: a dump's objects changed while it ran.
const NLM_F_DUMP_INTR: u16 = 0x10;

impl Socket {
    /// Runs an `NLM_F_DUMP` request and collects what `parse` takes from
    /// each reply (`None` skips one). A dump the kernel flags as interrupted
    /// (the objects changed while it ran, so it may have missed some, as
    /// concurrent ADDs and DELs make nf_tables dumps on older kernels) is
    /// run again, up to ten times.
    ///
    /// # Errors
    /// As [`Socket::request`]; [`Error::Interrupted`] when every try was.
    pub fn dump<T>(
        &self,
        message_type: u16,
        payload: &impl Emitable,
        mut parse: impl FnMut(u16, &[u8]) -> Result<Option<T>, Error>,
    ) -> Result<Vec<T>, Error> {
        let mut tries = 1;
        loop {
            let mut found = Vec::new();
            let dumped = self.request(message_type, NLM_F_DUMP, payload, |kind, bytes| {
                found.extend(parse(kind, bytes)?);
                Ok(())
            });
            match dumped {
                Err(Error::Interrupted) if tries < 10 => tries += 1,
                other => return other.map(|()| found),
            }
        }
    }

    /// The next `count` sequence numbers; returns the first.
    pub(crate) fn next_sequences(&self, count: u32) -> u32 {
        let first = self.sequence.get().wrapping_add(1);
        self.sequence
            .set(first.wrapping_add(count.saturating_sub(1)));
        first
    }

    /// Sends `datagram`, a batch of requests the kernel answers while the
    /// send runs, then reads every answer already queued. Returns the first
    /// error among them (`Ok` when every request was acknowledged).
    ///
    /// # Errors
    /// [`Error::Kernel`] with the first refusal, [`Error::Io`] when the
    /// socket fails, [`Error::Malformed`] when an answer cannot be read.
    pub(crate) fn send_batch(&self, datagram: &[u8]) -> Result<(), Error> {
        self.socket
            .send(datagram, 0)
            .map_err(io_error("send netlink batch"))?;
        let mut buffer = Vec::with_capacity(RECV_BUFFER_LEN);
        let mut first: Option<Error> = None;
        loop {
            buffer.clear();
            match self.socket.recv_from(&mut buffer, libc::MSG_DONTWAIT) {
                Ok((_, from)) if from.port_number() != 0 => {}
                Ok(_) => {
                    if let Some(err) = batch_errors(&buffer)? {
                        first.get_or_insert(err);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    return first.map_or(Ok(()), Err);
                }
                Err(err) => return Err(io_error("read netlink batch answers")(err)),
            }
        }
    }
}

/// The first error among the answers in one datagram.
fn batch_errors(datagram: &[u8]) -> Result<Option<Error>, Error> {
    let mut offset = 0;
    while offset < datagram.len() {
        let message = NetlinkBuffer::new_checked(&datagram[offset..])?;
        offset += (message.length() as usize + 3) & !3;
        if message.message_type() == NLMSG_ERROR
            && let Some(code) = ErrorBuffer::new_checked(message.payload())?.code()
        {
            return Ok(Some(Error::Kernel(-code.get())));
        }
    }
    Ok(None)
}

/// Whether the answer goes on in another datagram.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    More,
    Done,
}

/// Reads the messages of one datagram. Returns [`Step::Done`] at the
/// answer's end; a kernel error ends it as `Err`.
fn read_datagram<F>(
    datagram: &[u8],
    sequence: u32,
    on_reply: &mut F,
    failure: &mut Option<Error>,
) -> Result<Step, Error>
where
    F: FnMut(u16, &[u8]) -> Result<(), Error>,
{
    let mut offset = 0;
    while offset < datagram.len() {
        let message = NetlinkBuffer::new_checked(&datagram[offset..])?;
        // Messages are 4-byte aligned; `new_checked` ensures the length
        // covers at least the header.
        offset += (message.length() as usize + 3) & !3;
        if message.sequence_number() != sequence {
            continue;
        }
        if message.flags() & NLM_F_DUMP_INTR != 0 {
            failure.get_or_insert(Error::Interrupted);
        }
        let payload = message.payload();
        match message.message_type() {
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                return match ErrorBuffer::new_checked(payload)?.code() {
                    None => Ok(Step::Done),
                    Some(code) => Err(Error::Kernel(-code.get())),
                };
            }
            NLMSG_DONE => {
                // The payload carries the dump's result: 0, or a negative
                // errno when the dump failed part way.
                let code = payload.get(..4).map_or(0, |raw| {
                    i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]])
                });
                return if code < 0 {
                    Err(Error::Kernel(-code))
                } else {
                    Ok(Step::Done)
                };
            }
            NLMSG_OVERRUN => return Err(Error::Malformed("netlink overrun".to_owned())),
            other => {
                if let Err(err) = on_reply(other, payload) {
                    failure.get_or_insert(err);
                }
            }
        }
    }
    Ok(Step::More)
}

/// The bytes of a request: header, then payload.
pub(crate) fn encode(
    message_type: u16,
    flags: u16,
    sequence: u32,
    payload: &impl Emitable,
) -> Result<Vec<u8>, Error> {
    let total = HEADER_LEN + payload.buffer_len();
    let length = u32::try_from(total)
        .map_err(|_| Error::Malformed(format!("a request of {total} bytes is too long")))?;
    let mut header = NetlinkHeader::default();
    header.length = length;
    header.message_type = message_type;
    header.flags = flags;
    header.sequence_number = sequence;
    let mut bytes = vec![0; total];
    header.emit(&mut bytes[..HEADER_LEN]);
    payload.emit(&mut bytes[HEADER_LEN..]);
    Ok(bytes)
}

fn io_error(op: &'static str) -> impl Fn(io::Error) -> Error {
    move |source| Error::Io { op, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload of raw bytes.
    struct Raw(&'static [u8]);

    impl Emitable for Raw {
        fn buffer_len(&self) -> usize {
            self.0.len()
        }
        fn emit(&self, buffer: &mut [u8]) {
            buffer.copy_from_slice(self.0);
        }
    }

    /// A netlink message: header fields, then payload.
    fn message(message_type: u16, sequence: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(16 + payload.len() as u32).to_ne_bytes());
        bytes.extend_from_slice(&message_type.to_ne_bytes());
        bytes.extend_from_slice(&0u16.to_ne_bytes());
        bytes.extend_from_slice(&sequence.to_ne_bytes());
        bytes.extend_from_slice(&1234u32.to_ne_bytes());
        bytes.extend_from_slice(payload);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    /// The type and payload of each reply passed on.
    type Seen = Vec<(u16, Vec<u8>)>;

    fn read(datagram: &[u8], sequence: u32) -> (Result<Step, Error>, Seen) {
        let mut seen = Vec::new();
        let mut failure = None;
        let step = read_datagram(
            datagram,
            sequence,
            &mut |kind, payload: &[u8]| {
                seen.push((kind, payload.to_vec()));
                Ok(())
            },
            &mut failure,
        );
        (step, seen)
    }

    #[test]
    fn encodes_header_and_payload() {
        let bytes = encode(18, NLM_F_REQUEST | NLM_F_ACK, 7, &Raw(&[1, 2, 3, 4])).unwrap();
        assert_eq!(
            bytes,
            [20, 0, 0, 0, 18, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn every_request_but_a_dump_asks_for_an_ack() {
        assert_eq!(request_flags(0), 0x0005);
        assert_eq!(request_flags(0x0400 | 0x0200), 0x0605);
        assert_eq!(request_flags(NLM_F_DUMP), 0x0301);
    }

    #[test]
    fn a_reply_then_the_ack_ends_the_answer() {
        let mut datagram = message(16, 3, &[9; 5]);
        datagram.extend(message(NLMSG_ERROR, 3, &[0; 20]));
        let (step, seen) = read(&datagram, 3);
        assert_eq!(step.unwrap(), Step::Done);
        assert_eq!(seen, vec![(16, vec![9; 5])]);
    }

    #[test]
    fn a_kernel_error_carries_the_errno() {
        let mut payload = (-17i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]);
        let (step, _) = read(&message(NLMSG_ERROR, 1, &payload), 1);
        let err = step.unwrap_err();
        assert_eq!(err.errno(), Some(17));
        assert_eq!(err.to_string(), "File exists (os error 17)");
    }

    #[test]
    fn a_dump_goes_on_until_done() {
        let datagram = [message(20, 2, &[1; 8]), message(20, 2, &[2; 8])].concat();
        let (step, seen) = read(&datagram, 2);
        assert_eq!(step.unwrap(), Step::More);
        assert_eq!(seen.len(), 2);
        let (step, _) = read(&message(NLMSG_DONE, 2, &0i32.to_ne_bytes()), 2);
        assert_eq!(step.unwrap(), Step::Done);
        let (step, _) = read(&message(NLMSG_DONE, 2, &(-4i32).to_ne_bytes()), 2);
        assert_eq!(step.unwrap_err().errno(), Some(4));
    }

    #[test]
    fn a_dump_flagged_interrupted_fails_as_interrupted_once_read() {
        let mut flagged = message(20, 3, &[1; 8]);
        flagged[6..8].copy_from_slice(&NLM_F_DUMP_INTR.to_ne_bytes());
        let datagram = [flagged, message(NLMSG_DONE, 3, &0i32.to_ne_bytes())].concat();
        let mut failure = None;
        let mut seen = 0;
        let step = read_datagram(
            &datagram,
            3,
            &mut |_, _: &[u8]| {
                seen += 1;
                Ok(())
            },
            &mut failure,
        );
        assert_eq!(step.unwrap(), Step::Done, "the rest is still read");
        assert_eq!(seen, 1);
        assert!(matches!(failure, Some(Error::Interrupted)), "{failure:?}");
    }

    #[test]
    fn replies_to_other_requests_are_skipped() {
        let datagram = [message(16, 1, &[1; 4]), message(NLMSG_ERROR, 1, &[0; 20])].concat();
        let (step, seen) = read(&datagram, 2);
        assert_eq!(step.unwrap(), Step::More);
        assert!(seen.is_empty());
    }

    #[test]
    fn a_failing_reply_handler_still_reads_to_the_end() {
        let datagram = [
            message(16, 5, &[1; 4]),
            message(16, 5, &[2; 4]),
            message(NLMSG_ERROR, 5, &[0; 20]),
        ]
        .concat();
        let mut calls = 0;
        let mut failure = None;
        let step = read_datagram(
            &datagram,
            5,
            &mut |_, _: &[u8]| {
                calls += 1;
                Err(Error::Malformed(format!("call {calls}")))
            },
            &mut failure,
        );
        assert_eq!(step.unwrap(), Step::Done);
        assert_eq!(calls, 2);
        assert_eq!(
            failure.unwrap().to_string(),
            "malformed netlink reply: call 1"
        );
    }

    #[test]
    fn a_truncated_message_is_malformed() {
        let mut datagram = message(16, 1, &[1; 8]);
        datagram.truncate(20);
        assert!(matches!(read(&datagram, 1).0, Err(Error::Malformed(_))));
    }
}

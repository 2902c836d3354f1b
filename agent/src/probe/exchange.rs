//! One Connection Request / Connection Confirm exchange over a fresh TCP connection. Blocking
//! I/O with a timeout on every operation; the caller runs it on a blocking thread.
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::x224::{self, Confirm, ParseError};

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("no reply within {0} ms")]
    Timeout(u128),
    #[error("connection closed before a reply")]
    Closed,
    #[error("reply truncated after {0} bytes")]
    Truncated(usize),
    #[error("the server refused the request by disconnecting")]
    Refused,
    #[error("reply is not RDP: {0}")]
    NotRdp(ParseError),
    #[error("I/O error: {0}")]
    Io(std::io::Error),
}

/// Sends a Connection Request for `requested` and reads the Confirm. Returns the stream so
/// that TLS can start on it.
pub fn exchange(addr: SocketAddr, requested: u32, timeout: Duration) -> Result<(TcpStream, Confirm), ExchangeError> {
    let mut stream =
        TcpStream::connect_timeout(&addr, super::tcp::connect_timeout(timeout)).map_err(ExchangeError::Connect)?;
    stream.set_read_timeout(Some(timeout)).map_err(ExchangeError::Io)?;
    stream.set_write_timeout(Some(timeout)).map_err(ExchangeError::Io)?;
    let _ = stream.set_nodelay(true);
    stream.write_all(&x224::connection_request(requested, None)).map_err(|e| io_error(e, timeout))?;
    let mut header = [0u8; 4];
    read_full(&mut stream, &mut header, 0, timeout)?;
    let len = x224::tpkt_length(&header).map_err(ExchangeError::NotRdp)?;
    let mut packet = vec![0u8; len];
    packet[..4].copy_from_slice(&header);
    read_full(&mut stream, &mut packet[4..], 4, timeout)?;
    let confirm = x224::parse_confirm(&packet).map_err(|e| match e {
        ParseError::Disconnected => ExchangeError::Refused,
        e => ExchangeError::NotRdp(e),
    })?;
    Ok((stream, confirm))
}

/// Fills `buf`; `already` is how many bytes of the reply were read before, for the error.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], already: usize, timeout: Duration) -> Result<(), ExchangeError> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled + already == 0 => return Err(ExchangeError::Closed),
            Ok(0) => return Err(ExchangeError::Truncated(filled + already)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset && filled + already == 0 => {
                return Err(ExchangeError::Closed);
            }
            Err(e) => return Err(io_error(e, timeout)),
        }
    }
    Ok(())
}

fn io_error(e: std::io::Error, timeout: Duration) -> ExchangeError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => ExchangeError::Timeout(timeout.as_millis()),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => ExchangeError::Closed,
        _ => ExchangeError::Io(e),
    }
}

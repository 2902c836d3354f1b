//! One-line hints after an error, for the mistakes people make on a first run: the server is
//! not running, `https://` to a server that speaks plain HTTP, a certificate this machine does
//! not trust.

/// What to try, from the whole chain of `e` (the innermost errors name the real cause).
pub fn hint(e: &anyhow::Error) -> Option<&'static str> {
    let text = e.chain().map(|c| c.to_string().to_lowercase()).collect::<Vec<_>>().join(" | ");
    if text.contains("connection refused") {
        Some(
            "nothing accepts connections at that address: is rdpfleet-server running, and on that port (rdpfleet-server --listen ADDR)?",
        )
    } else if text.contains("invalidcontenttype")
        || text.contains("corrupt message")
        || text.contains("wrong version number")
    {
        Some(
            "the server does not speak TLS there: use http:// for a plain-HTTP server on this machine, or reach it through its HTTPS address",
        )
    } else if text.contains("unknownissuer")
        || text.contains("invalid peer certificate")
        || text.contains("certificate verify failed")
    {
        Some("this machine does not trust the server's certificate: install its CA in the system's trust store")
    } else if text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
    {
        Some("the server's name does not resolve from this machine: check the URL and DNS")
    } else if text.contains("timed out") || text.contains("operation timed out") {
        Some("no answer in time: a firewall may drop the connection, or the server is overloaded")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::hint;

    async fn error_of(url: &str) -> anyhow::Error {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap();
        anyhow::Error::new(client.get(url).send().await.unwrap_err()).context("enrollment failed")
    }

    #[tokio::test]
    async fn a_server_that_is_not_running_is_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = error_of(&format!("http://127.0.0.1:{port}/")).await;
        assert!(hint(&e).is_some_and(|h| h.contains("is rdpfleet-server running")), "{e:#}");
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_named() {
        // A plain-HTTP server: whatever arrives, it answers in clear text.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let e = error_of(&format!("https://127.0.0.1:{port}/")).await;
        assert!(hint(&e).is_some_and(|h| h.contains("does not speak TLS")), "{e:#}");
    }

    #[test]
    fn an_error_without_a_known_cause_gets_no_hint() {
        assert!(hint(&anyhow::anyhow!("the server rejected the agent's credential")).is_none());
    }
}

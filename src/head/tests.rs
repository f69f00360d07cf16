//! Unit tests for `head`: when a head is complete, cut, gone or too large, on paused time.
#![allow(clippy::unwrap_used)]

use super::*;
use tokio::io::AsyncWriteExt;

fn bounds(first_byte_ms: u64, header_ms: u64, max_bytes: usize) -> Bounds {
    Bounds {
        first_byte: Duration::from_millis(first_byte_ms),
        deadline: None,
        header_timeout: Duration::from_millis(header_ms),
        max_bytes,
    }
}

#[test]
fn head_end_needs_an_empty_line_in_either_spelling() {
    assert!(head_ends(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0));
    assert!(head_ends(b"GET / HTTP/1.1\nHost: a\n\n", 0));
    assert!(head_ends(b"GET / HTTP/1.1\r\nHost: a\n\r\n", 0));
    assert!(!head_ends(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
    assert!(!head_ends(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0));
    assert!(!head_ends(b"", 0));
    // Blank lines before the request line do not end anything.
    assert!(!head_ends(b"\r\n\r\n\n\nGET / HTTP/1.1\r\n", 0));
    assert!(head_ends(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0));
    // Resuming past the start still finds a terminator that began before `from`.
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(head_ends(buf, buf.len() - 3));
    assert!(!head_ends(buf, buf.len()));
}

#[tokio::test(start_paused = true)]
async fn a_head_in_pieces_is_complete_when_the_blank_line_arrives() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    let reader =
        tokio::spawn(async move { read_head(&mut server, bounds(1000, 1000, 4096)).await });
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.write_all(b"\n\r\nbody").await.unwrap();
    match reader.await.unwrap() {
        Head::Complete(buf) => assert_eq!(&buf[..], b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_dripping_client_is_cut_at_the_deadline_not_per_read() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    let reader =
        tokio::spawn(async move { read_head(&mut server, bounds(1000, 1000, 4096)).await });
    // A byte every 300 ms: each read is quick, the whole head never arrives in time.
    for b in b"GET / HTTP/1.1\r\nHost: a\r\n".iter() {
        if client.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if reader.is_finished() {
            break;
        }
    }
    assert_eq!(reader.await.unwrap(), Head::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn a_silent_or_closed_client_is_gone() {
    let (_client, mut server) = tokio::io::duplex(1024);
    assert_eq!(
        read_head(&mut server, bounds(500, 1000, 4096)).await,
        Head::Gone
    );

    let (client, mut server) = tokio::io::duplex(1024);
    drop(client);
    assert_eq!(
        read_head(&mut server, bounds(500, 1000, 4096)).await,
        Head::Gone
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_client_mid_head_is_gone() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    drop(client);
    assert_eq!(
        read_head(&mut server, bounds(500, 1000, 4096)).await,
        Head::Gone
    );
}

#[tokio::test(start_paused = true)]
async fn a_head_without_end_past_the_limit_is_too_large() {
    let (mut client, mut server) = tokio::io::duplex(64 * 1024);
    let line = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(10_000));
    client.write_all(line.as_bytes()).await.unwrap();
    assert_eq!(
        read_head(&mut server, bounds(500, 1000, 4096)).await,
        Head::TooLarge
    );
}

#[tokio::test(start_paused = true)]
async fn a_fixed_deadline_counts_from_before_the_first_byte() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    let b = Bounds {
        deadline: Some(Instant::now() + Duration::from_millis(1000)),
        ..bounds(1000, 60_000, 4096)
    };
    let reader = tokio::spawn(async move { read_head(&mut server, b).await });
    tokio::time::sleep(Duration::from_millis(900)).await;
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // 60 s from the first byte would still be open; the accept-time deadline is not.
    assert_eq!(reader.await.unwrap(), Head::TimedOut);
}

#[test]
fn raw_responses_are_complete_json_messages_that_close() {
    let bytes = raw_response(&Rejection::HeaderTimeout.respond());
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        head.contains(&format!("\r\ncontent-length: {}", body.len())),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], "invalid_request");
}

//! Unit tests for `head`: when a head is complete, cut, gone or too large, on paused time.
#![allow(clippy::unwrap_used)]

use super::*;
use tokio::io::AsyncWriteExt;

/// A new connection's timer: `process_new`'s placeholder, later than any deadline and not yet
/// registered.
fn placeholder() -> Pin<Box<Sleep>> {
    Box::pin(tokio::time::sleep(Duration::MAX))
}

/// `read_head` on a new timer, as a connection's first wait has it.
async fn read<S: AsyncRead + Unpin>(stream: &mut S, b: Bounds) -> Head {
    read_head(stream, b, placeholder().as_mut()).await
}

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
    let reader = tokio::spawn(async move { read(&mut server, bounds(1000, 1000, 4096)).await });
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
    let reader = tokio::spawn(async move { read(&mut server, bounds(1000, 1000, 4096)).await });
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
    assert_eq!(read(&mut server, bounds(500, 1000, 4096)).await, Head::Gone);

    let (client, mut server) = tokio::io::duplex(1024);
    drop(client);
    assert_eq!(read(&mut server, bounds(500, 1000, 4096)).await, Head::Gone);
}

#[tokio::test(start_paused = true)]
async fn a_closed_client_mid_head_is_gone() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    drop(client);
    assert_eq!(read(&mut server, bounds(500, 1000, 4096)).await, Head::Gone);
}

#[tokio::test(start_paused = true)]
async fn a_head_without_end_past_the_limit_is_too_large() {
    let (mut client, mut server) = tokio::io::duplex(64 * 1024);
    let line = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(10_000));
    client.write_all(line.as_bytes()).await.unwrap();
    assert_eq!(
        read(&mut server, bounds(500, 1000, 4096)).await,
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
    let reader = tokio::spawn(async move { read(&mut server, b).await });
    tokio::time::sleep(Duration::from_millis(900)).await;
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // 60 s from the first byte would still be open; the accept-time deadline is not.
    assert_eq!(reader.await.unwrap(), Head::TimedOut);
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_timer_set_early_or_late_still_ends_the_wait_at_its_deadline() {
    let start = Instant::now();
    // Early: it fires at 100 ms, is moved to the deadline, and the wait goes on to what is ready.
    let timer = tokio::time::sleep_until(start + ms(100));
    tokio::pin!(timer);
    let done = within(
        timer.as_mut(),
        start + ms(1000),
        tokio::time::sleep(ms(500)),
    )
    .await;
    assert_eq!(done, Some(()));
    assert_eq!(Instant::now() - start, ms(500));
    // Late: it is moved to the deadline, which ends a wait that never finishes, to the tick.
    let start = Instant::now();
    timer.as_mut().reset(start + ms(5000));
    let never = std::future::pending::<()>();
    assert_eq!(within(timer.as_mut(), start + ms(1000), never).await, None);
    assert_eq!(Instant::now() - start, ms(1000));
}

#[tokio::test(start_paused = true)]
async fn a_later_deadline_leaves_the_timer_where_it_is() {
    let start = Instant::now();
    // Already due at the start, on purpose: the first wait must move it rather than end.
    let timer = tokio::time::sleep_until(start);
    tokio::pin!(timer);
    let first = start + ms(1000);
    assert!(within(timer.as_mut(), first, tokio::time::sleep(ms(10)))
        .await
        .is_some());
    assert_eq!(timer.deadline(), first);
    // The next request's wait: a later deadline, and the timer is not moved for it.
    let second = Instant::now() + ms(1000);
    assert!(within(timer.as_mut(), second, tokio::time::sleep(ms(10)))
        .await
        .is_some());
    assert_eq!(
        timer.deadline(),
        first,
        "a later deadline must not move the timer"
    );
    // Waiting past the timer's own deadline, it fires there, moves, and the wait ends at `third`.
    let third = Instant::now() + ms(1000);
    assert_eq!(
        within(timer.as_mut(), third, std::future::pending::<()>()).await,
        None
    );
    assert_eq!(Instant::now(), third);
}

#[tokio::test(start_paused = true)]
async fn a_timer_that_fired_between_waits_does_not_end_the_next_one() {
    let start = Instant::now();
    let mut timer = placeholder();
    let ready = tokio::time::sleep(ms(10));
    assert!(within(timer.as_mut(), start + ms(1000), ready)
        .await
        .is_some());
    // Between waits (the request inside pingora) the timer reaches its deadline, unpolled.
    tokio::time::sleep(ms(2000)).await;
    assert!(timer.is_elapsed());
    let next = Instant::now() + ms(1000);
    assert_eq!(
        within(timer.as_mut(), next, std::future::pending::<()>()).await,
        None
    );
    assert_eq!(
        Instant::now(),
        next,
        "the next wait must last its whole bound"
    );
}

#[tokio::test(start_paused = true)]
async fn what_is_ready_at_the_deadline_wins_over_it() {
    // Without `biased`, select! would pick a branch at random: 32 ties all won by what is ready
    // would then happen once in 2^32 runs.
    for _ in 0..32 {
        let start = Instant::now();
        let mut timer = placeholder();
        let due = tokio::time::sleep(ms(1000));
        assert_eq!(
            within(timer.as_mut(), start + ms(1000), due).await,
            Some(())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_kept_alive_connections_timer_does_not_cut_its_next_wait_short() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut timer = placeholder();
        let b = bounds(1000, 1000, 4096);
        let first = read_head(&mut server, b, timer.as_mut()).await;
        // The request is served for 1200 ms, during which the timer reaches the first wait's
        // deadline (1000 ms) and fires unpolled; the next wait runs from 1200 to 2100 ms.
        tokio::time::sleep(ms(1200)).await;
        let second = read_head(&mut server, b, timer.as_mut()).await;
        let second_done = Instant::now();
        // And silence after it is still cut, 1000 ms on.
        let third = read_head(&mut server, b, timer.as_mut()).await;
        (first, second, second_done, third, Instant::now())
    });
    client.write_all(b"GET /a HTTP/1.1\r\n\r\n").await.unwrap();
    tokio::time::sleep(ms(2100)).await;
    client.write_all(b"GET /b HTTP/1.1\r\n\r\n").await.unwrap();
    let (first, second, second_done, third, third_done) = reader.await.unwrap();
    assert_eq!(
        first,
        Head::Complete(BytesMut::from(&b"GET /a HTTP/1.1\r\n\r\n"[..]))
    );
    assert_eq!(
        second,
        Head::Complete(BytesMut::from(&b"GET /b HTTP/1.1\r\n\r\n"[..]))
    );
    assert_eq!(second_done - start, ms(2100));
    assert_eq!(third, Head::Gone);
    assert_eq!(third_done - second_done, ms(1000));
    drop(client);
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

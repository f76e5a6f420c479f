//! Slow clients (slowloris): connections that send half a request cannot
//! keep anyone else out, and do not stay open.

use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn half_sent_requests_are_closed_and_others_are_served_meanwhile() {
    let app = spawn_app().await;
    let port: u16 = app
        .url("")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    // 300 connections from another loopback address, each with half a header.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        s.write_all(b"POST /api/v1/messages HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // Others still get in, for health checks and for the API.
    let started = Instant::now();
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.get("/api/v1/accounts").await.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5), "served at once");

    // Every slow connection is closed by the server: past the per-address
    // cap at once, the others when their header time runs out.
    let deadline = Instant::now() + Duration::from_secs(30);
    for mut s in slow {
        let mut buf = [0u8; 512];
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue, // a 408 before the close, or nothing
                }
            }
        })
        .await;
        assert!(read.is_ok(), "a half-sent request was still open after 30 s");
    }
    app.stop().await;
}

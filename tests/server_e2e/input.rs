//! Bad input and auth; the fuzz target's entry point.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_auth() {
    let srv = start(config(), MemoryManager::global()).await;
    let mut c = Client::connect(srv.addr).await;
    let ro = Some(RO);

    // Auth: none, wrong, insufficient.
    let r = c.get("/api/v1/metrics", None).await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), r#"Bearer realm="rustydb""#);
    let r = c
        .get("/api/v1/metrics", Some("not-a-real-token-at-all"))
        .await;
    r.problem(401);
    assert!(r.header("www-authenticate").contains("invalid_token"));
    let r = c.raw("GET", "/api/v1/metrics", None, None, vec![]).await;
    r.problem(401);
    let r = c.post("/api/v1/transactions", ro, json!({})).await;
    let p = r.problem(403);
    assert_eq!(p["required_role"], "readwrite");
    c.post("/graphql", None, json!({"query": "{ schemas { name } }"}))
        .await
        .problem(401);
    c.get("/api/v1/admin/config", Some(RW)).await.problem(403);
    // A transaction belongs to its owner (admins may finish any).
    let t = c
        .post("/api/v1/transactions", Some(RW), json!({}))
        .await
        .json()["transaction_id"]
        .as_u64()
        .unwrap();
    let m = c
        .post(
            "/api/v1/admin/tokens",
            Some(ADMIN),
            json!({"role": "readwrite"}),
        )
        .await
        .json();
    let other = m["token"].as_str().unwrap().to_string();
    c.post(
        &format!("/api/v1/transactions/{t}/commit"),
        Some(other.as_str()),
        json!({}),
    )
    .await
    .problem(403);
    assert_eq!(
        c.post(
            &format!("/api/v1/transactions/{t}/commit"),
            Some(ADMIN),
            json!({})
        )
        .await
        .status,
        200
    );

    // Malformed JSON, wrong shapes, empty bodies.
    let r = c
        .raw(
            "POST",
            "/api/v1/transactions",
            Some(RW),
            Some("application/json"),
            b"{bad json".to_vec(),
        )
        .await;
    let p = r.problem(400);
    assert_eq!(p["type"], "urn:rustydb:problem:malformed-json");
    c.raw(
        "POST",
        "/api/v1/query",
        Some(RW),
        Some("application/json"),
        b"[1,2]".to_vec(),
    )
    .await
    .problem(400);
    c.raw(
        "POST",
        "/api/v1/query",
        Some(RW),
        Some("application/json"),
        vec![],
    )
    .await
    .problem(400);
    c.post(
        "/api/v1/transactions",
        Some(RW),
        json!({"isolation_level": "CHAOTIC"}),
    )
    .await
    .problem(400);
    c.post(
        "/api/v1/transactions",
        Some(RW),
        json!({"memory_limit_bytes": 1}),
    )
    .await
    .problem(400);
    c.raw(
        "POST",
        "/graphql",
        Some(RW),
        Some("application/json"),
        b"{\"query\": 12}".to_vec(),
    )
    .await
    .problem(400);
    c.raw(
        "POST",
        "/api/v1/query",
        Some(RW),
        Some("text/plain"),
        b"SELECT 1".to_vec(),
    )
    .await
    .problem(415);

    // Unknown route, wrong method.
    c.get("/api/v1/nothing/here", ro).await.problem(404);
    c.get("/", None).await;
    let r = c.raw("DELETE", "/api/v1/metrics", ro, None, vec![]).await;
    r.problem(405);
    assert_eq!(r.header("allow"), "GET, HEAD");
    let r = c
        .raw("PATCH", "/api/v1/transactions", Some(RW), None, vec![])
        .await;
    r.problem(405);
    assert_eq!(r.header("allow"), "GET, POST, HEAD");

    // Body over the limit (64 KiB here).
    let big = vec![b' '; 100 << 10];
    let r = c
        .raw(
            "POST",
            "/api/v1/query",
            Some(RW),
            Some("application/json"),
            big,
        )
        .await;
    r.problem(413);
    assert_eq!(r.header("connection"), "close");
    let mut c = Client::connect(srv.addr).await;

    // Bad parameters.
    c.get("/api/v1/connections?page=0", ro).await.problem(400);
    c.get("/api/v1/connections?page_size=abc", ro)
        .await
        .problem(400);
    c.get("/api/v1/connections?page_size=100000", ro)
        .await
        .problem(400);
    c.get("/api/v1/logs?limit=%zz", Some(ADMIN))
        .await
        .problem(400);
    let r = c
        .raw("GET", "/api/v1/stats/sessions", Some(RW), None, vec![])
        .await;
    assert_eq!(r.status, 200);
    let mut s = Client::connect(srv.addr).await;
    let mut b = hyper::Request::builder()
        .uri("/api/v1/metrics")
        .header("authorization", format!("Bearer {RO}"));
    b = b.header("x-session-id", "bad id with spaces");
    s.send.ready().await.unwrap();
    let resp = s
        .send
        .send_request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // GraphQL: limits, GET without mutations, syntax errors.
    let deep = format!(
        "{{ __schema {{ queryType {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(14),
        "} ".repeat(14)
    );
    let v = c.gql(RO, &deep).await;
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("too deep"),
        "{v}"
    );
    let v = c.gql(RO, "{ schemas { name ").await;
    assert!(v["errors"].is_array());
    let r = c
        .get(
            "/graphql?query=mutation%20%7B%20beginTransaction%20%7B%20status%20%7D%20%7D",
            Some(RW),
        )
        .await;
    r.problem(405);
    let r = c
        .get("/graphql?query=%7B%20schemas%20%7B%20name%20%7D%20%7D", ro)
        .await;
    assert_eq!(r.json()["data"]["schemas"][0]["name"], "public");
    let r = c.get("/graphql", ro).await;
    assert!(r.header("content-type").starts_with("text/html"));

    // A handler panic is a 500 problem; the connection and server live on.
    let r = c.get("/api/v1/__test/panic", None).await;
    let p = r.problem(500);
    assert!(
        !p["detail"].as_str().unwrap().contains("test panic"),
        "no internals leak"
    );
    assert_eq!(c.get("/api/v1/admin/health", None).await.status, 200);
    let m = c.get("/api/v1/metrics", ro).await.json();
    assert!(metric(&m, "handler_panics") >= 1.0);
    assert!(metric(&m, "client_errors") >= 20.0);

    // The socket-less entry point (for the fuzz target) answers the same way.
    let r = server::oneshot(
        &srv.app,
        b"GET",
        b"/api/v1/pools",
        &[(
            b"authorization".to_vec(),
            format!("Bearer {RO}").into_bytes(),
        )],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = server::oneshot(&srv.app, b"G\0T", b"/", &[], b"").await;
    assert_eq!(r.status, 400);
    let r = server::oneshot(&srv.app, b"GET", b"no-slash", &[], b"").await;
    assert_eq!(r.status, 400);
    let r = server::oneshot(
        &srv.app,
        b"POST",
        b"/graphql",
        &[(
            b"authorization".to_vec(),
            format!("Bearer {RO}").into_bytes(),
        )],
        b"{\"query\":\"{ __typename }\"}",
    )
    .await;
    assert_eq!(r.status, 200);

    srv.stop().await;
}

/// The fuzz target's entry point: no socket, its own app and runtime.
#[test]
fn fuzz_entry_point_answers() {
    let auth = |t: &str| {
        vec![(
            b"authorization".to_vec(),
            format!("Bearer {t}").into_bytes(),
        )]
    };
    assert_eq!(
        server::fuzz_request(b"GET", b"/api/v1/admin/health", &[], b"").status,
        200
    );
    assert_eq!(
        server::fuzz_request(b"GET", b"/api/v1/pools", &[], b"").status,
        401
    );
    let ro = auth(server::FUZZ_TOKENS[2].1);
    let r = server::fuzz_request(b"GET", b"/api/v1/pools/default/stats", &ro, b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ad = auth(server::FUZZ_TOKENS[0].1);
    let r = server::fuzz_request(
        b"POST",
        b"/api/v1/memory/ballast",
        &ad,
        br#"{"bytes": 1073741824}"#,
    );
    assert_eq!(r.status, 400, "the fuzz app caps ballast");
    let r = server::fuzz_request(
        b"POST",
        b"/api/v1/transactions",
        &auth(server::FUZZ_TOKENS[1].1),
        b"{}",
    );
    assert_eq!(r.status, 201);
    for (m, t, b) in [
        (
            &b"POST"[..],
            &b"/graphql"[..],
            &b"{\"query\": \"{ __typename }\"}"[..],
        ),
        (b"\xff", b"/", b""),
        (b"GET", b"/%ff%fe", b""),
        (b"PUT", b"/api/v1/memory/debugger", b"{\"level\":\"full\"}"),
    ] {
        let r = server::fuzz_request(m, t, &ad, b);
        assert!((200..600).contains(&r.status));
    }
}

//! The request budget: its spacing on tokio's paused clock, and that every
//! request an attempt sends through `http::Call` takes a turn.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::adapters::http::{Api, deadline, parse_url};
use std::time::Duration as Std;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn budget(requests: u32, per_ms: u64) -> Arc<RequestBudget> {
    Arc::new(
        RequestBudget::new(&RateLimit { requests, per: Duration::from_millis(per_ms) }).unwrap(),
    )
}

/// When each of `n` turns taken one after another was granted, from the start.
async fn turns(b: &RequestBudget, n: usize) -> Vec<Std> {
    let start = Instant::now();
    let mut at = Vec::new();
    for _ in 0..n {
        b.take().await;
        at.push(start.elapsed());
    }
    at
}

const fn ms(n: u64) -> Std {
    Std::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_budget_allows_its_burst_then_spaces_requests_evenly() {
    let b = budget(3, 3_000);
    assert_eq!(b.wait_now(), Std::ZERO);
    assert_eq!(turns(&b, 5).await, [ms(0), ms(0), ms(0), ms(1_000), ms(2_000)]);
    assert_eq!(b.wait_now(), ms(1_000));
    // A full window idle refills the burst, and no more than it.
    tokio::time::advance(ms(10_000)).await;
    assert_eq!(b.wait_now(), Std::ZERO);
    assert_eq!(turns(&b, 4).await, [ms(0), ms(0), ms(0), ms(1_000)]);
}

#[test]
fn a_limit_without_a_rate_builds_no_budget() {
    let none = |requests, per| {
        RequestBudget::new(&RateLimit { requests, per: Duration::from_millis(per) })
    };
    assert!(none(0, 1_000).is_none());
    assert!(none(5, 0).is_none());
    assert!(none(1, 1).is_some());
}

#[tokio::test(start_paused = true)]
async fn each_request_of_an_attempt_takes_a_turn_and_moves_the_deadline() {
    let b = budget(1, 1_000);
    let start = Instant::now();
    // The engine takes the first turn before the attempt; its first request
    // uses it, each later one waits for its own.
    b.take().await;
    let (waited, total) = paced(b.clone(), true, async {
        [request_turn().await, request_turn().await, request_turn().await]
    })
    .await;
    assert_eq!(waited, [ms(0), ms(1_000), ms(2_000)], "the attempt's total wait so far");
    assert_eq!(total, ms(2_000), "what the attempt's recorded duration leaves out");
    assert_eq!(start.elapsed(), ms(2_000));
    assert_eq!(b.wait_now(), ms(1_000), "three requests, three turns");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_sending_nothing_through_call_spends_only_the_first_turn() {
    // The generic webhook sends its one request itself: paced as before.
    let b = budget(2, 2_000);
    b.take().await;
    let ((), waited) = paced(b.clone(), true, async {}).await;
    assert_eq!(waited, Std::ZERO);
    assert_eq!(b.wait_now(), Std::ZERO, "one of the two turns left");
    // Outside an attempt (discovery, `validate --check-remote`) nothing is paced.
    assert_eq!(request_turn().await, Std::ZERO);
    assert_eq!(b.wait_now(), Std::ZERO);
}

#[tokio::test(start_paused = true)]
async fn waiting_attempts_get_turns_in_the_order_they_asked() {
    let b = budget(1, 1_000);
    b.take().await;
    let first = tokio::spawn(paced(b.clone(), false, async { request_turn().await }));
    tokio::task::yield_now().await;
    let second = tokio::spawn(paced(b.clone(), false, async { request_turn().await }));
    assert_eq!(second.await.unwrap().0, ms(2_000));
    assert_eq!(first.await.unwrap().0, ms(1_000));
}

#[tokio::test]
async fn every_call_an_attempt_sends_spends_the_connection_budget() {
    // Real sockets, so a real clock: the budget (3 per 3 h) never makes this
    // test wait; what is checked is how much of it is left.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(4)
        .mount(&server)
        .await;
    let api =
        Api::at(parse_url("base_url", &server.uri()).unwrap(), reqwest::Client::new()).unwrap();
    let hour = Std::from_secs(3_600);
    let b = budget(3, 3 * 3_600_000);
    b.take().await;
    let sent = paced(b.clone(), true, async {
        let soon = deadline(Std::from_secs(5));
        for step in ["find", "tags", "add"] {
            let reply = api.call(reqwest::Method::GET, &[step]).send(soon).await.unwrap();
            assert_eq!(reply.status, 200);
        }
    });
    sent.await;
    // All three turns are spent: the next request waits about an hour.
    let wait = b.wait_now();
    assert!(wait > hour - Std::from_secs(60) && wait <= hour, "{wait:?}");
    // A call outside an attempt spends nothing.
    let before = b.wait_now();
    api.call(reqwest::Method::GET, &["find"]).send(deadline(Std::from_secs(5))).await.unwrap();
    assert!(b.wait_now() <= before);
}

//! The seed's first scenario: requests are spread round robin over the backends.

mod support;

use support::{backend, config, url_for, TestProxy};

#[tokio::test]
async fn two_requests_reach_the_two_backends_in_turn() {
    let one = backend("Response from server 1").await;
    let two = backend("Response from server 2").await;
    let proxy = TestProxy::start(config(vec![url_for(&one), url_for(&two)]));

    let first = support::get(&proxy.url("/")).await;
    let second = support::get(&proxy.url("/")).await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    let mut bodies = [first.text(), second.text()];
    bodies.sort();
    assert_eq!(
        bodies,
        ["Response from server 1\n", "Response from server 2\n"]
    );
    assert_eq!((one.requests(), two.requests()), (1, 1));
    proxy.stop().await;
}

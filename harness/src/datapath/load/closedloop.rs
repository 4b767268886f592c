//! Closed loop (max rate): every connection slot sends its next request as soon as the
//! previous one has finished, until the phase ends.

use std::rc::Rc;
use std::time::Instant;

use super::http::Conn;
use super::state::Shared;

/// One slot: request after request from `start` until the phase's end.
pub(crate) async fn slot(sh: Rc<Shared>, start: Instant) {
    tokio::time::sleep_until(start.into()).await;
    let mut conn = Conn::new();
    while Instant::now() < sh.end {
        sh.request(&mut conn, None).await;
    }
}

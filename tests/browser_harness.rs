//! The WebDriver harness itself (tests/common/browser.rs), against static pages: no engine needed,
//! only Chromium and chromedriver.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::browser::{base64_decode, Browser};
use serde_json::json;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>harness</title></head>
<body>
  <p id="out">nothing yet</p>
  <input id="field" value="">
  <select id="pick"><option value="a">A</option><option value="b">B</option></select>
  <button id="go" data-kind="primary" onclick="
    document.getElementById('out').textContent = 'clicked: ' + document.getElementById('field').value + '/' + document.getElementById('pick').value;
    setTimeout(() => { const d = document.createElement('div'); d.id = 'late'; d.textContent = 'late'; document.body.append(d); }, 300);
  ">Go</button>
  <button id="off" disabled>Off</button>
  <p id="hidden" hidden>secret</p>
</body></html>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_a_file_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    std::fs::write(&page, PAGE).unwrap();

    let b = Browser::start().await;
    b.goto(&format!("file://{}", page.display())).await;

    assert!(b.find("#nope").await.is_none());
    assert_eq!(b.find_all("button").await.len(), 2);

    let field = b.wait_for("#field", Duration::from_secs(5)).await;
    b.type_into(&field, "hello").await;
    b.clear(&field).await;
    b.type_into(&field, "typed").await;
    assert_eq!(b.property(&field, "value").await, json!("typed"));
    b.select_value("#pick", "b").await;

    let go = b.find("#go").await.unwrap();
    assert_eq!(b.attr(&go, "data-kind").await.as_deref(), Some("primary"));
    assert_eq!(b.attr(&go, "data-missing").await, None);
    assert!(b.enabled(&go).await);
    assert!(!b.enabled(&b.find("#off").await.unwrap()).await);
    assert!(!b.displayed(&b.find("#hidden").await.unwrap()).await);

    b.click(&go).await;
    let out = b.find("#out").await.unwrap();
    assert_eq!(b.text(&out).await, "clicked: typed/b");

    // Appears 300 ms after the click.
    let late = b.wait_for("#late", Duration::from_secs(5)).await;
    assert_eq!(b.text(&late).await, "late");

    let v = b
        .exec(
            "return [arguments[0] + 1, arguments[1].id, document.title];",
            vec![json!(41), out.json()],
        )
        .await;
    assert_eq!(v, json!([42, "out", "harness"]));
    let waited = b
        .wait_until(
            "return document.querySelector('#late') && 'yes';",
            Duration::from_secs(2),
            "late element",
        )
        .await;
    assert_eq!(waited, json!("yes"));

    let shot = dir.path().join("shot.png");
    b.screenshot(&shot).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.len() > 1000,
        "screenshot too small: {} bytes",
        png.len()
    );
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_a_data_url_and_times_out_loudly() {
    let b = Browser::start().await;
    b.goto("data:text/html;charset=utf-8,<button id=b onclick=\"this.textContent='done'\">press</button>")
        .await;
    let button = b.wait_for("#b", Duration::from_secs(5)).await;
    b.click(&button).await;
    assert_eq!(b.text(&button).await, "done");

    // wait_for panics after its timeout, naming the selector and showing the page.
    let err = tokio::spawn(async move {
        b.wait_for("#never", Duration::from_millis(300)).await;
    })
    .await
    .unwrap_err();
    let msg = err
        .into_panic()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(msg.contains("#never"), "{msg}");
    assert!(
        msg.contains("done"),
        "page source tail in the message: {msg}"
    );
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("aG\nk=").unwrap(), b"hi");
    assert_eq!(base64_decode("").unwrap(), b"");
    assert!(base64_decode("a").is_none());
    assert!(base64_decode("a$==").is_none());
}

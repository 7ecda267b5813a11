//! Per-(project, location) request quotas over a rolling window, answered with the 429
//! `RESOURCE_EXHAUSTED` body of the real service, as the official client sees them.

use crate::{PARENT, SOURCE, code, copy, copy_from, dst, start};
use google_cloud_gax::error::rpc::{Code, StatusDetails};
use std::time::{Duration, Instant};
use testkit::vertex::{numbered, project_number};
use testkit::{Quotas, Rpc, RpcCount};

fn quotas(lro_submissions: usize, resource_management: usize) -> Quotas {
    Quotas {
        lro_submissions,
        resource_management,
        window: Duration::from_secs(1),
    }
}

/// Sleeps until the 1 s window that started at `t0` has passed, with a margin.
async fn sleep_past_window(t0: Instant) {
    let end = t0 + Duration::from_millis(1100);
    tokio::time::sleep(end.saturating_duration_since(Instant::now())).await;
}

/// The 429 the real service answers when the LRO submission quota (2 a window here) is spent:
/// its message and its ErrorInfo.
fn assert_is_the_lro_quota_error(err: &google_cloud_gax::error::Error) {
    assert_eq!(code(err), Some(Code::ResourceExhausted));
    assert_eq!(err.http_status_code(), Some(429));
    let status = err.status().expect("status");
    let number = project_number("dst");
    assert_eq!(
        status.message,
        format!(
            "Quota exceeded for quota metric 'Job or LRO submission requests' and limit 'Job or \
             LRO submission requests per minute per region' of service \
             'aiplatform.googleapis.com' for consumer 'project_number:{number}'."
        )
    );
    let info = status.details.iter().find_map(|d| match d {
        StatusDetails::ErrorInfo(info) => Some(info),
        _ => None,
    });
    let info = info.expect("an ErrorInfo detail");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("RATE_LIMIT_EXCEEDED", "googleapis.com")
    );
    let meta = |key: &str| info.metadata.get(key).map(String::as_str);
    assert_eq!(
        meta("quota_metric"),
        Some("aiplatform.googleapis.com/job_or_lro_submission_requests")
    );
    assert_eq!(meta("quota_limit_value"), Some("2"));
    assert_eq!(meta("quota_location"), Some("europe-west4"));
    assert_eq!(
        meta("consumer"),
        Some(format!("projects/{number}").as_str())
    );
}

#[tokio::test]
async fn copies_beyond_the_lro_quota_are_resource_exhausted_until_the_window_passes() {
    let (fake, client) = start().await;
    fake.set_quotas(quotas(2, 1000));
    let t0 = Instant::now();
    copy(&client, "a").await.expect("first copy");
    copy(&client, "b").await.expect("second copy");
    let err = copy(&client, "c")
        .await
        .expect_err("third copy in the window");
    assert_is_the_lro_quota_error(&err);

    // The same project spelled by number shares the quota; another location or project does not.
    let by_number = copy_from(&client, &numbered(PARENT), SOURCE, "d").await;
    assert_eq!(
        code(&by_number.expect_err("same quota")),
        Some(Code::ResourceExhausted)
    );
    copy_from(&client, "projects/dst/locations/us-east1", SOURCE, "e")
        .await
        .expect("other location");
    copy_from(&client, "projects/dst2/locations/europe-west4", SOURCE, "f")
        .await
        .expect("other project");

    let want = RpcCount {
        calls: 6,
        quota_rejections: 2,
    };
    assert_eq!(fake.rpc_count(Rpc::CopyModel), want);
    assert_eq!(fake.quota_rejections(), 2);
    assert_eq!(fake.copies_started(), 4);

    sleep_past_window(t0).await;
    copy(&client, "c").await.expect("a copy after the window");
    assert_eq!(fake.quota_rejections(), 2);
}

#[tokio::test]
async fn reads_share_the_resource_management_quota_and_are_not_retried() {
    let (fake, client) = start().await;
    fake.set_quotas(quotas(100, 3));
    let t0 = Instant::now();
    let op = copy(&client, "a").await.expect("a copy is not a read");
    client
        .get_operation()
        .set_name(&op.name)
        .send()
        .await
        .expect("read 1");
    // Reads that fail still used quota: the service checks it before the method runs.
    let missing = client.get_model().set_name(dst("nope")).send().await;
    assert_eq!(code(&missing.expect_err("read 2")), Some(Code::NotFound));
    let list = client
        .list_model_versions()
        .set_name(dst("nope"))
        .send()
        .await;
    assert_eq!(code(&list.expect_err("read 3")), Some(Code::NotFound));
    let fourth = client.get_model().set_name(dst("nope")).send().await;
    assert_eq!(
        code(&fourth.expect_err("read 4")),
        Some(Code::ResourceExhausted)
    );
    // The client's default policy treats RESOURCE_EXHAUSTED as permanent: one call, no retry.
    let want = RpcCount {
        calls: 2,
        quota_rejections: 1,
    };
    assert_eq!(fake.rpc_count(Rpc::GetModel), want);
    // Another project has its own quota.
    client
        .get_model()
        .set_name(SOURCE)
        .send()
        .await
        .expect("a read in the source project");

    sleep_past_window(t0).await;
    client
        .get_operation()
        .set_name(&op.name)
        .send()
        .await
        .expect("a read after the window");
}

#[tokio::test]
async fn quotas_are_off_until_set_and_can_be_cleared() {
    let (fake, client) = start().await;
    for i in 0..61 {
        copy(&client, &format!("m{i}"))
            .await
            .expect("no quota by default");
    }
    assert_eq!((fake.copies_started(), fake.quota_rejections()), (61, 0));

    fake.set_quotas(quotas(1, 1000));
    copy(&client, "n0")
        .await
        .expect("earlier calls do not count");
    let err = copy(&client, "n1").await.expect_err("over the limit");
    assert_eq!(code(&err), Some(Code::ResourceExhausted));
    fake.clear_quotas();
    copy(&client, "n1").await.expect("quotas cleared");
}
